"""Atomic output folders: work happens in a hidden staging folder that is renamed at the end.

A failed or interrupted run never leaves a half-written folder where the result belongs; an
interrupted training run keeps its staging folder (with its checkpoints) so ``--resume`` can
continue it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from edgekit.errors import OutputExistsError


def staging_path(final: str | os.PathLike) -> Path:
    """Where the work for ``final`` happens until it is complete."""
    final = Path(final)
    return final.parent / f".{final.name}.partial"


def check_writable(final: str | os.PathLike, force: bool) -> None:
    """Refuse an output folder that exists and is not empty, unless ``force``."""
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise OutputExistsError(
            f"output {final} exists and is a file; expected a folder path. Choose another --output"
        )
    if final.is_dir() and any(final.iterdir()) and not force:
        raise OutputExistsError(
            f"output folder {final} exists and is not empty; pass --force to replace it, "
            "--resume to continue its training, or choose another --output"
        )


def publish(staging: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Move a complete staging folder to ``final``, replacing what was there only at the end."""
    staging, final = Path(staging), Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def discard(staging: str | os.PathLike) -> None:
    shutil.rmtree(staging, ignore_errors=True)
