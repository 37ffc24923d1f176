"""Errors of the serve stage, under the one ``EdgekitError`` hierarchy.

They live here rather than in ``edgekit/errors.py`` so this stage could be written while the
others were; they are plain subclasses and can move there without changing a caller.
"""

from __future__ import annotations

from edgekit.errors import EdgekitError


class ServeError(EdgekitError):
    """The Triton server could not start, stopped, or cannot be reached (exit code 1).

    The work was tried and failed for a reason outside the command line: a busy port, a missing
    binary, a model the server refused, a server that died.
    """

    exit_code = 1


class RepositoryError(EdgekitError, ValueError):
    """A model repository that is missing, malformed or holds a model edgekit cannot stage."""


class InferenceError(ServeError):
    """Triton answered a request with an error (unknown model, wrong input name, shape, dtype)."""
