"""``edgekit export --onnx-float-layers``: the int8 ONNX file keeps some Keras layers in float.

The model is built so that one layer ruins full int8 and nothing else does (``wide_range``:
every output unit reads a dead input unit through a weight of 1000, so per-channel int8 weights
lose every other weight of that layer); int8 calibrates on 100 samples.
"""

from __future__ import annotations

import json
import shlex
from types import SimpleNamespace

import numpy as np
import pytest

from edgekit.compress import compress
from edgekit.errors import ModelError, OptionError
from edgekit.export import export
from edgekit.export.onnx import _preflight
from edgekit.export.run import FidelityError
from edgekit.runtimes.onnxruntime import OnnxRuntimeModel

MODEL_FILE = {"dataset": "digits", "preprocess": "scale=0.0625", "calibration_samples": 100}
INT8_ONLY = {"to": "onnx", "onnx_precisions": "int8"}


@pytest.fixture(scope="module")
def float_layer_folder(sensitive_model, tmp_path_factory):
    """``edgekit compress --int8 --float-layers wide_range`` of the sensitive model."""
    folder = tmp_path_factory.mktemp("compressed") / "sensitive-int8-float1"
    compress(str(sensitive_model), output_dir=folder, progress=False, int8=True,
             float_layers="wide_range", **MODEL_FILE)
    return folder


def _weights_in_float(path) -> dict[str, bool]:
    """Each Conv / Gemm / MatMul node of an .onnx: True when its weight is a float tensor, False
    when it comes out of a DequantizeLinear (an int8 weight)."""
    import onnx

    graph = onnx.load(str(path)).graph
    dequantized = {name for node in graph.node if node.op_type == "DequantizeLinear"
                   for name in node.output}
    return {node.name: node.input[1] not in dequantized for node in graph.node
            if node.op_type in ("Conv", "Gemm", "MatMul")}


def _test_accuracy(path) -> float:
    outputs = OnnxRuntimeModel.load(path).run(_test_split()[0])
    return float((np.asarray(outputs).argmax(axis=1) == _test_split()[1]).mean())


def _keras_accuracy(path) -> float:
    from edgekit._compat import keras

    outputs = keras().models.load_model(path).predict(_test_split()[0], verbose=0)
    return float((np.asarray(outputs).argmax(axis=1) == _test_split()[1]).mean())


def _test_split():
    from edgekit.data import load_dataset

    dataset = load_dataset("digits", seed=0)
    return dataset.x_test * 0.0625, dataset.y_test


def test_onnx_float_layers_keeps_that_layer_float_and_agrees_with_keras(sensitive_model,
                                                                        tmp_path):
    with pytest.raises(FidelityError, match="onnx-int8: top-1 agreement"):
        export(str(sensitive_model), output_dir=tmp_path / "full", **INT8_ONLY, **MODEL_FILE)

    result = export(str(sensitive_model), output_dir=tmp_path / "kept", **INT8_ONLY,
                    onnx_float_layers="wide_range", **MODEL_FILE)
    entry = result.artifacts["onnx-int8"]
    assert entry["status"] == "passed" and entry["fidelity"]["top1_agreement"] >= 0.98
    assert abs(_test_accuracy(result.path("onnx-int8")) - _keras_accuracy(sensitive_model)) \
        <= 0.01
    in_float = _weights_in_float(result.path("onnx-int8"))
    assert [name for name, is_float in in_float.items() if is_float] == [
        "sensitive/wide_range/MatMul/MatMulAddFusion"], in_float
    assert len(in_float) == 3  # features and probabilities keep int8 weights
    options = entry["options"]
    assert options["float_layers"] == ["wide_range"]
    assert options["float_layers_from"] == "--onnx-float-layers"
    # The ReLU feeding the float layer stays in float too, so its clamp is not lost.
    assert "sensitive/features/Relu" in options["nodes_to_exclude"]
    assert "--onnx-float-layers wide_range" in entry["command"]


def test_a_folder_made_with_float_layers_keeps_them_in_its_onnx_int8_and_says_so(
        float_layer_folder, tmp_path):
    result = export(float_layer_folder, output_dir=tmp_path / "export", **INT8_ONLY)
    entry = result.artifacts["onnx-int8"]
    assert entry["status"] == "passed"
    assert entry["options"]["float_layers"] == ["wide_range"]
    assert "compress recipe's --float-layers" in entry["options"]["float_layers_from"]
    assert "--onnx-float-layers" not in shlex.split(entry["command"])
    keras_accuracy = json.loads((float_layer_folder / "manifest.json").read_text())[
        "comparison"]["rows"][0]["accuracy"]
    assert abs(_test_accuracy(result.path("onnx-int8")) - keras_accuracy) <= 0.01
    # The TFLite int8 export reuses the folder's file: the same layer in float.
    tflite = export(float_layer_folder, output_dir=tmp_path / "tflite", to="tflite")
    assert tflite.artifacts["tflite-int8"]["converter"]["name"] == "reused"


def test_onnx_float_layers_none_quantizes_every_layer_of_such_a_folder(float_layer_folder,
                                                                       tmp_path):
    with pytest.raises(FidelityError) as ruined:
        export(float_layer_folder, output_dir=tmp_path / "none", **INT8_ONLY,
               onnx_float_layers="none")
    entry = ruined.value.result.artifacts["onnx-int8"]
    assert "float_layers" not in entry["options"] and entry["options"]["nodes_to_exclude"] == []
    assert not any(_weights_in_float(ruined.value.result.path("onnx-int8")).values())


def test_unknown_layers_are_refused_before_anything_is_written(float_layer_folder, tmp_path):
    output = tmp_path / "never"
    with pytest.raises(ModelError, match="--onnx-float-layers names 'dense', not a layer of "
                                         "model 'sensitive'; expected some of its layers: "
                                         "flatten, features, wide_range, probabilities$"):
        export(float_layer_folder, output_dir=output, **INT8_ONLY, onnx_float_layers="dense")
    assert not output.exists()


def test_contradictory_options_are_refused_saying_what_to_do(float_layer_folder, tmp_path):
    with pytest.raises(OptionError, match="received --onnx-precisions fp32. Add int8 to "
                                          "--onnx-precisions, or drop --onnx-float-layers"):
        export(float_layer_folder, output_dir=tmp_path / "never", to="onnx",
               onnx_precisions="fp32", onnx_float_layers="wide_range")
    config = SimpleNamespace(onnx_float_layers=("wide_range",))
    qat_source = SimpleNamespace(qat_model=object(), name="cnn-digits-qat", model=None)
    with pytest.raises(OptionError, match="quantization-aware model 'cnn-digits-qat'.*Drop "
                                          "--onnx-float-layers"):
        _preflight(config, qat_source)
