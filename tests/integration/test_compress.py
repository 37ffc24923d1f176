"""``edgekit compress`` end to end: real tfmot fine-tuning, real TFLite files run by LiteRT.

One tiny cnn is trained on digits once for the module; every recipe compresses it with one
fine-tuning epoch and 100 calibration samples, then the files in the new folder are checked.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from edgekit.compress.flatbuffer import read_weight_tensors
from edgekit.errors import DataError, ModelError, OptionError
from edgekit.manifest import sha256_file

FAST = {"finetune_epochs": 1, "calibration_samples": 100, "progress": False}


def _hashes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A trained tiny cnn folder, ``<work>/models/cnn-digits``, and the sha256 of its files."""
    import edgekit

    folder = tmp_path_factory.mktemp("work") / "models" / "cnn-digits"
    edgekit.train(model="cnn", model_options={"filters": 4, "dense_units": 16}, epochs=3,
                  output_dir=folder, progress=False)
    return folder, _hashes(folder)


@pytest.fixture
def compress_cli():
    """``edgekit compress ...`` through click, with edgekit's error handling."""
    import click
    from click.testing import CliRunner

    from edgekit.cli.common import EdgekitGroup
    from edgekit.cli.compress import compress_command

    @click.group(cls=EdgekitGroup)
    def edgekit_group():
        """edgekit"""

    edgekit_group.add_command(compress_command)
    runner = CliRunner()
    return lambda *args: runner.invoke(edgekit_group, ["compress", *args], catch_exceptions=False)


def _kernels(tflite: Path, ops=("CONV_2D", "FULLY_CONNECTED")) -> list:
    return [tensor for tensor in read_weight_tensors(tflite.read_bytes()) if tensor.op in ops]


def _max_distinct_per_output_channel(tensor) -> int:
    rows = tensor.values.reshape(tensor.values.shape[0], -1)  # TFLite kernels: output axis first
    return max(len(np.unique(row)) for row in rows)


def _check_pruned_to_half(folder, manifest):
    assert manifest["comparison"]["rows"][-1]["weights_in_file"]["sparsity"] >= 0.49
    for tensor in _kernels(folder / "model.tflite"):
        assert tensor.zeros / tensor.values.size >= 0.49, tensor.name


def _check_two_of_four(folder, manifest):
    pruned = manifest["stages"]["prune"]["pruned_layers"]
    assert manifest["stages"]["prune"]["kept_dense"][0]["layer"] == "block1_conv1"  # 1 channel
    checked = 0
    for tensor in _kernels(folder / "model.tflite"):
        if tensor.values.shape[-1] % 4:
            continue
        blocks = tensor.values.reshape(-1, 4)  # consecutive input-channel weights
        assert ((blocks == 0).sum(axis=1) >= 2).all(), tensor.name
        checked += 1
    assert checked == len(pruned)


def _check_clustered(clusters):
    def check(folder, manifest):
        from edgekit._compat import keras

        model = keras().models.load_model(folder / "model.keras", compile=False)
        for name in manifest["stages"]["cluster"]["clustered_layers"]:
            kernel = model.get_layer(name).get_weights()[0]
            if "qat" in manifest["stages"]:  # tfmot's CQAT re-clusters per output channel
                columns = kernel.reshape(-1, kernel.shape[-1])
                distinct = [len(np.unique(columns[:, i])) for i in range(columns.shape[1])]
                assert max(distinct) <= clusters, name
            else:
                assert len(np.unique(kernel)) <= clusters, name
        for tensor in _kernels(folder / "model.tflite"):
            assert _max_distinct_per_output_channel(tensor) <= clusters, tensor.name
    return check


def _check_int8_weights(folder, manifest):
    dtypes = manifest["comparison"]["rows"][-1]["weights_in_file"]["by_dtype"]
    assert set(dtypes) == {"int8"}


def _check_qat_file_reloads(folder, manifest):
    import tensorflow_model_optimization as tfmot

    from edgekit._compat import keras
    from edgekit.formats.tflite import is_quantization_aware

    with tfmot.quantization.keras.quantize_scope():
        model = keras().models.load_model(folder / manifest["model"]["qat_file"], compile=False)
    assert is_quantization_aware(model)


