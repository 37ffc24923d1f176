"""Task accuracy on the test split, and fidelity to the Keras model the artifact came from.

Both are computed in the parent from the outputs each worker saved, on the same inputs (the test
split with the manifest's preprocessing), so every artifact is judged on exactly the same data.

Example:
    >>> accuracy(outputs, y_test)
    0.9722
    >>> fidelity(keras_outputs, tflite_outputs)
    {'agreement': 1.0, 'max_abs_diff': 1.2e-07, 'mean_abs_diff': 8.1e-09, 'samples': 360}
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import DataError


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of ``outputs`` (N, classes) against integer ``labels`` (N,)."""
    outputs, labels = np.asarray(outputs), np.asarray(labels)
    if outputs.ndim != 2 or len(outputs) != len(labels):
        raise DataError(f"outputs of shape {outputs.shape} do not fit {len(labels)} labels; "
                        "expected (N, classes) class scores")
    return float((outputs.argmax(axis=1) == labels).mean()) if len(labels) else 0.0


def fidelity(reference: np.ndarray, outputs: np.ndarray) -> dict:
    """Top-1 agreement and max / mean absolute output difference against ``reference``."""
    reference, outputs = np.asarray(reference, np.float32), np.asarray(outputs, np.float32)
    if reference.shape != outputs.shape:
        raise DataError(f"outputs of shape {outputs.shape} cannot be compared with the reference's "
                        f"{reference.shape}; expected the same samples and classes")
    difference = np.abs(reference - outputs)
    return {"agreement": float((reference.argmax(1) == outputs.argmax(1)).mean()),
            "max_abs_diff": float(difference.max()) if difference.size else 0.0,
            "mean_abs_diff": float(difference.mean()) if difference.size else 0.0,
            "samples": int(len(reference))}
