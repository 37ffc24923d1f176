"""Datasets: named ones (``digits``, ``fashion_mnist``, ``mnist``), ``npz:PATH`` and ``images:DIR``.

Every source ends up as a :class:`Dataset` with train / validation / test splits of raw float32
samples and the :class:`Preprocessing` fitted on the training split. Nothing is downloaded.

Example:
    >>> from edgekit.data import load_dataset
    >>> dataset = load_dataset("digits", seed=0)
    >>> x, y = dataset.preprocessed("train")
"""

from __future__ import annotations

import numbers
from pathlib import Path

from edgekit.data import arrays, digits, images, mnist  # noqa: F401  (register the loaders)
from edgekit.data.augment import augmentation_layers
from edgekit.data.base import Dataset, Preprocessing
from edgekit.data.sources import DATASETS, SPEC_FORM_USAGE, SPEC_FORMS, RawSplits
from edgekit.data.splits import build_dataset
from edgekit.errors import DataError, OptionError, UnknownNameError

__all__ = [
    "DATASETS",
    "Dataset",
    "Preprocessing",
    "RawSplits",
    "augmentation_layers",
    "dataset_names",
    "load_dataset",
]

MAX_VALIDATION_FRACTION = 0.5


def dataset_names() -> list[str]:
    """The registered dataset names, sorted (the ``npz:`` and ``images:`` forms are not names)."""
    return DATASETS.names()


def _unknown_spec_error(spec: str) -> UnknownNameError:
    forms = " or ".join(SPEC_FORM_USAGE[prefix] for prefix in SPEC_FORMS.names())
    hint = ""
    if spec.endswith(".npz"):
        hint = f"; did you mean npz:{spec}?"
    elif spec and Path(spec).expanduser().is_dir():
        hint = f"; did you mean images:{spec}?"
    return UnknownNameError(
        f"unknown dataset {spec!r}; expected one of: {', '.join(dataset_names())}, "
        f"or {forms}{hint}"
    )


def _check_options(spec: str, seed: int, validation_fraction: float) -> None:
    if not isinstance(spec, str):
        raise OptionError(
            f"dataset spec must be a string; received {spec!r}; pass a name such as 'digits', "
            "npz:PATH or images:DIR"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise OptionError(f"seed must be an integer; received {seed!r}; pass e.g. --seed 0")
    if (
        isinstance(validation_fraction, bool)
        or not isinstance(validation_fraction, numbers.Real)
        or not 0 < validation_fraction <= MAX_VALIDATION_FRACTION
    ):
        raise OptionError(
            f"validation fraction must be in (0, {MAX_VALIDATION_FRACTION}]; received "
            f"{validation_fraction!r}; pass e.g. 0.1 for 10% of the training samples"
        )


def load_dataset(
    spec: str, data_dir: str | None = None, seed: int = 0, validation_fraction: float = 0.1
) -> Dataset:
    """Load a dataset by name or from a file or folder, with a seeded validation split.

    Args:
        spec: A registered name (see :func:`dataset_names`), ``npz:PATH`` or ``images:DIR``.
        data_dir: Folder searched first for ``fashion_mnist`` and ``mnist``; ignored by the
            other sources (``npz:`` and ``images:`` paths are relative to the working folder).
        seed: Seed of the validation split (stratified when every class has 2+ samples).
            Test splits do not depend on it: they are official (MNIST) or fixed.
        validation_fraction: Share of the training samples moved to validation, in (0, 0.5].

    Returns:
        The dataset; ``name`` is ``spec`` as given.

    Raises:
        UnknownNameError: If ``spec`` is neither a registered name nor a known ``PREFIX:`` form.
        OptionError: If ``validation_fraction`` is outside (0, 0.5], ``seed`` is not an int
            or ``spec`` is not a string.
        DataError: If the data is missing or malformed.

    Example:
        >>> load_dataset("fashion_mnist", data_dir="~/data").describe()["splits"]
        {'train': 54000, 'val': 6000, 'test': 10000}
        >>> load_dataset("npz:sensors.npz", seed=1)
    """
    _check_options(spec, seed, validation_fraction)
    if spec in DATASETS:
        raw = DATASETS.get(spec)(data_dir)
    else:
        prefix, separator, argument = spec.partition(":")
        if not separator or prefix not in SPEC_FORMS:
            raise _unknown_spec_error(spec)
        if not argument:
            raise DataError(
                f"dataset spec {spec!r} has no path after '{prefix}:'; expected "
                f"{SPEC_FORM_USAGE[prefix]}; add the path"
            )
        raw = SPEC_FORMS.get(prefix)(argument)
    return build_dataset(spec, raw, int(seed), float(validation_fraction))
