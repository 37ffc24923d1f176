"""labels.txt: exactly one line per class, whatever the class names hold.

Triton's classification extension and the mobile bundle read labels one line per class index.
A class name with a newline, tab or other control character would shift every later label, so
such characters are written escaped (``\\n``, ``\\t``, ``\\x1b``); the names themselves are kept
as they are in the manifest and the bundle's metadata.json.
"""

from __future__ import annotations

import unicodedata


def label_line(name) -> str:
    """One class name as one line's text: control characters escaped, nothing else changed."""
    return "".join(character.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(character).startswith("C") else character
                   for character in str(name))


def labels_text(class_names) -> str:
    """The whole labels.txt: one line per class, in output order."""
    return "".join(f"{label_line(name)}\n" for name in class_names)
