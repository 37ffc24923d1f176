"""``edgekit optimize`` end to end: real conversions, LiteRT / ONNX Runtime, bench workers.

Two tiny parents, built once for the module: an MLP model folder from ``edgekit train``, and a
model file built so that one layer ruins full int8 (``wide_range``: every output unit reads a
dead input unit through a weight of 1000, so per-channel int8 weights lose every other weight
of that layer). Searches use 100 calibration samples, one fine-tuning epoch and short bench
windows.
"""

from __future__ import annotations

import json
import shlex

import click
import pytest
from click.testing import CliRunner

from edgekit.bench.artifacts import discover
from edgekit.cli.common import EdgekitGroup
from edgekit.cli.optimize import optimize_command
from edgekit.optimize import latency
from edgekit.optimize.artifacts import Workbench
from edgekit.optimize.candidates import build_candidates
from edgekit.optimize.records import FIELDS
from edgekit.optimize.run import optimize

FAST = {"calibration_samples": 100, "finetune_epochs": 1,
        "bench_options": {"warmup_runs": 2, "warmup_seconds": 0.0, "min_runs": 10,
                          "min_seconds": 0.05, "max_windows": 2}}
FAST_FLAGS = ["--calibration-samples", "100"]
SENSITIVE = {"dataset": "digits", "preprocess": "scale=0.0625"}


@pytest.fixture(scope="module")
def parent_folder(tmp_path_factory):
    """A trained tiny MLP model folder, ``<work>/models/mlp-digits``."""
    import edgekit

    folder = tmp_path_factory.mktemp("work") / "models" / "mlp-digits"
    edgekit.train(model="mlp", model_options={"hidden_units": 32}, epochs=8,
                  output_dir=folder, progress=False)
    return folder


def _cli(*args: str):
    @click.group(cls=EdgekitGroup)
    def group():
        """edgekit"""

    group.add_command(optimize_command)
    return CliRunner().invoke(group, ["optimize", *args], catch_exceptions=False)


def _document(folder) -> dict:
    return json.loads((folder / "optimize" / "candidates.json").read_text())


def test_post_training_search_of_a_model_folder_writes_every_candidate_and_a_normal_folder(
        parent_folder, tmp_path, monkeypatch):
    def no_fine_tuning(self, candidate):
        pytest.fail(f"--no-finetune fine-tuned {candidate.name}")

    monkeypatch.setattr(Workbench, "fine_tuning", no_fine_tuning)
    monkeypatch.setattr(latency, "SEARCH_TIMING", FAST["bench_options"])
    output = tmp_path / "mlp-optimized"
    outcome = _cli(str(parent_folder), "--max-drop", "1", "--no-finetune", *FAST_FLAGS,
                   "--output", str(output))
    assert outcome.exit_code == 0, outcome.output
    assert "chosen:" in outcome.output and "tflite-int8" in outcome.output

    document = _document(output)
    expected = [candidate.name for candidate in build_candidates(("litert",))[0]]
    assert [item["name"] for item in document["candidates"]] == expected
    for item in document["candidates"]:
        assert tuple(item) == FIELDS
        if item["status"] == "measured":
            assert None not in (item["accuracy_val"], item["drop_points"], item["size_bytes"],
                                item["gzip_bytes"], item["p50_ms"], item["p99_ms"])
    chosen = [item for item in document["candidates"] if item["chosen"]]
    assert len(chosen) == 1
    chosen = chosen[0]
    assert chosen["within_budget"] and chosen["drop_points"] <= 1.0  # on validation
    assert 0 < chosen["accuracy_test"] <= 1  # measured once, on the final folder
    assert all(item["status"] == "skipped: --no-finetune" for item in document["candidates"]
               if document["details"][item["name"]]["stage"] == "fine-tuning")

    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["stage"] == "compress" and manifest["status"] == "complete"
    assert manifest["parent"]["path"] == str(parent_folder)
    assert manifest["optimize"]["chosen"] == chosen["name"]
    command = shlex.split(manifest["command"])
    assert command[:3] == ["edgekit", "compress", str(parent_folder)]
    assert command[-2:] == ["--output", str(output)]
    assert "optimize/candidates.json" in manifest["files"]
    assert (output / "optimize" / "pareto.png").stat().st_size > 0
    names = [artifact.name for subject in discover([output]) for artifact in subject.artifacts]
    assert "keras" in names and any(name.startswith("tflite-") for name in names)


