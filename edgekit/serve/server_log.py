"""Reading a Triton server's log: why it failed, and whether a failed start is worth a retry.

The bundled ``tritonserver`` writes one log per start (see :mod:`edgekit.serve.tritonserver`).
When it exits or is not ready in time, its own reason is in that log, in glog's format
(``E1123 18:30:09.650789 13727 model_lifecycle.cc:642] "failed to load 'm' version 1: ..."``).
:func:`failure_reason` turns it into the one line edgekit prints; :func:`is_transient_startup_crash`
tells the one crash a second start does not repeat.

Example:
    >>> failure_reason("triton_repo-server.log")
    "model 'cnn-digits' version 1 failed to load: ModuleNotFoundError: No module named 'numpy'"
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

# Crashes of a starting server that a second start does not repeat. The Python backend guards
# each stub's health flag with a boost interprocess mutex in shared memory; while two instances
# initialise at once, locking it has been seen to throw, and the server aborts (SIGABRT, -6)
# before it is ready (also reported upstream: triton-inference-server/server#5949, #8882).
# Nothing of the repository is at fault, so one retry is sound; a second crash is reported.
TRANSIENT_STARTUP_CRASHES = ("boost::interprocess::lock_exception",)
_ABORT_CODES = (-signal.SIGABRT, 128 + signal.SIGABRT)
_LOAD_FAILURE = re.compile(r"failed to load '([^']+)' version (\d+): (.*?)\"?$")
_GLOG_PREFIX = re.compile(r"^[EWI]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")


def is_transient_startup_crash(returncode: int | None, log_text: str) -> bool:
    """Whether a server that exited before it was ready is worth starting once more.

    True only for an abort (exit -6, or 134 through a shell) whose log names one of
    :data:`TRANSIENT_STARTUP_CRASHES`; a model that fails to load, a busy port or a missing
    library exit otherwise and are reported at once.

    Example:
        >>> is_transient_startup_crash(-6, "terminate called after throwing an instance of "
        ...                            "'boost::interprocess::lock_exception'")
        True
    """
    return returncode in _ABORT_CODES and any(marker in log_text
                                              for marker in TRANSIENT_STARTUP_CRASHES)


def failure_reason(log_path: str | os.PathLike) -> str:
    """The server's own reason for failing, as one line, read from its log.

    In order: a model that failed to load, an abort, a port it could not bind, the last error
    line, else the last line it wrote.
    """
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        return "no server log"
    for line in lines:
        match = _LOAD_FAILURE.search(line)
        if match:
            name, version, reason = match.groups()
            reason = reason.split("\\n")[0].strip()
            return f"model {name!r} version {version} failed to load: {reason}"
    for line in lines:
        if line.startswith("terminate called after throwing"):
            return "the server aborted: " + _clean(line)
    for line in lines:
        if "address already in use" in line.lower() or "failed to bind" in line.lower() \
                or "failed to start" in line.lower():
            return _clean(line)
    errors = [line for line in lines if line.startswith("E") or line.startswith("error:")]
    if errors:
        return _clean(errors[-1])
    meaningful = [line for line in lines if line.strip() and not line.startswith(("+", "|"))]
    return _clean(meaningful[-1]) if meaningful else "the server wrote no log"


def default_log_path(repository: str | os.PathLike) -> Path:
    """``<repository>-server.log`` beside the repository: where ``edgekit serve`` logs by default."""
    repository = Path(repository).resolve()
    return repository.with_name(f"{repository.name}-server.log")


def _clean(line: str) -> str:
    """A Triton log line without its ``E1123 18:30:09.650789 13727 file.cc:241]`` prefix."""
    line = _GLOG_PREFIX.sub("", line.strip())
    return line.strip().strip('"').split("\\n")[0]


__all__ = ["TRANSIENT_STARTUP_CRASHES", "default_log_path", "failure_reason", "is_transient_startup_crash"]
