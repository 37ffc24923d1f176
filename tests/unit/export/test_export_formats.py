"""The export format registry: a format registered later is exported like the built-in ones."""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest

from edgekit._compat import keras
from edgekit.errors import OptionError
from edgekit.export import FORMATS, ExportConfig, ExportFormat
from edgekit.export.config import declared_options, option_table
from edgekit.formats.onnx_quantize import int8_weight_summary
from edgekit.manifest import sha256_file
from edgekit.options import Option


def _write_npz(job) -> None:
    """The toy format: the Keras model's weights as one .npz, optionally rounded."""
    decimals = job.config.npz_round
    weights = job.source.model.get_weights()
    if decimals is not None:
        weights = [np.round(weight, decimals) for weight in weights]
    path = job.staging / "weights.npz"
    np.savez(path, *weights)
    job.add({"name": "npz", "format": "npz", "precision": "fp32",
             "options": {"npz_round": decimals}, "command": job.command("npz", ("npz",))},
            file=path)


def _npz_format() -> ExportFormat:
    return ExportFormat("npz", "the Keras weights as .npz", _write_npz, options=(
        Option("npz_round", int, None, "decimals to round the weights to", minimum=0, maximum=12,
               example="6"),))


def test_toy_format_registered_in_a_test_is_exported_by_the_cli(tiny_model_folder, tmp_path,
                                                                 cli_runner):
    with FORMATS.registered("npz", _npz_format()):
        help_text = cli_runner("export", "--help").stdout
        assert "--npz-round" in help_text and "decimals to round the weights to" in help_text.lower()
        to_help = help_text.split("--to", 1)[1].split("-d, --dataset", 1)[0]
        assert "mobile, npz" in " ".join(to_help.split())  # in --to's choices, after the built-ins

        output = tmp_path / "out"
        result = cli_runner("export", str(tiny_model_folder), "--to", "npz,tflite",
                            "--npz-round", "3", "--output", str(output))
        assert result.exit_code == 0, result.output
        manifest = json.loads((output / "manifest.json").read_text())
        entry = manifest["artifacts"]["npz"]
        assert entry["sha256"] == sha256_file(output / "weights.npz") == \
            manifest["files"]["weights.npz"]["sha256"]
        assert entry["status"] == "written" and entry["options"] == {"npz_round": 3}
        assert "--npz-round 3" in entry["command"] and manifest["config"]["npz_round"] == 3
        assert list(manifest["formats"]) == ["tflite", "npz"]  # registration order, not --to's
        assert manifest["artifacts"]["tflite-fp32"]["status"] == "passed"
        saved = np.load(output / "weights.npz")
        model = keras().models.load_model(tiny_model_folder / "model.keras", compile=False)
        assert len(saved.files) == len(model.get_weights())
        for stored, weight in zip((saved[key] for key in saved.files), model.get_weights()):
            np.testing.assert_array_equal(stored, np.round(weight, 3))

        bad = cli_runner("export", str(tiny_model_folder), "--to", "npz", "--npz-round", "40",
                         "--output", str(tmp_path / "bad"))
        assert bad.exit_code == 2, bad.output
        lines = bad.stderr.strip().splitlines()
        assert lines == ["error: --npz-round takes decimals to round the weights to, an integer "
                         "in [0, 12]; received 40. Example: --npz-round 6"]
        assert not (tmp_path / "bad").exists()
    assert "npz" not in FORMATS and "npz_round" not in ExportConfig.field_names()
    assert "--npz-round" not in cli_runner("export", "--help").stdout


def test_toy_format_joins_the_config_and_its_checks_from_python():
    with FORMATS.registered("npz", _npz_format()):
        config = ExportConfig.from_options({"npz_round": 4})
        assert config.to == ("tflite", "onnx", "triton", "mobile", "npz") and config.npz_round == 4
        assert "`--npz-round` (npz)" in option_table()
        with pytest.raises(OptionError, match=r"--npz-round takes .* received -1"):
            ExportConfig.from_options({"npz_round": -1})


def test_formats_are_written_after_what_they_need_and_triton_last():
    assert [f.name for f in FORMATS.ordered(["mobile", "triton", "onnx", "tflite"])] == [
        "tflite", "onnx", "mobile", "triton"]
    assert [f.name for f in FORMATS.ordered(["triton", "tflite"])] == ["tflite", "triton"]
    late = ExportFormat("late", "needs triton's repository", lambda job: None, needs=("triton",))
    with FORMATS.registered("late", late):
        assert [f.name for f in FORMATS.ordered(["late", "triton", "onnx"])] == [
            "onnx", "triton", "late"]


