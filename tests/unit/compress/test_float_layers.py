"""``edgekit compress --int8 --float-layers``: full int8 with some Keras layers kept in float.

The parent is built so that one layer ruins full int8 and nothing else does (``wide_range``:
every output unit reads a dead input unit through a weight of 1000, so per-channel int8 weights
lose every other weight of that layer); the conversions calibrate on 100 samples.
"""

from __future__ import annotations

import json
import shlex

import pytest

from edgekit.compress import compress
from edgekit.compress.config import CompressConfig
from edgekit.compress.flatbuffer import read_weight_tensors
from edgekit.compress.run import ConversionCheckError
from edgekit.errors import ModelError, OptionError
from edgekit.runtimes.litert import LiteRTModel

SENSITIVE = {"dataset": "digits", "preprocess": "scale=0.0625", "calibration_samples": 100}


@pytest.fixture(scope="module")
def float_layer_folder(sensitive_model, tmp_path_factory):
    """``compress --int8 --float-layers wide_range`` of the sensitive model."""
    folder = tmp_path_factory.mktemp("compressed") / "sensitive-int8-float1"
    compress(str(sensitive_model), output_dir=folder, progress=False, int8=True,
             float_layers="wide_range", **SENSITIVE)
    return folder


def _manifest(folder) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _float_weight_ops(content: bytes) -> list[str]:
    """The ops of a .tflite whose weights are stored in float32 (the rest are int8)."""
    return [tensor.name for tensor in read_weight_tensors(content) if tensor.dtype == "float32"]


def test_int8_ruined_by_one_layer_is_within_a_point_of_keras_with_that_layer_in_float(
        sensitive_model, float_layer_folder, tmp_path):
    with pytest.raises(ConversionCheckError) as ruined:
        compress(str(sensitive_model), output_dir=tmp_path / "int8", progress=False, int8=True,
                 **SENSITIVE)
    keras_accuracy = ruined.value.result.rows[0]["accuracy"]
    assert ruined.value.result.accuracy < keras_accuracy - 0.5  # full int8: about 10%

    manifest = _manifest(float_layer_folder)
    assert manifest["status"] == "complete"
    tflite_row = manifest["comparison"]["rows"][-1]
    assert abs(tflite_row["accuracy"] - keras_accuracy) <= 0.01
    assert manifest["comparison"]["tflite_top1_agreement_with_keras"] >= 0.98
    # The folder's file keeps exactly that layer's weights in float; every other one is int8.
    assert _float_weight_ops((float_layer_folder / "model.tflite").read_bytes()) == [
        "sensitive/wide_range/MatMul"]


def test_the_manifest_records_the_layers_the_recipe_and_a_command_that_reproduces_it(
        float_layer_folder, edgekit_cli, tmp_path):
    manifest = _manifest(float_layer_folder)
    assert manifest["recipe"] == "int8-float1"
    assert manifest["config"]["float_layers"] == "wide_range"
    stage = manifest["stages"]["ptq"]
    assert stage["mode"] == "int8" and stage["float_layers"] == ["wide_range"]
    assert stage["float_nodes"] and all("wide_range" in node for node in stage["float_nodes"])
    assert "wide_range kept in float" in stage["summary"]

    command = shlex.split(manifest["command"])
    assert command[command.index("--float-layers") + 1] == "wide_range" and "--int8" in command
    again = tmp_path / "again"
    command[command.index("--output") + 1] = str(again)
    outcome = edgekit_cli(*command[2:])
    assert outcome.exit_code == 0, outcome.output
    assert (again / "model.tflite").read_bytes() == \
        (float_layer_folder / "model.tflite").read_bytes()


def test_int8_io_keeps_int8_tensors_with_the_output_layer_in_float(sensitive_model, tmp_path):
    result = compress(str(sensitive_model), output_dir=tmp_path / "io", progress=False,
                      int8=True, int8_io=True, float_layers="wide_range,probabilities",
                      **SENSITIVE)
    assert result.manifest["recipe"] == "int8-float2-int8io"
    runtime = LiteRTModel.load(result.tflite_path)
    description = runtime.describe()
    assert description["input"]["dtype"] == description["output"]["dtype"] == "int8"
    assert abs(result.accuracy - result.rows[0]["accuracy"]) <= 0.01
    assert _float_weight_ops(result.tflite_path.read_bytes()) == [
        "sensitive/wide_range/MatMul", "sensitive/probabilities/MatMul"]


