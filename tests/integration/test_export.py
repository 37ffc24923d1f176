"""``edgekit export`` and ``edgekit inspect`` end to end on digits, with real converters and runtimes."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import edgekit  # noqa: F401  (selects Keras 2 first)
from edgekit.formats.onnx_quantize import host_scheme, int8_weight_summary
from edgekit.manifest import sha256_file

ALL_ARTIFACTS = {"tflite-fp32", "onnx-fp32", "onnx-fp16", "onnx-int8", "triton", "mobile"}
# A small cnn trains in seconds on digits and still classifies confidently, so that fp16 and
# int8 rounding cannot flip near-ties and fidelity measures the converters, not the model.
CNN_OPTIONS = {"filters": 8, "dense_units": 32}


@pytest.fixture(scope="module")
def cli():
    """The edgekit command group, with export and inspect (registered here if main lacks them)."""

    from edgekit.cli.common import EdgekitGroup
    from edgekit.cli.export import export_command
    from edgekit.cli.inspect import inspect_command
    from edgekit.cli.main import cli as main_cli

    if "export" in main_cli.commands and "inspect" in main_cli.commands:
        return main_cli
    group = EdgekitGroup("edgekit")
    group.add_command(export_command)
    group.add_command(inspect_command)
    return group


@pytest.fixture
def run(cli):
    from click.testing import CliRunner

    def invoke(*args):
        return CliRunner().invoke(cli, [str(arg) for arg in args], catch_exceptions=False)

    return invoke


def _snapshot(folder: Path) -> dict:
    """sha256 of every file of a model folder, its export/ sub-folder aside."""
    return {path.relative_to(folder).as_posix(): sha256_file(path)
            for path in sorted(folder.rglob("*"))
            if path.is_file() and "export" not in path.relative_to(folder).parts}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "cnn-digits"
    edgekit.train(model="cnn", epochs=4, model_options=CNN_OPTIONS, output_dir=folder,
                  progress=False)
    return folder


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    from edgekit.export import export

    before = _snapshot(trained)
    repository = tmp_path_factory.mktemp("serving") / "triton_repo"
    result = export(trained, triton_repository=str(repository))
    return result, repository, before


@pytest.fixture(scope="module")
def compressed(trained) -> Path:
    """A pruned (50%) + full-int8 folder with int8 input / output tensors, from compress."""
    from edgekit.compress import compress

    folder = trained.parent / "cnn-digits-prune50-int8"
    compress(str(trained), output_dir=folder, prune=0.5, int8=True, int8_io=True,
             finetune_epochs=1, calibration_samples=200, progress=False)
    return folder


@pytest.fixture(scope="module")
def compressed_export(compressed, tmp_path_factory):
    from edgekit.export import export

    repository = tmp_path_factory.mktemp("serving") / "triton_repo"
    return export(compressed, triton_repository=str(repository))


@pytest.fixture(scope="module")
def qat_export(trained, tmp_path_factory):
    """A compress --qat folder of the zoo's default cnn (99k weights: they, not the graph's
    names, make up most of the file), exported to every format."""
    from edgekit.compress import compress
    from edgekit.export import export

    base = trained.parent / "cnn-default-digits"
    edgekit.train(model="cnn", epochs=3, output_dir=base, progress=False)
    folder = trained.parent / "cnn-default-digits-qat"
    compress(str(base), output_dir=folder, qat=True, finetune_epochs=1, progress=False)
    repository = tmp_path_factory.mktemp("serving") / "triton_repo"
    return export(folder, triton_repository=str(repository))


def test_every_format_is_written_checked_and_recorded(exported, trained):
    result, repository, _ = exported
    manifest = json.loads((result.output_dir / "manifest.json").read_text())
    assert result.output_dir == trained / "export"
    assert manifest["status"] == "complete" and manifest["stage"] == "export"
    assert set(manifest["artifacts"]) == ALL_ARTIFACTS
    for name, entry in manifest["artifacts"].items():
        assert entry["status"] == "passed", name
        assert entry["converter"]["name"] and entry["command"].startswith("edgekit export "), name
        assert sha256_file(result.path(name)) == entry["sha256"], name
        assert entry["fidelity"]["samples"] == manifest["dataset"]["splits"]["test"] == 360
    for relative, entry in manifest["files"].items():
        assert sha256_file(result.output_dir / relative) == entry["sha256"], relative
    assert manifest["artifacts"]["onnx-int8"]["options"]["calibration_samples"] == 500
    assert manifest["versions"]["tf2onnx"] and manifest["versions"]["onnxruntime"]
    assert manifest["parent"]["sha256"] == sha256_file(trained / "model.keras")
    assert not list(trained.glob(".export*"))


def test_fidelity_thresholds_hold_on_digits(exported):
    artifacts = exported[0].artifacts
    for name in ("tflite-fp32", "onnx-fp32", "triton"):
        assert artifacts[name]["fidelity"]["top1_agreement"] >= 0.999, name
        assert artifacts[name]["fidelity"]["max_abs_diff"] <= 1e-4, name
    assert artifacts["onnx-fp16"]["fidelity"]["top1_agreement"] >= 0.995
    assert artifacts["onnx-int8"]["fidelity"]["top1_agreement"] >= 0.98


@pytest.mark.skipif(host_scheme() != "u8s8", reason="U8S8 is the x86-64 scheme; Arm gets S8S8")
def test_int8_onnx_has_int8_weights_and_uint8_activations_on_x86_and_records_auto(exported):
    result = exported[0]
    entry = result.artifacts["onnx-int8"]
    assert (entry["options"]["scheme"], entry["options"]["scheme_requested"]) == ("u8s8", "auto")
    assert entry["options"]["preprocessed"] and entry["options"]["calibrate_method"] == "minmax"
    summary = int8_weight_summary(result.path("onnx-int8"))
    assert "int8" in summary["weight_dtypes"] and summary["float_weight_initializers"] == 0
    assert summary["activation_zero_point_dtypes"] == ["uint8"]


def test_a_qat_folder_stores_int8_weights_and_triton_serves_its_int8_onnx(qat_export):
    artifacts = qat_export.artifacts
    assert all(entry["status"] == "passed" for entry in artifacts.values()), qat_export.table()
    int8, fp32 = artifacts["onnx-int8"], artifacts["onnx-fp32"]
    summary = int8_weight_summary(qat_export.path("onnx-int8"))
    assert summary["int8_initializers"] >= 6 and summary["float_weight_initializers"] == 0
    assert int8["bytes"] < 0.35 * fp32["bytes"], (int8["bytes"], fp32["bytes"])
    assert int8["options"]["weights"]["float_weight_initializers"] == 0
    assert int8["fidelity"]["top1_agreement"] >= 0.98
    triton = artifacts["triton"]
    assert (triton["precision"], triton["source_artifact"]) == ("int8", "onnx-int8")
    assert sha256_file(qat_export.path("triton")) == int8["sha256"]


def test_the_model_folder_is_unchanged_but_for_its_export_folder(exported, trained):
    assert _snapshot(trained) == exported[2]


def test_triton_config_parses_into_model_config_and_matches_the_onnx_graph(exported):
    import onnx
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    result, repository, _ = exported
    model_folder = repository / "cnn-digits"
    config = text_format.Parse((model_folder / "config.pbtxt").read_text(),
                               model_config_pb2.ModelConfig())
    graph = onnx.load(str(result.path("triton"))).graph
    assert config.platform == "onnxruntime_onnx" and config.name == "cnn-digits"
    assert [i.name for i in config.input] == [i.name for i in graph.input] == ["input"]
    assert [o.name for o in config.output] == [o.name for o in graph.output] == ["probabilities"]
    assert list(config.input[0].dims) == [8, 8, 1] and list(config.output[0].dims) == [10]
    assert config.max_batch_size == 32 and list(config.dynamic_batching.preferred_batch_size) == [8, 16]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert config.output[0].label_filename == "labels.txt"
    assert (model_folder / "labels.txt").read_text().split() == [str(i) for i in range(10)]
    assert sha256_file(result.path("triton")) == result.artifacts["onnx-fp32"]["sha256"]


def test_a_second_export_adds_a_version_and_keeps_the_first(exported, trained, run, tmp_path):
    result, repository, _ = exported
    model_folder = repository / "cnn-digits"
    first = {p.parent.name: p.read_bytes() for p in model_folder.glob("*/model.onnx")}
    output = run("export", trained, "--to", "triton", "--triton-repo", repository,
                 "--output", tmp_path / "again")
    assert output.exit_code == 0, output.output
    versions = sorted(int(p.name) for p in model_folder.iterdir() if p.name.isdigit())
    assert versions == list(range(1, len(first) + 2))
    assert f"version {versions[-1]}" in output.stdout
    for version, data in first.items():
        assert (model_folder / version / "model.onnx").read_bytes() == data


def _bundle_top1(zip_path: Path, raw: np.ndarray, workdir: Path) -> np.ndarray:
    """Classify raw samples using nothing but LiteRT, numpy and the bundle's own files."""
    from ai_edge_litert.interpreter import Interpreter

    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(workdir)
    bundle = next(workdir.iterdir())
    metadata = json.loads((bundle / "metadata.json").read_text())
    labels = (bundle / "labels.txt").read_text().splitlines()
    norm, tensor_in, tensor_out = metadata["normalization"], metadata["input"], metadata["output"]
    x = (raw.astype(np.float32) * norm["scale"] - norm["mean"]) / norm["std"]
    if tensor_in["quantization"]:
        q = tensor_in["quantization"]
        x = np.clip(np.round(x / q["scale"]) + q["zero_point"], -128, 127)
    x = x.astype(tensor_in["dtype"])
    interpreter = Interpreter(model_path=str(bundle / metadata["model"]["file"]))
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).astype(np.float32)
    if tensor_out["quantization"]:
        q = tensor_out["quantization"]
        y = (y - q["zero_point"]) * q["scale"]
    assert labels == metadata["labels"]["class_names"]
    return np.array([int(labels[i]) for i in y.argmax(axis=1)])