def _check_fine_tuned_in_bfloat16_saved_in_float32(folder, manifest):
    from edgekit._compat import keras

    assert manifest["stages"]["prune"]["finetune"]["precision_policy"] == "mixed_bfloat16"
    model = keras().models.load_model(folder / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert keras().mixed_precision.global_policy().name == "float32"


def _both(*checks):
    def check(folder, manifest):
        for one in checks:
            one(folder, manifest)
    return check


RECIPES = {
    "int8": ({"int8": True}, _check_int8_weights),
    "fp16": ({"fp16": True}, None),  # --dynamic: the CLI test; --int16x8: the model-file test
    "prune50": ({"prune": 0.5, "precision": "mixed_bfloat16"},
                _both(_check_pruned_to_half, _check_fine_tuned_in_bfloat16_saved_in_float32)),
    "prune2of4-int8-int8io": ({"prune_structure": "2:4", "int8": True, "int8_io": True},
                              _both(_check_two_of_four, _check_int8_weights)),
    "cluster16": ({"cluster": 16}, _check_clustered(16)),
    "cluster16-int8": ({"cluster": 16, "int8": True}, _check_clustered(16)),
    "qat": ({"qat": True}, _both(_check_int8_weights, _check_qat_file_reloads)),
    "prune50-qat": ({"prune": 0.5, "qat": True},
                    _both(_check_pruned_to_half, _check_int8_weights, _check_qat_file_reloads)),
    "prune50-cluster8-qat": ({"prune": 0.5, "cluster": 8, "qat": True},
                             _both(_check_pruned_to_half, _check_clustered(8))),
}


# Largest |accuracy(.tflite) - accuracy(model.keras)| of one result: float files match exactly.
FLOAT_FILES = ("prune50", "cluster16", "fp16")


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_each_recipe_writes_a_keras_model_and_a_tflite_that_litert_runs(recipe, parent,
                                                                        monkeypatch):
    from edgekit._compat import keras
    from edgekit.compress import compress
    from edgekit.runtimes.litert import LiteRTModel

    folder, hashes = parent
    options, check = RECIPES[recipe]
    monkeypatch.chdir(folder.parent.parent)  # the default output is models/<parent>-<recipe>
    result = compress(str(folder), **options, **FAST)
    output = folder.parent / f"cnn-digits-{recipe}"
    assert result.output_dir.resolve() == output and result.manifest["recipe"] == recipe
    assert not list(folder.parent.glob(".*partial"))
    model = keras().models.load_model(output / "model.keras", compile=False)
    assert not any("Wrapper" in type(layer).__name__ for layer in model.layers)
    import edgekit

    x_test, y_test = edgekit.load_dataset("digits").preprocessed("test")
    outputs = LiteRTModel.load(output / "model.tflite").run(x_test)
    accuracy = float((outputs.argmax(1) == y_test).mean())
    assert accuracy == pytest.approx(result.accuracy, abs=1e-9)
    # The .tflite keeps the accuracy of the Keras model it was converted from.
    tolerance = 0.005 if recipe in FLOAT_FILES else 0.06
    assert abs(accuracy - result.rows[2]["accuracy"]) <= tolerance
    if check is not None:
        check(output, result.manifest)
    assert _hashes(folder) == hashes, "the parent folder changed"


def test_manifest_links_the_parent_and_records_the_comparison(parent):
    folder, _ = parent
    output = folder.parent / "cnn-digits-prune50-qat"
    if not output.exists():
        pytest.skip("needs the prune50-qat recipe above")
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["stage"] == "compress" and manifest["status"] == "complete"
    assert manifest["parent"]["path"] == str(folder)
    assert manifest["parent"]["sha256"] == sha256_file(folder / "model.keras")
    assert manifest["parent"]["manifest_name"] == "cnn-digits"
    assert manifest["techniques"] == ["prune", "qat", "ptq"]
    assert manifest["stages"]["qat"]["scheme"] == "Default8BitPrunePreserveQuantizeScheme"
    assert manifest["config"]["dataset"] == "digits" and manifest["config"]["seed"] == 0
    assert manifest["options"] == {"prune": 0.5, "qat": True, "finetune_epochs": 1,
                                   "calibration_samples": 100}
    assert manifest["versions"]["tensorflow-model-optimization"] == "0.8.1"
    labels = [row["label"] for row in manifest["comparison"]["rows"]]
    assert labels == ["parent keras", "parent tflite", "compressed keras", "compressed tflite"]
    parent_tflite, result = manifest["comparison"]["rows"][1], manifest["comparison"]["rows"][3]
    assert parent_tflite["size_ratio_to_parent_fp32_tflite"] == 1.0
    assert result["gzip_bytes"] < result["bytes"] < parent_tflite["bytes"]
    assert result["accuracy_drop_points"] == pytest.approx(
        (manifest["comparison"]["rows"][0]["accuracy"] - result["accuracy"]) * 100, abs=1e-3)
    assert manifest["evaluation"]["tflite_test"]["accuracy"] == result["accuracy"]
    for name, entry in manifest["files"].items():
        assert sha256_file(output / name) == entry["sha256"], name
    command = shlex.split(manifest["command"])
    assert command[:3] == ["edgekit", "compress", str(folder)]
    assert {"--prune", "--qat", "--dataset", "--output"} <= set(command)


def test_cli_prints_the_before_after_table(parent, compress_cli, tmp_path):
    folder, hashes = parent
    output = tmp_path / "dynamic"
    result = compress_cli(str(folder), "--dynamic", "--output", str(output))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "accuracy" in line and "gzipped" in line)
    assert "zeros in file" in header
    assert any(line.startswith("compressed tflite (dynamic)") for line in lines)
    assert re.search(r"dynamic: \d+\.\d\d% test accuracy through LiteRT", result.stdout)
    assert (output / "model.tflite").is_file() and _hashes(folder) == hashes


