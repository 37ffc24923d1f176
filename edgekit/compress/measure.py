"""The proof of a compression: accuracy, weights and size of the parent and the result, side by side.

Four rows, measured in the same run on the dataset's test split: the parent's Keras model, the
parent converted to a float32 .tflite (the size reference), the result's model.keras (reloaded
from disk) and the result's model.tflite (run through LiteRT). Accuracy drops are in points
against the parent's Keras model; size ratios against the parent's float32 .tflite; sparsity is
counted in the .tflite's own weight buffers.
"""

from __future__ import annotations

import gzip

import numpy as np

from edgekit.compress.flatbuffer import weight_sparsity


def gzip_size(content: bytes) -> int:
    """Bytes after gzip -9 (mtime 0, so the figure is reproducible)."""
    return len(gzip.compress(content, compresslevel=9, mtime=0))


def keras_probabilities(model, x: np.ndarray, from_logits: bool) -> np.ndarray:
    outputs = model.predict(x, batch_size=256, verbose=0)
    return _softmax(outputs) if from_logits else outputs


def tflite_probabilities(runtime, x: np.ndarray, from_logits: bool) -> np.ndarray:
    outputs = runtime.run(x)
    return _softmax(outputs) if from_logits else outputs


def keras_row(label: str, model, content: bytes, probabilities: np.ndarray, y: np.ndarray,
              reference_accuracy: float | None) -> dict:
    """A Keras model's row: accuracy, parameters, nonzero weights, file size raw and gzipped."""
    weights = model.get_weights()
    return {
        "label": label,
        "format": "keras",
        **_accuracy(probabilities, y, reference_accuracy),
        "parameters": int(sum(weight.size for weight in weights)),
        "nonzero_weights": int(sum(np.count_nonzero(weight) for weight in weights)),
        "bytes": len(content),
        "gzip_bytes": gzip_size(content),
    }


def tflite_row(label: str, mode: str, content: bytes, probabilities: np.ndarray, y: np.ndarray,
               reference_accuracy: float | None, reference_sizes: tuple[int, int] | None,
               runtime_description: dict) -> dict:
    """A .tflite row: accuracy through LiteRT, sizes and their ratios, weights in the buffers."""
    size, gzipped = len(content), gzip_size(content)
    reference_sizes = reference_sizes or (size, gzipped)
    sparsity = weight_sparsity(content)
    return {
        "label": label,
        "format": "tflite",
        "mode": mode,
        **_accuracy(probabilities, y, reference_accuracy),
        "bytes": size,
        "gzip_bytes": gzipped,
        "size_ratio_to_parent_fp32_tflite": round(size / reference_sizes[0], 6),
        "gzip_ratio_to_parent_fp32_tflite": round(gzipped / reference_sizes[1], 6),
        "weights_in_file": sparsity,
        "io": {"input": runtime_description["input"]["dtype"],
               "output": runtime_description["output"]["dtype"]},
    }


def _accuracy(probabilities: np.ndarray, y: np.ndarray, reference: float | None) -> dict:
    accuracy = float((np.asarray(probabilities).argmax(axis=1) == y).mean())
    drop = None if reference is None else round((reference - accuracy) * 100, 4)
    return {"accuracy": accuracy, "accuracy_drop_points": drop}


def _softmax(outputs: np.ndarray) -> np.ndarray:
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)
