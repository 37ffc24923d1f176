"""One exception hierarchy for everything a user can get wrong.

Every message says what was received, what was expected and how to fix it. The CLI prints
``str(error)`` as one line and exits with ``error.exit_code``.
"""

from __future__ import annotations

# A one-line message quotes at most this much of a library's own message; the whole of it stays
# on the exception's __cause__ (``edgekit --verbose`` prints the chain) and in the run's log.
REASON_LENGTH = 300


def first_line(error: BaseException, limit: int = REASON_LENGTH) -> str:
    """The first non-blank line of an exception's message (its type when it has none), cut to
    ``limit`` characters for a one-line summary."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = lines[0] if lines else type(error).__name__
    return message if len(message) <= limit else message[: limit - 3] + "..."


def short_reason(error: BaseException) -> str:
    """``"TypeName: first line of the message"``, for a one-line summary of a library's failure."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {first_line(error) if lines else 'no message'}"


class EdgekitError(Exception):
    """Base of every error edgekit raises on purpose.

    Args:
        message: one line: what was received, what was expected, how to fix it.
        details: the whole text a library printed on the way (a converter's log), when the one
            line only summarises it; the CLI keeps it in a log file and names that file.
    """

    exit_code = 2

    def __init__(self, *args, details: str | None = None):
        super().__init__(*args)
        self.details = details or None


class UnknownNameError(EdgekitError, KeyError):
    """A model, dataset, technique or format name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(EdgekitError, ValueError):
    """A dataset that is missing, malformed, empty or of the wrong shape, dtype or labels."""


class ModelError(EdgekitError, ValueError):
    """A model file that cannot be read, or a model edgekit cannot work with."""


class OptionError(EdgekitError, ValueError):
    """An option out of range, or options that contradict each other."""


class OutputExistsError(EdgekitError, FileExistsError):
    """An output folder or file that exists and would be overwritten without ``--force``."""


class RunFailedError(EdgekitError):
    """The work ran but its result failed a check; the exit code is 1."""

    exit_code = 1


class ServeError(EdgekitError):
    """The Triton server could not start, stopped, or cannot be reached (exit code 1).

    The work was tried and failed for a reason outside the command line: a busy port, a missing
    binary, a model the server refused, a server that died.
    """

    exit_code = 1


class RepositoryError(ModelError):
    """A Triton model repository that is missing, malformed or holds a model edgekit cannot stage."""


class InferenceError(ServeError):
    """Triton answered a request with an error (unknown model, wrong input name, shape, dtype)."""
