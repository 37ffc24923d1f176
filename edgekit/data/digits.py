"""scikit-learn's 8x8 handwritten digits: bundled with sklearn, so it never downloads."""

from __future__ import annotations

import numpy as np

from edgekit.data.sources import DATASETS, RawSplits
from edgekit.data.splits import TEST_FRACTION, TEST_SPLIT_SEED, split_indices


@DATASETS.register("digits")
def load_digits(data_dir: str | None = None) -> RawSplits:
    """1797 grey 8x8 digits (values 0..16), 20% held out as a fixed, stratified test split.

    Args:
        data_dir: Ignored; the data ships inside scikit-learn.

    Returns:
        Samples of shape ``(8, 8, 1)``, class names ``"0"`` to ``"9"``, scale ``1/16``.
    """
    # lazy: scikit-learn takes about a second to import; only data loading needs it
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = bunch.images.astype(np.float32)[..., np.newaxis]
    labels = bunch.target.astype(np.int64)
    train, test = split_indices(labels, TEST_FRACTION, TEST_SPLIT_SEED, "test")
    return RawSplits(
        x_train=images[train],
        y_train=labels[train],
        x_test=images[test],
        y_test=labels[test],
        class_names=[str(digit) for digit in range(10)],
        scale=1.0 / 16.0,
        source="sklearn.datasets.load_digits",
        kind="image",
        augmentable={"flip": False},  # a mirrored 2 is not a 2
    )