def test_a_model_file_with_a_dataset_compresses(parent, tmp_path):
    from edgekit.compress import compress

    folder, _ = parent
    result = compress(str(folder / "model.keras"), dataset="digits", int16x8=True,
                      calibration_samples=50, output_dir=tmp_path / "from-file", progress=False)
    assert result.manifest["parent"]["name"] == "model"
    assert "manifest_name" not in result.manifest["parent"]
    assert result.manifest["stages"]["ptq"]["calibration_samples"] == 50
    assert result.rows[-1]["size_ratio_to_parent_fp32_tflite"] < 1
    assert abs(result.accuracy - result.rows[0]["accuracy"]) < 0.05


def _lstm_file(tmp_path) -> Path:
    from edgekit.models import build_model

    path = tmp_path / "lstm.keras"
    build_model("lstm", (8, 8, 1), 10, {"units": 4}).save(path)
    return path


def _other_shape_file(tmp_path) -> Path:
    from edgekit.models import build_model

    path = tmp_path / "five.keras"
    build_model("mlp", (5, 5, 1), 10, {"hidden_units": 4}).save(path)
    return path


BAD_INPUTS = [
    (["PARENT", "--prune", "1.2"], OptionError, r"--prune takes the fraction of weights set to zero, in \[0, 1\); received 1.2"),
    (["PARENT", "--cluster", "1"], OptionError, r"--cluster takes .* >= 2; received 1"),
    (["PARENT", "--int8", "--fp16"], OptionError, r"pick one post-training quantization; received --int8 and --fp16"),
    (["PARENT", "--int8-io"], OptionError, r"--int8-io .* needs --int8"),
    (["PARENT", "--prune", "0.8", "--prune-structure", "2:4"], OptionError, r"--prune-structure 2:4 sets a sparsity of 0.5; received --prune 0.8"),
    (["PARENT"], OptionError, r"no compression technique given"),
    (["PARENT", "--int8", "--dataset", "fashion_mnist"], OptionError, r"was trained with dataset='digits'; received dataset='fashion_mnist'"),
    (["FILE", "--qat"], OptionError, r"model file with no record of its data, and --qat needs a dataset .*--dataset"),
    (["FILE", "--int8"], OptionError, r"--int8 needs a dataset \(compress calibrates on its training split"),
    (["CORRUPT", "--int8", "--dataset", "digits"], ModelError, r"cannot read model .*corrupt.keras"),
    (["MISSING", "--int8"], ModelError, r"missing.keras' does not exist"),
    (["FIVE", "--int8", "--dataset", "digits"], DataError, r"takes inputs of shape \(5, 5, 1\); dataset 'digits' has samples of shape \(8, 8, 1\), so its calibration and test samples do not fit"),
    (["LSTM", "--qat", "--dataset", "digits"], ModelError, r"--qat cannot handle layer 'lstm1' \(a LSTM layer\).*post-training quantization .* still applies"),
]