def test_int8_ruined_by_one_layer_is_brought_within_budget_by_keeping_that_layer_in_float(
        sensitive_model, tmp_path):
    result = optimize(
        str(sensitive_model), output_dir=tmp_path / "out", max_drop=1.0, finetune=False,
        runtime="both", objective="size", progress=False,
        candidates="tflite-fp32,tflite-int8,tflite-int8-fallback,onnx-int8,onnx-int8-fallback",
        **SENSITIVE, **FAST)
    search = result.search
    assert search.outcome("tflite-int8").drop_points > 50
    assert search.outcome("onnx-int8").drop_points > 50
    fallbacks = result.document["sensitivity"]
    for name in ("tflite-int8-fallback", "onnx-int8-fallback"):
        assert search.outcome(name).within_budget, name
        assert fallbacks[name]["float_layers"] == ["wide_range"], name
        assert fallbacks[name]["ranking"][0]["layer"] == "wide_range", name
    assert fallbacks["onnx-int8-fallback"]["reused_tflite_layers"] is True
    assert result.chosen["name"] in ("tflite-int8-fallback", "onnx-int8-fallback")
    assert result.chosen["recipe"] == "int8+float:wide_range"

    manifest = json.loads((result.output_dir / "manifest.json").read_text())
    assert manifest["optimize"]["float_layers"] == ["wide_range"]
    assert (result.output_dir / "optimize" / "sensitivity.png").stat().st_size > 0
    # Either winner's folder is compress --int8 --float-layers wide_range (the ONNX one's int8
    # file is export's, which keeps the layers the folder records in float).
    assert manifest["config"]["float_layers"] == "wide_range"
    assert manifest["stages"]["ptq"]["float_layers"] == ["wide_range"]
    assert manifest["recipe"] == "int8-float1" and manifest["status"] == "complete"
    if result.chosen["name"] == "tflite-int8-fallback":
        row = manifest["comparison"]["rows"][-1]
        assert row["accuracy"] == pytest.approx(result.chosen["accuracy_test"])
        assert row["accuracy_drop_points"] < 5  # full int8 scored 10% here
    _assert_the_command_reproduces_the_folder(manifest["command"], result.output_dir,
                                              tmp_path / "again")


def _assert_the_command_reproduces_the_folder(command: str, folder, again) -> None:
    """The manifest's command, run into another folder, makes the same model.tflite (and for
    an ONNX winner, an int8 .onnx that answers as the folder's export/ one)."""
    import numpy as np

    from edgekit.cli.main import cli
    from edgekit.data import load_dataset
    from edgekit.runtimes.onnxruntime import OnnxRuntimeModel

    for part in command.split(" && "):
        args = [str(again) if word == str(folder) else word for word in shlex.split(part)]
        assert args[0] == "edgekit", part
        outcome = CliRunner().invoke(cli, args[1:], catch_exceptions=False)
        assert outcome.exit_code == 0, (part, outcome.output)
    assert (again / "model.tflite").read_bytes() == (folder / "model.tflite").read_bytes()
    onnx_files = sorted((folder / "export").glob("model_int8.onnx"))
    if "edgekit export" in command:
        assert onnx_files, "an ONNX winner's folder has export/model_int8.onnx"
        x_test = load_dataset("digits", seed=0).x_test * 0.0625
        winner = OnnxRuntimeModel.load(onnx_files[0]).run(x_test)
        remade = OnnxRuntimeModel.load(again / "export" / "model_int8.onnx").run(x_test)
        np.testing.assert_allclose(remade, winner, atol=1e-6)


def test_a_budget_nothing_meets_exits_1_with_the_closest_listed(sensitive_model, tmp_path):
    output = tmp_path / "never"
    outcome = _cli(str(sensitive_model), "--dataset", "digits", "--preprocess", "scale=0.0625",
                   "--max-drop", "0.5", "--candidates", "tflite-int8,tflite-dynamic",
                   *FAST_FLAGS, "--output", str(output))
    assert outcome.exit_code == 1
    assert "no candidate keeps the validation accuracy within 0.5 points" in outcome.output
    assert "the closest: tflite-" in outcome.output and "drops" in outcome.output
    assert "over budget" in outcome.output  # the table is printed too
    assert not output.exists()


