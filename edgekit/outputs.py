"""Atomic output folders: work happens in a hidden staging folder that is renamed at the end.

A failed or interrupted run never leaves a half-written folder where the result belongs; an
interrupted training run keeps its staging folder (with its checkpoints) so ``--resume`` can
continue it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import sys
import uuid
from pathlib import Path

from edgekit.errors import OptionError, OutputExistsError


class OutputBusyError(OutputExistsError):
    """Another edgekit run is writing the same output right now."""


def staging_path(final: str | os.PathLike) -> Path:
    """Where the work for ``final`` happens until it is complete."""
    final = Path(final)
    return final.parent / f".{final.name}.partial"


# Outputs this process has committed (renamed into place): an interruption after that point
# leaves a complete result, which the CLI reports with exit code 0 rather than 130.
COMMITTED: list[Path] = []


def publish(staging: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Move a complete staging folder to ``final``, replacing what was there only at the end.

    Ctrl-C and SIGTERM are held back for the two renames, so the old result and the new one are
    never both half-gone; they are delivered right after.
    """

    staging, final = Path(staging), Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        os.replace(staging, final)
        COMMITTED.append(final)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def discard(staging: str | os.PathLike) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def check_output(final: str | os.PathLike, force: bool, kinds: tuple[str, ...],
                 inputs: tuple = ()) -> None:
    """Refuse an output that cannot be written safely, before any work starts.

    * a path that cannot be renamed into place: the current folder, one of its parents, ``/``
      or a mount point;
    * an output that is, contains or lies inside one of the command's ``inputs`` (files or
      folders it reads), ``--force`` or not: the run would destroy what it reads;
    * an existing folder that edgekit did not write as one of ``kinds`` (its manifest's
      ``stage``): ``--force`` replaces only edgekit's own output;
    * an existing, non-empty edgekit output without ``force``.

    Raises:
        OptionError: the path cannot be an output at all, or would destroy an input.
        OutputExistsError: the output exists (without ``force``, or not edgekit's).
    """
    final = Path(final)
    check_output_path(final, inputs)
    if final.exists() and not final.is_dir():
        raise OutputExistsError(
            f"output {final} exists and is a file; expected a folder path. Choose another --output")
    if not final.is_dir() or not any(final.iterdir()):
        return
    stage = _edgekit_stage(final)
    if stage not in kinds:
        what = (f"an edgekit {stage} folder" if stage else
                "a folder edgekit did not write (it has no edgekit manifest.json)")
        raise OutputExistsError(
            f"output folder {final} exists and is {what}; --force replaces only an edgekit "
            f"{' or '.join(kinds)} folder. Choose another --output, or remove it yourself")
    if not force:
        resume = ", --resume to continue its training" if "train" in kinds else ""
        raise OutputExistsError(
            f"output folder {final} exists and is not empty; pass --force to replace it{resume}, "
            "or choose another --output")


def check_output_path(final: str | os.PathLike, inputs: tuple = ()) -> None:
    """Refuse a path that cannot be renamed into place, or that is, holds or lies in an input."""
    final = Path(final)
    resolved = final.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents or os.path.ismount(resolved):
        where = "a mount point" if os.path.ismount(resolved) else (
            "the current folder" if resolved == cwd else "a parent of the current folder")
        raise OptionError(
            f"cannot write output {str(final)!r}: it is {where}, which edgekit cannot replace "
            "atomically (it writes a new folder and renames it into place). Pass a new folder "
            "path, e.g. --output models/mine")
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if resolved == source or source.is_relative_to(resolved) or \
                (source.is_dir() and resolved.is_relative_to(source)):
            relation = ("is" if resolved == source else "contains" if source.is_relative_to(resolved)
                        else "lies inside")
            raise OptionError(
                f"output {str(final)!r} {relation} the input {str(given)!r}; writing it would "
                "destroy what this run reads, --force or not. Choose another --output")


def _edgekit_stage(folder: Path) -> str | None:

    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("stage") if isinstance(manifest, dict) else None


class OutputLock:
    """One writer per output: an exclusive lock next to it, held for the whole run.

    The lock is ``.<name>.lock`` beside the output, taken with ``flock`` (released by the OS
    when the process dies, so a crashed run never blocks the next one); it holds the writer's
    process id and command for the message the second run prints.
    """

    def __init__(self, final: str | os.PathLike):
        self.final = Path(final)
        self.path = self.final.parent / f".{self.final.name}.lock"
        self._handle = None

    def __enter__(self) -> "OutputLock":

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with writing(self.path):
            handle = open(self.path, "a+b", buffering=0)  # unbuffered: nothing left to flush later
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.seek(0)
            holder = handle.read().decode(errors="replace").strip() or "unknown process"
            handle.close()
            raise OutputBusyError(
                f"output {self.final} is being written by another edgekit run ({holder}); wait "
                "for it to finish, or choose another --output") from error
        try:  # who holds it, for the next run's message; the flock itself is what locks
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()}: {' '.join(sys.argv)[:200]}".encode())
        except OSError:  # a full disk: the lock holds all the same, unnamed
            pass
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:

        if self._handle is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None


@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """Name ``path`` in an OSError raised while writing it (a write() error carries no path)."""
    try:
        yield
    except OSError as error:
        if error.filename is None and error.errno is not None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