@pytest.mark.parametrize("export_format, message", [
    (ExportFormat("dup", "", lambda job: None, options=(Option("opset", int, 17),)),
     "declares option 'opset', which 'onnx' declares already"),
    (ExportFormat("dup", "", lambda job: None, options=(Option("samples", int, 1),)),
     "declares option 'samples', which 'export' declares already"),
    (ExportFormat("dup", "", lambda job: None, needs=("coreml",)),
     "needs coreml, which is not registered"),
], ids=["format option", "stage option", "unknown need"])
def test_a_format_that_does_not_fit_is_refused_when_registered(export_format, message):
    with pytest.raises(ValueError, match=message):
        FORMATS.register("dup")(export_format)
    assert "dup" not in FORMATS


def test_a_format_others_need_cannot_be_unregistered():
    with pytest.raises(ValueError, match="'onnx' is needed by triton"):
        FORMATS.unregister("onnx")


def test_config_fields_are_the_declared_options_of_the_stage_and_every_format():
    names = ExportConfig.field_names()
    assert names == list(declared_options())
    for export_format in FORMATS.formats():
        assert {option.name for option in export_format.options} <= set(names)
    assert {"onnx_int8", "calibration_method", "triton_precision", "mobile_precision",
            "tflite_precisions"} <= set(names)
    assert ExportConfig().onnx_int8 == "auto" and ExportConfig().calibration_method == "minmax"


def test_every_declared_option_is_an_export_cli_option(cli_runner):
    # cli=False ones (--preprocess, --custom-objects, ...) come from the commands' shared options
    help_text = cli_runner("export", "--help").stdout
    for option in declared_options().values():
        assert option.flag in help_text, option.name


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="U8S8 is the x86-64 scheme; Arm gets S8S8")
def test_int8_onnx_export_holds_int8_weights_and_uint8_activations_and_records_auto(
        tiny_model_folder, tmp_path, cli_runner):
    output = tmp_path / "int8"
    result = cli_runner("export", str(tiny_model_folder), "--to", "onnx", "--onnx-precisions",
                        "int8", "--output", str(output))
    assert result.exit_code == 0, result.output
    entry = json.loads((output / "manifest.json").read_text())["artifacts"]["onnx-int8"]
    assert entry["status"] == "passed"
    options = entry["options"]
    assert (options["scheme"], options["scheme_requested"]) == ("u8s8", "auto")
    assert options["calibrate_method"] == "minmax" and options["calibration_samples"] == 500
    summary = int8_weight_summary(output / "model_int8.onnx")
    assert "int8" in summary["weight_dtypes"] and summary["float_weight_initializers"] == 0
    assert summary["activation_zero_point_dtypes"] == ["uint8"]


def test_onnx_int8_scheme_and_calibration_method_are_cli_options(tiny_model_folder, tmp_path,
                                                                  cli_runner):
    output = tmp_path / "s8s8"
    result = cli_runner("export", str(tiny_model_folder), "--to", "onnx", "--onnx-precisions",
                        "int8", "--onnx-int8", "s8s8", "--calibration-method", "percentile",
                        "--calibration-samples", "256", "--output", str(output))
    assert result.exit_code == 0, result.output
    entry = json.loads((output / "manifest.json").read_text())["artifacts"]["onnx-int8"]
    assert (entry["options"]["scheme"], entry["options"]["scheme_requested"]) == ("s8s8", "s8s8")
    assert entry["options"]["calibrate_method"] == "percentile"
    assert "--onnx-int8 s8s8 --calibration-method percentile" in entry["command"]
    assert entry["options"]["calibration_samples"] == 256
    assert int8_weight_summary(output / "model_int8.onnx")["activation_zero_point_dtypes"] == [
        "int8"]


def test_entropy_calibration_takes_the_default_500_samples(tiny_model_folder, tmp_path,
                                                           cli_runner):
    output = tmp_path / "entropy"
    result = cli_runner("export", str(tiny_model_folder), "--to", "onnx", "--onnx-precisions",
                        "int8", "--calibration-method", "entropy", "--output", str(output))
    assert result.exit_code == 0, result.output


def test_a_format_plugin_named_in_edgekit_plugins_joins_the_installed_cli(tmp_path, run_edgekit):
    plugin = tmp_path / "npz_format.py"
    plugin.write_text(
        "from edgekit.export import ExportFormat, register_format\n"
        "from edgekit.options import Option\n"
        "register_format(ExportFormat('npz', 'the Keras weights as .npz', lambda job: None,\n"
        "    options=(Option('npz_round', int, None, 'decimals to round the weights to',\n"
        "                    minimum=0, maximum=12),)))\n")
    shown = run_edgekit("export", "--help", env={"EDGEKIT_PLUGINS": str(plugin)})
    assert shown.returncode == 0, shown.stderr
    assert "--npz-round" in shown.stdout and "mobile, npz" in " ".join(shown.stdout.split())
    assert "--npz-round" not in run_edgekit("export", "--help").stdout