@pytest.mark.parametrize("which", ["trained", "compressed"])
def test_the_mobile_bundle_alone_reproduces_keras_top1_on_raw_digits(which, request, tmp_path):
    from edgekit._compat import keras
    from edgekit.data import load_dataset

    result = request.getfixturevalue("exported")[0] if which == "trained" else \
        request.getfixturevalue("compressed_export")
    model_folder = result.output_dir.parent
    dataset = load_dataset("digits", seed=0)  # raw 0..16 pixel values, as a phone would have
    bundle_top1 = _bundle_top1(result.output_dir / "mobile.zip", dataset.x_test, tmp_path)
    x_test, _ = dataset.preprocessed("test")
    model = keras().models.load_model(model_folder / "model.keras", compile=False)
    keras_top1 = model.predict(x_test, verbose=0).argmax(axis=1)
    assert (bundle_top1 == keras_top1).mean() >= (0.999 if which == "trained" else 0.98)
    readme = (result.output_dir / "mobile" / "README.md").read_text()
    assert "```kotlin" in readme and "```python" in readme and "Interpreter" in readme


def test_compressed_pruned_int8_folder_exports_every_format_reusing_its_tflite(
        compressed, compressed_export):
    artifacts = compressed_export.artifacts
    assert set(artifacts) == ALL_ARTIFACTS | {"tflite-int8"}
    assert all(entry["status"] == "passed" for entry in artifacts.values())
    assert artifacts["tflite-int8"]["converter"]["name"] == "reused"
    assert artifacts["tflite-int8"]["sha256"] == sha256_file(compressed / "model.tflite")
    assert artifacts["mobile"]["precision"] == "int8"
    assert artifacts["mobile"]["options"]["input_dtype"] == "int8"
    # ONNX int8 calibrates on the very samples compress's TFLite int8 used.
    assert artifacts["onnx-int8"]["options"]["calibration_samples"] == 200


