"""Tiny ONNX classifiers and Triton repositories for the serve unit tests, built without TensorFlow."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

CONFIG = """
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy {{ latest {{ num_versions: 1 }} }}
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "probabilities" data_type: TYPE_FP32 dims: [ 3 ] label_filename: "labels.txt" }} ]
instance_group [ {{ count: 2 kind: {kind} }} ]
dynamic_batching {{ preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }}
"""


def write_linear_onnx(path: Path, seed: int = 0, preprocessing: dict | None = None) -> Path:
    """softmax(x @ W + b), input "input" [N, 4] -> "probabilities" [N, 3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["logits_raw"]),
         helper.make_node("Add", ["logits_raw", "b"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)],
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
        [weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if preprocessing is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "edgekit.preprocessing", json.dumps(preprocessing)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def linear_repository(tmp_path) -> Path:
    """``repo/linear/{config.pbtxt, labels.txt, 1/model.onnx}``: an onnxruntime_onnx repository."""
    repository = tmp_path / "repo"
    folder = repository / "linear"
    write_linear_onnx(folder / "1" / "model.onnx",
                      preprocessing={"scale": 0.5, "mean": 0.1, "std": 2.0})
    (folder / "config.pbtxt").write_text(CONFIG.format(name="linear", kind="KIND_CPU"))
    (folder / "labels.txt").write_text("cat\ndog\nbird\n")
    return repository


@pytest.fixture
def onnx_writer():
    """``write_linear_onnx`` for tests that need another version or file."""
    return write_linear_onnx


@pytest.fixture
def config_text():
    """``config_text(name, kind)``: the linear model's config.pbtxt text."""
    return lambda name="linear", kind="KIND_CPU": CONFIG.format(name=name, kind=kind)


@pytest.fixture
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