@pytest.mark.parametrize("options, message", [
    ({"float_layers": "wide_range"}, "it needs --int8; received no --int8. Add --int8, or drop"),
    ({"dynamic": True, "float_layers": "wide_range"}, "received --dynamic. Add --int8 instead"),
    ({"qat": True, "float_layers": "wide_range"}, "received it with --qat, whose int8 model "
                                                  "keeps the ranges it learned"),
    ({"qat": True, "int8": True, "float_layers": "wide_range"}, "Use --int8 without --qat"),
    ({"int8": True, "float_layers": " , "}, "--float-layers names no layer; received ' , '"),
    ({"int8": True, "float_layers": ["wide_range"]},
     r"--float-layers takes .*, comma-separated Keras layer names; received \['wide_range'\]"),
])
def test_contradictory_flags_are_refused_saying_what_to_do(options, message):
    with pytest.raises(OptionError, match=message):
        CompressConfig.from_options({"model": "MODEL", **options})


def test_unknown_layer_names_are_refused_before_any_work_listing_the_model_s_layers(
        sensitive_model, tmp_path):
    output = tmp_path / "never"
    with pytest.raises(ModelError, match="--float-layers names 'wide', not a layer of model "
                                         "'sensitive'; expected some of its layers: "
                                         "flatten, features, wide_range, probabilities$"):
        compress(str(sensitive_model), output_dir=output, progress=False, int8=True,
                 float_layers="wide_range,wide", **SENSITIVE)
    with pytest.raises(ModelError, match="names 'input', the input, which computes nothing"):
        compress(str(sensitive_model), output_dir=output, progress=False, int8=True,
                 float_layers="input", **SENSITIVE)
    assert not output.exists()


def test_the_cli_gives_one_line_and_exit_2_for_a_bad_layer(sensitive_model, edgekit_cli,
                                                            tmp_path):
    outcome = edgekit_cli(str(sensitive_model), "--dataset", "digits", "--preprocess",
                          "scale=0.0625", "--int8", "--float-layers", "dense_9",
                          "--output", str(tmp_path / "never"))
    assert outcome.exit_code == 2
    lines = outcome.output.strip().splitlines()
    assert lines[-1].startswith("error: --float-layers names 'dense_9', not a layer"), lines


def test_the_recipe_counts_the_layers_and_the_command_names_them():
    config = CompressConfig.from_options({"model": "m", "int8": True, "int8_io": True,
                                          "float_layers": "conv2, dense,conv2"})
    assert config.recipe() == "int8-float2-int8io"
    args = config.to_cli_args()
    assert args[args.index("--float-layers") + 1] == "conv2, dense,conv2"
    assert CompressConfig.from_options({"model": "m", "int8": True}).recipe() == "int8"


@pytest.mark.parametrize("node, model_name, layer", [
    ("sensitive/wide_range/MatMul;sensitive/wide_range/Relu", "sensitive", "wide_range"),
    # Keras 3 is traced twice on its way to TFLite: the second trace's scopes are renamed.
    ("k3_1/dense_1/MatMul;k3_1/dense_1/Relu", "k3", "dense"),
    ("k3_1/dense_1_2/MatMul;k3_1/dense_1_2/Relu", "k3", "dense_1"),
    ("k3_1/out_1/MatMul1", "k3", "out"),
    ("StatefulPartitionedCall_1:0", "k3", None),  # the output: TfliteLayers names its layer
])
def test_converter_names_map_to_the_keras_layers_they_came_from(node, model_name, layer):
    from edgekit.formats.tflite_layers import keras_layer_of

    names = {"wide_range", "flat", "dense", "dense_1", "out"}
    assert keras_layer_of(node, names, model_name) == layer