def test_inspect_describes_each_artifact_with_its_lineage(exported, run):
    result, repository, _ = exported
    for target, expected in [(result.path("tflite-fp32"), "format:  tflite"),
                             (result.path("onnx-int8"), "format:  onnx (opset 17"),
                             (repository / "cnn-digits", "format:  triton"),
                             (result.output_dir / "mobile.zip", "format:  mobile bundle")]:
        output = run("inspect", target)
        assert output.exit_code == 0, output.output
        assert expected in output.stdout and "inputs:" in output.stdout
        assert re.search(r"export: \S+ \(artifact \S+, passed", output.stdout), output.stdout
        assert "train: " in output.stdout and "edgekit train --model cnn" in output.stdout
    described = json.loads(run("inspect", result.path("onnx-int8"), "--json").stdout)
    assert described["ops"]["QuantizeLinear"] > 0
    assert described["inputs"][0]["quantization"]["zero_point"]


def test_a_users_model_file_exports_beside_itself_with_dataset_and_samples(trained, run, tmp_path):
    model_file = tmp_path / "mine.keras"
    shutil.copyfile(trained / "model.keras", model_file)
    # Away from its folder the file has no record of its input scaling: the user states it.
    p = json.loads((trained / "manifest.json").read_text())["dataset"]["preprocessing"]
    output = run("export", model_file, "--dataset", "digits", "--to", "onnx",
                 "--onnx-precisions", "fp32", "--samples", "50", "--opset", "13",
                 "--preprocess", f"scale={p['scale']!r},mean={p['mean']!r},std={p['std']!r}")
    assert output.exit_code == 0, output.output
    manifest = json.loads((tmp_path / "mine-export" / "manifest.json").read_text())
    assert manifest["artifacts"]["onnx-fp32"]["fidelity"]["samples"] == 50
    assert manifest["artifacts"]["onnx-fp32"]["options"]["opset"] == 13


