"""Fixtures for the runtime unit tests: tiny models, built on demand (never at import time)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def samples():
    """32 random 8x8x1 model-ready samples, fixed by seed."""
    return np.random.default_rng(0).normal(size=(32, 8, 8, 1)).astype(np.float32)


def linear_onnx(path, weights: np.ndarray, bias: np.ndarray):
    """softmax(reshape(x, [N, 64]) @ W + b): input "input" [N, 8, 8, 1] -> "probabilities" [N, K]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "flat_shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "W"], ["logits_raw"]),
         helper.make_node("Add", ["logits_raw", "b"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)],
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 8, 8, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(bias)])],
        [numpy_helper.from_array(np.array([-1, 64], np.int64), "flat_shape"),
         numpy_helper.from_array(weights.astype(np.float32), "W"),
         numpy_helper.from_array(bias.astype(np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def onnx_file(tmp_path):
    """A random 8x8x1 -> 3 linear classifier as ONNX (no TensorFlow needed)."""
    rng = np.random.default_rng(1)
    return linear_onnx(tmp_path / "linear.onnx", rng.normal(size=(64, 3)), rng.normal(size=3))
