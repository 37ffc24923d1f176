"""What a dataset loader returns, and the two registries loaders plug into.

A loader only reads files: it returns the train and test splits in their stored dtype plus
what it knows about them (class names, pixel scale, kind). :func:`edgekit.data.splits.build_dataset`
then carves the validation split and fits the preprocessing, the same way for every source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgekit.registry import Registry


@dataclass
class RawSplits:
    """Train and test splits as read from disk, before validation carving and preprocessing.

    Attributes:
        x_train: Samples ``(N, *sample_shape)`` in their stored dtype (e.g. uint8 pixels).
        y_train: Class indices ``(N,)``.
        x_test: Test samples, same sample shape as ``x_train``.
        y_test: Test class indices.
        class_names: One name per class index.
        scale: Multiplier that brings raw values to about 0..1 (``1/255`` for 8-bit pixels).
        source: Where the data came from (a file, a folder or a library function).
        kind: ``"image"`` for ``(H, W, C)`` samples, ``"sequence"`` for ``(T, F)``.
        augmentable: Which augmentations keep the label, e.g. ``{"flip": False}`` for digits.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    scale: float
    source: str
    kind: str = "image"
    augmentable: dict = field(default_factory=dict)


# Named datasets: ``loader(data_dir) -> RawSplits``; data_dir may be None.
DATASETS: Registry[Callable[[str | None], RawSplits]] = Registry("dataset")

# Spec forms ``PREFIX:ARGUMENT`` (``npz:PATH``, ``images:DIR``): ``loader(argument) -> RawSplits``.
SPEC_FORMS: Registry[Callable[[str], RawSplits]] = Registry("dataset form")

# One-line usage of each spec form, for error messages.
SPEC_FORM_USAGE = {
    "npz": "npz:PATH (a .npz file holding x_train, y_train, x_test, y_test)",
    "images": "images:DIR (one sub-folder of images per class)",
}


def dataset_inputs(spec: str | None, data_dir: str | None = None) -> tuple[str, ...]:
    """The files and folders a dataset spec reads (``npz:PATH``, ``images:DIR``, ``--data-dir``).

    A run must never write its output over them.
    """
    found = [data_dir] if data_dir else []
    if isinstance(spec, str) and ":" in spec:
        found.append(spec.split(":", 1)[1])
    return tuple(found)