def test_the_time_budget_stops_the_search_and_says_so(sensitive_model, tmp_path, monkeypatch):
    monkeypatch.setattr(latency, "SEARCH_TIMING", FAST["bench_options"])
    output = tmp_path / "quick"
    outcome = _cli(str(sensitive_model), "--dataset", "digits", "--preprocess", "scale=0.0625",
                   "--max-drop", "1", "--objective", "size", "--time-budget", "0.001",
                   "--candidates",
                   "tflite-fp32,tflite-int8,tflite-int8-fallback,tflite-qat", *FAST_FLAGS,
                   "--output", str(output))
    assert outcome.exit_code == 0, outcome.output
    assert "the time budget of 0.001 minute(s) stopped the search" in outcome.output
    document = _document(output)
    statuses = {item["name"]: item["status"] for item in document["candidates"]}
    assert statuses["tflite-int8-fallback"] == statuses["tflite-qat"] == "skipped: time budget"
    assert document["stopped_by_time_budget"] is True
    assert document["chosen"] == "tflite-fp32"  # the only one measured within budget
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["recipe"] == "fp32" and manifest["config"]["dynamic"] is False
    names = [artifact.name for subject in discover([output]) for artifact in subject.artifacts]
    assert "tflite-fp32" in names
    # The fp32 winner's command names compress --fp32, and it remakes the same model.tflite.
    assert "--fp32" in manifest["command"]
    _assert_the_command_reproduces_the_folder(manifest["command"], output, tmp_path / "again")


def test_fine_tuning_runs_only_where_it_can_still_win(parent_folder, tmp_path):
    result = optimize(
        str(parent_folder), output_dir=tmp_path / "small", max_drop=100.0, objective="size",
        candidates="tflite-int8,tflite-qat,tflite-prune50-qat", progress=False, **FAST)
    statuses = {item["name"]: item["status"] for item in result.candidates}
    # QAT alone converts to the same int8 tensors: no smaller than int8, which is within budget.
    assert statuses["tflite-qat"].startswith("skipped: dominated")
    assert statuses["tflite-prune50-qat"] == "measured"
    details = result.document["details"]["tflite-prune50-qat"]
    assert details["compress_folder"].endswith("prune50-qat")
    sizes = {item["name"]: item["gzip_bytes"] for item in result.candidates}
    assert sizes["tflite-prune50-qat"] < sizes["tflite-int8"]
    assert result.chosen["name"] == "tflite-prune50-qat"
    manifest = json.loads((result.output_dir / "manifest.json").read_text())
    assert manifest["recipe"] == "prune50-qat" and "prune" in manifest["stages"]
    assert manifest["parent"]["path"] == str(parent_folder)
    assert "--prune 0.5 --qat" in manifest["command"]


def test_an_onnx_fallback_winner_is_remade_by_its_recorded_commands(sensitive_model, tmp_path):
    result = optimize(
        str(sensitive_model), output_dir=tmp_path / "onnx", max_drop=1.0, finetune=False,
        runtime="onnxruntime", objective="size", progress=False,
        candidates="onnx-int8,onnx-int8-fallback", **SENSITIVE, **FAST)
    assert result.chosen["name"] == "onnx-int8-fallback"
    manifest = json.loads((result.output_dir / "manifest.json").read_text())
    assert manifest["stages"]["ptq"]["float_layers"] == ["wide_range"]
    assert "onnx_file" not in manifest["optimize"]  # the ONNX file is export's own
    exported = json.loads((result.output_dir / "export" / "manifest.json").read_text())
    options = exported["artifacts"]["onnx-int8"]["options"]
    assert options["float_layers"] == ["wide_range"]
    assert "compress recipe" in options["float_layers_from"]
    assert "edgekit export" in manifest["command"]
    assert "--onnx-float-layers" not in manifest["command"]  # export takes the folder's layers
    _assert_the_command_reproduces_the_folder(manifest["command"], result.output_dir,
                                              tmp_path / "again")