def _substitute(arguments, parent_folder, tmp_path):
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    lazy = {"PARENT": lambda: parent_folder, "FILE": lambda: parent_folder / "model.keras",
            "CORRUPT": lambda: corrupt, "MISSING": lambda: tmp_path / "missing.keras",
            "FIVE": lambda: _other_shape_file(tmp_path), "LSTM": lambda: _lstm_file(tmp_path)}
    return [str(lazy[argument]()) if argument in lazy else argument for argument in arguments]


@pytest.mark.parametrize("arguments, error, message", BAD_INPUTS,
                         ids=[" ".join(a) for a, _, _ in BAD_INPUTS])
def test_bad_input_is_one_error_line_with_exit_code_2_and_nothing_written(
        arguments, error, message, parent, compress_cli, tmp_path):
    folder, hashes = parent
    arguments = _substitute(arguments, folder, tmp_path)
    output = tmp_path / "out"
    result = compress_cli(*arguments, "--output", str(output))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not output.exists() and not list(tmp_path.glob(".out*"))
    assert _hashes(folder) == hashes


@pytest.mark.parametrize("arguments, error, message", BAD_INPUTS,
                         ids=[" ".join(a) for a, _, _ in BAD_INPUTS])
def test_bad_input_raises_its_error_from_the_library(arguments, error, message, parent, tmp_path):
    from edgekit.cli.compress import compress_command
    from edgekit.compress import compress

    folder, _ = parent
    model, *flags = _substitute(arguments, folder, tmp_path)
    context = compress_command.make_context("compress", [model, *flags])
    options = {key: value for key, value in context.params.items()
               if value is not None and key not in ("model", "output", "force")}
    with pytest.raises(error, match=message):
        compress(model, output_dir=tmp_path / "out", progress=False, **options)


def test_a_failure_after_work_started_leaves_no_staging_folder(parent, tmp_path):
    from edgekit._compat import keras, tensorflow
    from edgekit.compress import compress

    tf, tf_keras = tensorflow(), keras()

    def python_step(tensor):
        doubled = tf.numpy_function(lambda array: array * 2, [tensor], tf.float32)
        doubled.set_shape(tensor.shape)
        return doubled

    inputs = tf_keras.Input((8, 8, 1), name="input")
    x = tf_keras.layers.Lambda(python_step, name="numpy_step")(inputs)
    x = tf_keras.layers.Flatten()(x)
    outputs = tf_keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = tf_keras.Model(inputs, outputs, name="odd")
    with pytest.raises(ModelError, match=r"failed at op tf.PyFunc in layer 'numpy_step'"):
        compress(model, dataset="digits", int8=True, output_dir=tmp_path / "odd",
                 preprocess="scale=0.0625", **FAST)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_is_refused_and_kept(parent, compress_cli, tmp_path):
    folder, _ = parent
    output = tmp_path / "taken"
    output.mkdir()
    (output / "manifest.json").write_text('{"stage": "compress"}')  # an earlier compress run's
    (output / "earlier.txt").write_text("earlier work")
    result = compress_cli(str(folder), "--fp16", "--output", str(output))
    assert result.exit_code == 2 and "exists and is not empty; pass --force" in result.stderr
    assert (output / "earlier.txt").read_text() == "earlier work"


def test_a_subclassed_model_gets_the_techniques_error_before_any_work(tmp_path):
    from edgekit._compat import keras
    from edgekit.compress import compress

    tf_keras = keras()

    class Classifier(tf_keras.Model):
        def __init__(self):
            super().__init__(name="my_classifier")
            self.flatten = tf_keras.layers.Flatten()
            self.dense = tf_keras.layers.Dense(10, activation="softmax")

        def call(self, inputs):
            return self.dense(self.flatten(inputs))

    model = Classifier()
    model(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(ModelError, match=r"--qat cannot handle model 'my_classifier': it is a "
                       r"subclassed Classifier .*post-training quantization"):
        compress(model, dataset="digits", qat=True, output_dir=tmp_path / "out", **FAST)
    assert list(tmp_path.iterdir()) == []