def test_an_artifact_below_its_threshold_fails_the_export_and_stays_marked_failed(trained, run,
                                                                                  tmp_path):
    output_dir = tmp_path / "strict"
    output = run("export", trained, "--to", "onnx", "--onnx-precisions", "fp32",
                 "--fp32-max-abs-diff", "0", "--output", output_dir)
    assert output.exit_code == 1
    lines = output.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 1 artifact(s) disagree"), output.stderr
    assert "--fp32-max-abs-diff" in lines[0]
    assert "FAILED: max abs diff" in output.stdout
    manifest = json.loads((output_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["artifacts"]["onnx-fp32"]["status"] == "failed"
    assert (output_dir / "model_fp32.onnx").is_file()


def _flip_bytes(data: bytes, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    flipped = bytearray(data)
    for position in rng.integers(len(flipped) // 4, len(flipped), size=20):
        flipped[position] ^= 0xFF
    return bytes(flipped)


BAD_INPUTS = [
    (["--to", "onnx,coreml"], "unknown value 'coreml' for --to"),
    (["--to", "onnx", "--opset", "25"], r"unsupported ONNX opset 25; expected 13\.\.18"),
    (["MODEL_FILE", "--to", "onnx"], "needs --dataset"),
    (["TRUNCATED_TFLITE"], "truncated.tflite.*not a valid Flatbuffer"),
    (["GARBAGE_ONNX"], "garbage.onnx fails onnx.checker"),
    (["CORRUPT_RECIPE", "--to", "tflite"], "model.tflite.*truncated or corrupt"),
    (["EXISTING"], "exists and is not empty; pass --force"),
]


@pytest.mark.parametrize("arguments, message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_gets_one_clear_line_and_exit_code_2(arguments, message, exported, compressed,
                                                       run, tmp_path):
    result = exported[0]
    (tmp_path / "truncated.tflite").write_bytes(result.path("tflite-fp32").read_bytes()[:3000])
    (tmp_path / "garbage.onnx").write_bytes(b"\x08\x07" + bytes(range(256)) * 4)
    corrupt_recipe = tmp_path / "corrupt-recipe"
    shutil.copytree(compressed, corrupt_recipe, ignore=shutil.ignore_patterns("export"))
    data = (corrupt_recipe / "model.tflite").read_bytes()
    (corrupt_recipe / "model.tflite").write_bytes(data[: len(data) // 3])
    substitutions = {"MODEL_FILE": result.output_dir.parent / "model.keras",
                     "TRUNCATED_TFLITE": tmp_path / "truncated.tflite",
                     "GARBAGE_ONNX": tmp_path / "garbage.onnx",
                     "CORRUPT_RECIPE": corrupt_recipe,
                     "EXISTING": result.output_dir.parent}
    model = substitutions.get(arguments[0], result.output_dir.parent)
    rest = arguments[1:] if arguments[0] in substitutions else arguments
    output_args = [] if arguments[0] in ("EXISTING", "MODEL_FILE") else \
        ["--output", tmp_path / "out"]
    output = run("export", model, *rest, *output_args)
    assert output.exit_code == 2, output.output
    lines = output.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
@pytest.mark.parametrize("kind", ["tflite-fp32", "onnx-fp32"])
def test_inspect_gives_corrupt_files_a_clean_error(kind, damage, exported, run, tmp_path):
    source = exported[0].path(kind)
    data = source.read_bytes()
    broken = tmp_path / f"broken{source.suffix}"
    broken.write_bytes(data[: len(data) // 2] if damage == "truncated" else _flip_bytes(data, 0))
    output = run("inspect", broken)
    if damage == "flipped" and output.exit_code == 0:
        return  # flips that land in weights leave a valid file: described, no crash
    assert output.exit_code == 2, output.output
    lines = output.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "broken" in lines[0]
