"""Per-epoch checkpoints, the state ``--resume`` needs, and early stopping that survives a resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from edgekit._compat import tensorflow
from edgekit.errors import OptionError

STATE_NAME = "state.json"


class CheckpointError(OptionError):
    """A training checkpoint that is missing, cut off or corrupt."""


def checkpoint_dir(run_folder: str | os.PathLike) -> Path:
    return Path(run_folder) / "checkpoints"


def read_state(run_folder: str | os.PathLike) -> dict | None:
    """The saved training state of a run folder, or None when it has no checkpoint."""
    path = checkpoint_dir(run_folder) / STATE_NAME
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"checkpoint state {path} is not JSON ({type(error).__name__}); the "
                              "run that wrote it was cut off. Start over with --force") from error
    if not isinstance(state, dict) or not {"epochs_done", "last_checkpoint", "config"} <= set(state):
        raise CheckpointError(f"checkpoint state {path} is not an edgekit training state; "
                              "start over with --force")
    return state


def restore(model, run_folder: str | os.PathLike, state: dict) -> list[np.ndarray] | None:
    """Load the last epoch's weights and optimizer state; return the best weights seen so far."""
    tf = tensorflow()

    folder = checkpoint_dir(run_folder)
    best_weights = None
    try:
        if state.get("best_checkpoint"):
            tf.train.Checkpoint(model=model).read(
                str(folder / state["best_checkpoint"])).expect_partial()
            best_weights = model.get_weights()
        tf.train.Checkpoint(model=model, optimizer=model.optimizer).read(
            str(folder / state["last_checkpoint"])
        ).expect_partial()
    except Exception as error:  # noqa: BLE001  (TensorFlow's readers raise many kinds)
        raise CheckpointError(
            f"cannot read the checkpoint {folder / state['last_checkpoint']} that "
            f"{folder / STATE_NAME} names ({type(error).__name__}); it is missing or corrupt. "
            "Start over with --force") from error
    return best_weights
