"""Seeded, stratified splits and the preprocessing fitted on the training split."""

from __future__ import annotations

import numpy as np

from edgekit.data.base import Dataset, Preprocessing
from edgekit.data.sources import RawSplits
from edgekit.errors import DataError

# Test splits carved by edgekit (digits, image folders) use this fixed seed, not the run's
# seed: models trained with different seeds must be scored on the same test samples.
TEST_SPLIT_SEED = 0
TEST_FRACTION = 0.2

# Rows per chunk when computing mean/std, so Fashion-MNIST never needs a float64 copy.
_STATS_CHUNK_ROWS = 4096


def split_indices(
    labels: np.ndarray, fraction: float, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(len(labels))`` into kept and held-out indices.

    Stratified (each class keeps its share) when every class has at least 2 samples and both
    parts can hold one sample of each class; a plain seeded shuffle split otherwise.

    Args:
        labels: Class index per sample.
        fraction: Share of samples held out, rounded up (sklearn's rule).
        seed: Random seed; the same seed gives the same split.
        what: Name of the held-out split ("validation", "test") for error messages.

    Returns:
        ``(kept, held_out)`` index arrays, each sorted.

    Raises:
        DataError: If there are fewer than 2 samples to split.
    """
    # lazy: scikit-learn takes about a second to import; only data loading needs it
    from sklearn.model_selection import train_test_split

    count = len(labels)
    if count < 2:
        raise DataError(
            f"cannot carve a {what} split from {count} sample(s); expected at least 2; "
            "add samples to the training data"
        )
    classes, class_counts = np.unique(labels, return_counts=True)
    held_out_count = int(np.ceil(fraction * count))
    stratify = (
        labels
        if class_counts.min() >= 2
        and held_out_count >= len(classes)
        and count - held_out_count >= len(classes)
        else None
    )
    kept, held_out = train_test_split(
        np.arange(count), test_size=held_out_count, random_state=seed, stratify=stratify
    )
    return np.sort(kept), np.sort(held_out)


def fit_preprocessing(x_train_raw: np.ndarray, scale: float) -> Preprocessing:
    """Same result as :meth:`Preprocessing.fit`, computed in chunks to bound memory.

    Args:
        x_train_raw: Raw training samples, any numeric dtype.
        scale: Multiplier applied to raw values before normalising.

    Returns:
        The preprocessing whose mean and std are those of ``x_train_raw * scale``.
    """
    flat = x_train_raw.reshape(len(x_train_raw), -1)
    count = flat.size
    total = 0.0
    for start in range(0, len(flat), _STATS_CHUNK_ROWS):
        total += float(flat[start : start + _STATS_CHUNK_ROWS].sum(dtype=np.float64))
    mean = total / count
    squares = 0.0  # second pass on deviations: exact where sum-of-squares would cancel
    for start in range(0, len(flat), _STATS_CHUNK_ROWS):
        chunk = flat[start : start + _STATS_CHUNK_ROWS].astype(np.float64) - mean
        squares += float(np.einsum("ij,ij->", chunk, chunk))
    std = float(np.sqrt(squares / count)) * abs(scale)
    return Preprocessing(scale=float(scale), mean=mean * scale, std=std if std > 0 else 1.0)


def build_dataset(name: str, raw: RawSplits, seed: int, validation_fraction: float) -> Dataset:
    """Carve the validation split from train, fit preprocessing on what is left, cast dtypes.

    Args:
        name: The dataset name recorded in manifests (the spec the user gave).
        raw: Train and test splits from a loader.
        seed: Seed of the validation split.
        validation_fraction: Share of the training samples moved to validation.

    Returns:
        The dataset with float32 raw samples and int64 labels.

    Raises:
        DataError: If the training split is too small to carve a validation split from.
    """
    y_train_all = np.asarray(raw.y_train).astype(np.int64)
    kept, validation = split_indices(y_train_all, validation_fraction, seed, "validation")
    x_train = raw.x_train[kept]  # still in the stored dtype: uint8 is 4x smaller than float32
    return Dataset(
        name=name,
        x_train=x_train.astype(np.float32),
        y_train=y_train_all[kept],
        x_val=raw.x_train[validation].astype(np.float32),
        y_val=y_train_all[validation],
        x_test=np.asarray(raw.x_test).astype(np.float32),
        y_test=np.asarray(raw.y_test).astype(np.int64),
        class_names=list(raw.class_names),
        preprocessing=fit_preprocessing(x_train, raw.scale),
        source=raw.source,
        kind=raw.kind,
        augmentable=dict(raw.augmentable),
        raw_dtype=np.asarray(raw.x_train[:1]).dtype.name,
    )
