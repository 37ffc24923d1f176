"""Calibration samples: the one set every post-training quantizer (TFLite, ONNX) is fed."""

from __future__ import annotations

import numpy as np

from edgekit.data.base import Dataset
from edgekit.errors import OptionError


def calibration_samples(dataset: Dataset, count: int, seed: int = 0) -> np.ndarray:
    """``count`` preprocessed training samples, chosen by ``seed`` and in a fixed order.

    TFLite int8 and ONNX int8 calibrate on exactly these, so their quantization ranges come
    from the same data.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise OptionError(
            f"calibration samples must be an integer >= 1; received {count!r}. Example: "
            "--calibration-samples 500"
        )
    available = len(dataset.x_train)
    chosen = np.random.default_rng(seed).permutation(available)[: min(count, available)]
    return dataset.preprocessing.apply(dataset.x_train[np.sort(chosen)])
