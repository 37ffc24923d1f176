"""Training callbacks: a checkpoint every epoch, and early stopping that survives a resume.

They subclass tf-keras callbacks, so importing this module loads TensorFlow: :mod:`edgekit.train.run`
imports it inside the function that fits.
"""

from __future__ import annotations

import json
import os

import numpy as np

from edgekit._compat import keras, tensorflow
from edgekit.train.checkpoint import STATE_NAME, checkpoint_dir


class EpochCheckpoint(keras().callbacks.Callback):
    """After every epoch: weights + optimizer state, history and early-stopping state on disk.

    ``state.json`` is replaced atomically after the checkpoint files it names are complete, so a
    run killed at any moment resumes from the last whole epoch.
    """

    def __init__(self, run_folder, config: dict, history: dict, early_stopping=None):
        super().__init__()
        self.folder = checkpoint_dir(run_folder)
        self.config = config
        self.history = {key: list(values) for key, values in history.items()}
        self.early_stopping = early_stopping
        self.best_checkpoint = None

    def on_epoch_end(self, epoch, logs=None):
        tf = tensorflow()

        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.folder.mkdir(parents=True, exist_ok=True)
        last = f"epoch-{epoch + 1:04d}"
        tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer).write(
            str(self.folder / last)
        )
        stopper = self.early_stopping
        if stopper is not None and stopper.best_epoch == epoch:
            self.best_checkpoint = f"best-{epoch + 1:04d}"
            tf.train.Checkpoint(model=self.model).write(str(self.folder / self.best_checkpoint))
        state = {
            "epochs_done": epoch + 1,
            "last_checkpoint": last,
            "best_checkpoint": self.best_checkpoint,
            "history": self.history,
            "early_stopping": stopper.state() if stopper is not None else None,
            "config": self.config,
        }
        temporary = self.folder / f".{STATE_NAME}.tmp"
        temporary.write_text(json.dumps(state, indent=1))
        os.replace(temporary, self.folder / STATE_NAME)
        self._remove_stale({last, self.best_checkpoint})

    def _remove_stale(self, keep: set) -> None:
        for path in self.folder.iterdir():
            prefix = path.name.split(".")[0]
            if prefix.startswith(("epoch-", "best-")) and prefix not in keep:
                path.unlink()


class ResumableEarlyStopping(keras().callbacks.Callback):
    """Early stopping on validation loss with best-weights restore, whose state can be resumed.

    Keras' own EarlyStopping resets its counters in ``on_train_begin``, which would forget
    the epochs before an interruption.
    """

    def __init__(self, patience: int, state: dict | None = None, best_weights=None):
        super().__init__()
        self.patience = patience
        self.best = np.inf
        self.best_epoch = -1
        self.wait = 0
        self.best_weights = best_weights
        self.stopped_epoch = None
        if state:
            self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]

    def state(self) -> dict:
        return {"best": float(self.best), "best_epoch": int(self.best_epoch), "wait": int(self.wait)}

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get("val_loss")
        if current is None or not np.isfinite(current):
            return
        if current < self.best:
            self.best, self.best_epoch, self.wait = float(current), epoch, 0
            self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.patience and self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
