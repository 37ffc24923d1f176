"""The in-memory dataset every stage works from, and the preprocessing it records."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgekit.errors import DataError


@dataclass(frozen=True)
class Preprocessing:
    """``x_model = (x_raw * scale - mean) / std``, applied identically by every stage.

    ``mean`` and ``std`` are one number each (computed on the training split), so the
    same four floats describe the transform for a phone, a server or a test.
    """

    scale: float = 1.0
    mean: float = 0.0
    std: float = 1.0

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) * self.scale - self.mean) / self.std).astype(
            np.float32
        )

    def to_dict(self) -> dict:
        return {"scale": float(self.scale), "mean": float(self.mean), "std": float(self.std),
                "formula": "(x * scale - mean) / std"}

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessing":
        return cls(scale=float(values["scale"]), mean=float(values["mean"]), std=float(values["std"]))

    @classmethod
    def fit(cls, x_train_raw: np.ndarray, scale: float) -> "Preprocessing":
        scaled = np.asarray(x_train_raw, dtype=np.float64) * scale
        std = float(scaled.std())
        return cls(scale=float(scale), mean=float(scaled.mean()), std=std if std > 0 else 1.0)


@dataclass
class Dataset:
    """Train / validation / test splits of raw samples, with what it takes to use them.

    ``x_*`` hold raw values (e.g. 0..255 pixels) as float32 with shape ``(N, *sample_shape)``:
    images are ``(H, W, C)``, sequences ``(T, F)``. ``y_*`` are int64 class indices.
    Call :meth:`preprocessed` (or ``preprocessing.apply``) to get model inputs.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    preprocessing: Preprocessing
    source: str = ""
    kind: str = "image"  # "image" (H, W, C) or "sequence" (T, F)
    augmentable: dict = field(default_factory=dict)  # e.g. {"flip": False}

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def preprocessed(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Model-ready ``(x, y)`` of ``split`` ("train", "val" or "test")."""
        if split not in ("train", "val", "test"):
            raise DataError(f"unknown split {split!r}; expected 'train', 'val' or 'test'")
        x = getattr(self, f"x_{split}")
        y = getattr(self, f"y_{split}")
        return self.preprocessing.apply(x), y

    def describe(self) -> dict:
        """What the manifest records about this dataset."""
        return {
            "name": self.name,
            "source": self.source,
            "kind": self.kind,
            "sample_shape": list(self.sample_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "splits": {"train": int(len(self.y_train)), "val": int(len(self.y_val)),
                       "test": int(len(self.y_test))},
            "preprocessing": self.preprocessing.to_dict(),
        }
