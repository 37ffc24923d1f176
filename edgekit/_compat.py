"""TensorFlow, tf-keras and tfmot quirks, in one place.

edgekit needs Keras 2 (tf-keras): tensorflow-model-optimization and tf2onnx's ``from_keras``
fail on Keras 3 models. ``TF_USE_LEGACY_KERAS`` must be set before TensorFlow is first
imported, so this module is imported by ``edgekit/__init__.py`` before anything else.
It can go once tfmot and tf2onnx support Keras 3.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import re
import sys
import tempfile
import warnings

# Keras 2 through tf-keras. We force it rather than setdefault: a user who exported
# TF_USE_LEGACY_KERAS=0 would otherwise get Keras 3 models that tfmot rejects later.
if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    warnings.warn(
        "TensorFlow was imported before edgekit, so tf.keras may be Keras 3. "
        "Import edgekit first, or let edgekit import TensorFlow.",
        RuntimeWarning,
        stacklevel=2,
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"

# TensorFlow's C++ logging (oneDNN notices, CUDA probing) stays out of the terminal unless the
# user asked for it (``edgekit --verbose`` sets EDGEKIT_VERBOSE=1) or set the level themselves.
if os.environ.get("EDGEKIT_VERBOSE") != "1":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def _quiet() -> bool:
    return os.environ.get("EDGEKIT_VERBOSE") != "1"


@contextlib.contextmanager
def quiet_native_logs(captured: list | None = None):
    """Keep native notices (the converter's "fully_quantize: 0, ...", LiteRT's "Created TensorFlow
    Lite XNNPACK delegate") and Python warnings off the terminal.

    They are written to file descriptor 2 directly, so only a redirect silences them;
    ``EDGEKIT_VERBOSE=1`` (``edgekit --verbose``) shows them. When ``captured`` is a list, the
    text written meanwhile is appended to it (the converter names failing layers there only).
    Python exceptions still propagate.
    """
    if not _quiet():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    sink = tempfile.TemporaryFile()
    try:
        os.dup2(sink.fileno(), 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        if captured is not None:
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", "replace"))
        sink.close()


def _import_silently(module_name: str):
    """Import a module with :func:`quiet_native_logs` (only the first import prints anything)."""

    if module_name in sys.modules:
        return importlib.import_module(module_name)
    with quiet_native_logs():
        return importlib.import_module(module_name)


def tensorflow():
    """Return the ``tensorflow`` module, imported with Keras 2 selected."""
    tf = _import_silently("tensorflow")
    if _quiet():
        tf.get_logger().setLevel("ERROR")
        # lazy: absl comes with TensorFlow, which is being loaded here
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    return tf


def keras():
    """Return tf-keras (Keras 2), the Keras every edgekit model is built with."""
    tensorflow()
    return _import_silently("tf_keras")


def tfmot():
    """tensorflow-model-optimization, imported after TensorFlow and as quietly."""
    keras()
    return _import_silently("tensorflow_model_optimization")


# TensorFlow reports file-system failures of its own writers (checkpoints, SavedModels) as
# OpErrors whose message carries the C library's text; edgekit turns them into the OSError they
# are, so the CLI prints one line naming the path. Can go if TensorFlow raises OSError itself.
_OS_MESSAGES = {"No space left on device": "ENOSPC", "Disk quota exceeded": "EDQUOT",
                "Permission denied": "EACCES", "Read-only file system": "EROFS",
                "File name too long": "ENAMETOOLONG", "Too many open files": "EMFILE"}


def os_error_from_tensorflow(error: BaseException) -> OSError | None:
    """The OSError behind a TensorFlow file-system error, or None for any other exception."""

    if not (type(error).__module__ or "").startswith("tensorflow"):
        return None
    text = str(error)
    for phrase, name in _OS_MESSAGES.items():
        if phrase in text:
            found = re.findall(r"(?:^|\s)(/[^\s;]+)", text.split(phrase)[0])
            path = found[-1] if found else None
            if path and "_temp/" in path:  # TensorFlow's own temporary name: name its folder
                path = path.split("_temp/")[0].rsplit("/", 1)[0]
            return OSError(getattr(errno, name), phrase, path)
    return None
