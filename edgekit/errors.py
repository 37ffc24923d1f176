"""One exception hierarchy for everything a user can get wrong.

Every message says what was received, what was expected and how to fix it. The CLI prints
``str(error)`` as one line and exits with ``error.exit_code``.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """Base of every error edgekit raises on purpose."""

    exit_code = 2


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
