"""The in-memory dataset every stage works from, and the preprocessing it records."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from edgekit.errors import DataError


def _numbers(value, name: str):
    """A float, or a tuple of floats for per-channel values (lists and arrays accepted)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        values = tuple(float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1))
        if not values:
            raise DataError(f"preprocessing {name} is an empty list; expected a number or one "
                            "number per channel")
        return values[0] if len(values) == 1 else values
    return float(value)


@dataclass(frozen=True)
class Preprocessing:
    """``x_model = (x_raw * scale - mean) / std``, applied identically by every stage.

    ``mean`` and ``std`` are one number each, or one per channel (the last axis of a sample),
    so a handful of floats describe the transform for a phone, a server or a test. The default
    (scale 1, mean 0, std 1) is the identity: the model takes raw values as they are.
    """

    scale: float = 1.0
    mean: float | tuple = 0.0
    std: float | tuple = 1.0

    def __post_init__(self):
        object.__setattr__(self, "scale", _numbers(self.scale, "scale"))
        if isinstance(self.scale, tuple):
            raise DataError(f"preprocessing scale must be one number; received {list(self.scale)}")
        object.__setattr__(self, "mean", _numbers(self.mean, "mean"))
        object.__setattr__(self, "std", _numbers(self.std, "std"))

    @property
    def identity(self) -> bool:
        """True when the model takes raw values as they are (``--preprocess none``)."""
        return (self.scale == 1.0 and all(m == 0.0 for m in np.atleast_1d(self.mean))
                and all(s == 1.0 for s in np.atleast_1d(self.std)))

    @property
    def channels(self) -> int | None:
        """How many channels per-channel ``mean`` / ``std`` cover (None: scalars)."""
        lengths = {len(v) for v in (self.mean, self.std) if isinstance(v, tuple)}
        return lengths.pop() if len(lengths) == 1 else (max(lengths) if lengths else None)

    def apply(self, x: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return ((np.asarray(x, dtype=np.float32) * np.float32(self.scale) - mean) / std).astype(
            np.float32, copy=False)

    def to_dict(self) -> dict:
        def plain(value):
            return [float(v) for v in value] if isinstance(value, tuple) else float(value)

        return {"scale": float(self.scale), "mean": plain(self.mean), "std": plain(self.std),
                "formula": "(x * scale - mean) / std", "none": self.identity}

    def describe(self) -> str:
        """``(x * 0.0625 - 0) / 1``, or ``none`` for the identity."""
        if self.identity:
            return "none (raw values as they are)"

        def text(value):
            if isinstance(value, tuple):
                return "[" + ", ".join(f"{v:.6g}" for v in value) + "]"
            return f"{value:.6g}"

        return f"(x * {self.scale:.6g} - {text(self.mean)}) / {text(self.std)}"

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessing":
        return cls(scale=values["scale"], mean=values["mean"], std=values["std"])

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
    raw_dtype: str = "float32"  # the dtype the samples were stored in (uint8 pixels...)
    contract: object = None  # the InputContract once a stage resolved it (edgekit.data.contract)

    def with_contract(self, contract) -> "Dataset":
        """This dataset preprocessed under ``contract`` (its preprocessing replaces the fitted one)."""

        return dataclasses.replace(self, preprocessing=contract.preprocessing, contract=contract)

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
            **({"input_contract": self.contract.to_dict()} if self.contract is not None else {}),
        }
