"""``edgekit bench`` and ``edgekit report`` end to end on a tiny digits model and its artifacts."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
from pathlib import Path

import numpy as np
import pytest

from edgekit.bench.report import validate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUICK = ["--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "5", "--min-seconds", "0.01"]
QUICK_OPTIONS = {"warmup_runs": 1, "warmup_seconds": 0.0, "min_runs": 5, "min_seconds": 0.01}
DATA = Path(__file__).resolve().parents[1] / "unit" / "bench" / "data"


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """An mlp trained one epoch on digits, exported to TFLite fp32 and ONNX fp32 / int8."""
    import edgekit
    from edgekit.export import export

    folder = tmp_path_factory.mktemp("bench") / "mlp-digits"
    edgekit.train(model="mlp", epochs=1, output_dir=folder, progress=False)
    export(folder, to="tflite,onnx", onnx_precisions=("fp32", "int8"))
    return folder


@pytest.fixture
def bench_cli():
    """Invoke the bench and report commands in-process (as ``edgekit`` will once registered)."""
    from click.testing import CliRunner

    from edgekit.cli.bench import bench_command
    from edgekit.cli.common import EdgekitGroup
    from edgekit.cli.report import report_command

    group = EdgekitGroup("edgekit")
    group.add_command(bench_command)
    group.add_command(report_command)

    def invoke(*args: str):
        return CliRunner().invoke(group, list(args), catch_exceptions=False)

    return invoke


def test_bench_measures_every_artifact_of_a_model_folder(model_folder, bench_cli, tmp_path):
    output = tmp_path / "out"
    result = bench_cli("bench", str(model_folder), *QUICK, "--output", str(output))
    assert result.exit_code == 0, result.output
    for name in ("keras", "tflite-fp32", "onnx-fp32", "onnx-int8"):
        assert f"\n{name} " in result.stdout
    report = json.loads((output / "bench.json").read_text())
    assert validate(report) == []
    assert report["machine"]["cpu_flags"] and report["versions"]["onnxruntime"]
    rows = {row["name"]: row for row in report["artifacts"]}
    assert all(row["status"] == "ok" for row in rows.values())
    manifest = json.loads((model_folder / "manifest.json").read_text())
    assert rows["keras"]["accuracy"] == pytest.approx(manifest["evaluation"]["test"]["accuracy"])
    assert rows["tflite-fp32"]["fidelity"]["agreement"] == 1.0
    assert rows["tflite-fp32"]["fidelity"]["max_abs_diff"] < 1e-4
    assert rows["onnx-int8"]["fidelity"]["agreement"] > 0.9
    assert report["datasets"]["mlp-digits"]["preprocessing_from"] == "manifest"
    for row in rows.values():
        run = row["runs"][0]
        assert run["load_ms"] > 0 and run["first_inference_ms"] > 0
        assert run["measurements"][0]["runs"] >= 10  # two windows of at least 5
    # Each artifact ran in its own process: LiteRT's never loaded TensorFlow.
    assert rows["tflite-fp32"]["metrics"]["peak_rss_mb"] < rows["keras"]["metrics"]["peak_rss_mb"]
    assert "| onnx-fp32 |" in (output / "bench.md").read_text()
    for name in ("accuracy_vs_latency", "accuracy_vs_size", "latency_distribution"):
        assert (output / "plots" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC

    page = bench_cli("report", str(model_folder), "--bench-json", str(output / "bench.json"),
                     "--output", str(tmp_path / "report.html"))
    assert page.exit_code == 0, page.output
    html = (tmp_path / "report.html").read_text()
    assert "Training" in html and "Fidelity to the Keras model" in html and "Benchmark" in html
    assert html.count("data:image/png;base64,") >= 4  # curves, confusion matrix, bench plots


def test_bench_grid_of_batches_and_threads_with_xnnpack_off(model_folder):
    from edgekit.bench import bench

    result = bench(model_folder, output_dir=model_folder.parent / "grid", include=("tflite-fp32",),
                   batches="1,4", threads="1,2", xnnpack=False, pin_cpus="0", **QUICK_OPTIONS)
    row = result.row("tflite-fp32")
    assert [run["threads"] for run in row["runs"]] == [1, 2]
    assert [m["batch"] for m in row["runs"][0]["measurements"]] == [1, 4]
    assert row["runs"][0]["cpu_affinity"] == [0]
    assert "throughput" in {name.split(":")[1] for name in result.files if name.startswith("plot:")}


def test_a_broken_artifact_is_a_failed_row_and_the_others_are_measured(model_folder, tmp_path):
    from edgekit.bench import ArtifactsFailedError, bench

    good = tmp_path / "good.tflite"
    shutil.copyfile(model_folder / "export" / "model_fp32.tflite", good)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(good.read_bytes()[:1000])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(os.urandom(2000))
    with pytest.raises(ArtifactsFailedError, match="2 of 3 artifact") as raised:
        # Loose files carry no record of how their input is scaled: the contract is stated.
        recorded = json.loads((model_folder / "manifest.json").read_text())["input_contract"]
        bench(truncated, garbage, good, dataset="digits", output_dir=tmp_path / "out",
              preprocess=recorded["preprocessing"], **QUICK_OPTIONS)
    result = raised.value.result
    assert result.row("truncated.tflite")["status"] == "failed"
    assert "cannot load TFLite model" in result.row("truncated.tflite")["reason"]
    assert "ONNX Runtime cannot load" in result.row("garbage.onnx")["reason"]
    assert result.row("good.tflite")["status"] == "ok"
    assert result.row("good.tflite")["accuracy"] > 0.5
    assert validate(json.loads((tmp_path / "out" / "bench.json").read_text())) == []


def test_gates_that_hold_exit_0_and_broken_ones_exit_1_naming_each(model_folder, bench_cli,
                                                                   tmp_path):
    common = [str(model_folder), "--only", "tflite-fp32,onnx-fp32", *QUICK,
              "--output", str(tmp_path / "out")]
    held = bench_cli("bench", *common, "--fail-if", "accuracy_drop>50", "--fail-if", "p99_ms>5000")
    assert held.exit_code == 0, held.output
    broke = bench_cli("bench", *common, "--fail-if", "accuracy<1.01", "--fail-if",
                      "onnx-fp32:p50_ms>=0")
    assert broke.exit_code == 1
    assert 'tflite-fp32: accuracy = ' in broke.stderr and '(gate "accuracy<1.01")' in broke.stderr
    assert '(gate "onnx-fp32:p50_ms>=0")' in broke.stderr
    assert "3 gate(s) broke" in broke.stderr
    assert "tflite-fp32" in broke.stdout  # the table is printed all the same


def test_an_artifact_that_does_not_fit_the_dataset_names_both(model_folder, tmp_path):
    from edgekit.bench import ArtifactsFailedError, bench

    rng = np.random.default_rng(0)
    data = tmp_path / "other.npz"
    np.savez(data, x_train=rng.integers(0, 255, (30, 6, 6, 1)).astype(np.uint8),
             y_train=np.arange(30) % 3, x_test=rng.integers(0, 255, (9, 6, 6, 1)).astype(np.uint8),
             y_test=np.arange(9) % 3)
    with pytest.raises(ArtifactsFailedError) as raised:
        bench(model_folder / "export" / "model_fp32.tflite", dataset=f"npz:{data}",
              output_dir=tmp_path / "out", **QUICK_OPTIONS)
    reason = raised.value.result.artifacts[0]["reason"]
    assert "of shape (N, 8, 8, 1) float32" in reason
    assert f"dataset 'npz:{data}' gives samples of shape (N, 6, 6, 1)" in reason


def test_an_unreachable_triton_url_is_a_clear_error(model_folder, bench_cli):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the probe is: nothing listens there
    result = bench_cli("bench", str(model_folder), "--target", f"triton://127.0.0.1:{port}")
    assert result.exit_code == 1
    assert f"cannot reach Triton at http://127.0.0.1:{port}" in result.stderr
    assert "check --target" in result.stderr and "Traceback" not in result.stderr


def test_adb_target_runs_benchmark_model_on_the_device_and_parses_it(model_folder, tmp_path,
                                                                     monkeypatch):
    from edgekit.bench import bench

    # A stand-in for adb: pushes succeed; running the binary prints recorded device output.
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    adb = bin_folder / "adb"
    adb.write_text("#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/calls.txt\"\n"
                   "case \"$*\" in *benchmark_model\\ --graph*) "
                   f"cat {DATA / 'benchmark_model_cli_2_16.txt'};; esac\n")
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_folder}{os.pathsep}{os.environ['PATH']}")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF")
    result = bench(model_folder, target="adb:emulator-5554", benchmark_binary=str(binary),
                   include=("tflite-fp32",), accuracy=False, output_dir=tmp_path / "out")
    row = result.row("tflite-fp32")
    assert row["metrics"]["p50_ms"] == pytest.approx(0.116)
    assert row["runs"][0]["device"] == "adb:emulator-5554"
    calls = (bin_folder / "calls.txt").read_text()
    assert "-s emulator-5554 push" in calls and "--num_threads=1" in calls


@pytest.mark.parametrize("runtime, file, options", [
    ("keras", "model.keras", {}),
    ("litert", "export/model_fp32.tflite", {"xnnpack": True}),
    ("litert", "export/model_fp32.tflite", {"xnnpack": False}),
    ("onnxruntime", "export/model_fp32.onnx", {"ort_optimization": "basic"}),
], ids=["keras", "litert-xnnpack", "litert-builtin", "onnxruntime-basic"])
def test_each_runtime_runs_the_tiny_model_and_its_prepared_call(model_folder, runtime, file,
                                                                options):
    import edgekit
    from edgekit.runtimes import RUNTIMES
    from edgekit.runtimes.keras import KerasModel

    x, _ = edgekit.load_dataset("digits").preprocessed("test")
    reference = KerasModel.load(model_folder / "model.keras").run(x[:32])
    opened = RUNTIMES.get(runtime).open(str(model_folder / file), {"num_threads": 1, **options})
    assert opened.describe()["input"]["shape"][1:] == [8, 8, 1]
    np.testing.assert_allclose(opened.run(x[:32]), reference, atol=1e-5)
    call, timed = opened.prepared_call(x[:4])
    call()
    assert timed


# --- speed of a compressed artifact against its fp32 sibling (issue 13) -------------------------

def _mlp_onnx(path, widths: list[int], seed: int):
    """An MLP as ONNX: input "input" [N, 8, 8, 1] -> widths[1:] (ReLU between) -> softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Reshape", ["input", "flat_shape"], ["h0"])]
    weights = [numpy_helper.from_array(np.array([-1, widths[0]], np.int64), "flat_shape")]
    for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        weights += [numpy_helper.from_array(
            (rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32), f"W{index}"),
            numpy_helper.from_array(np.zeros(fan_out, np.float32), f"b{index}")]
        nodes += [helper.make_node("MatMul", [f"h{index}", f"W{index}"], [f"m{index}"]),
                  helper.make_node("Add", [f"m{index}", f"b{index}"], [f"a{index}"])]
        last = index == len(widths) - 2
        nodes.append(helper.make_node("Softmax" if last else "Relu", [f"a{index}"],
                                      ["probabilities" if last else f"h{index + 1}"],
                                      **({"axis": -1} if last else {})))
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 8, 8, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", widths[-1]])],
        weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def slower_int8(tmp_path_factory):
    """A genuinely slower "compressed" sibling, measured for real: a small fp32 MLP, and a much
    wider MLP quantized to int8 by ONNX Runtime (dynamic quantization), named as its int8 form.

    Both run in ONNX Runtime, so bench compares the int8 file with the fp32 one; the int8 model
    does ~1000x the arithmetic, so it is slower on any machine (the ratio is measured, not set).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = tmp_path_factory.mktemp("slower")
    fp32 = _mlp_onnx(folder / "small_fp32.onnx", [64, 10], seed=0)
    wide = _mlp_onnx(folder / "wide.onnx", [64, 1024, 1024, 1024, 10], seed=1)
    int8 = folder / "wide_int8.onnx"
    quantize_dynamic(str(wide), str(int8), weight_type=QuantType.QInt8)
    return fp32, int8


def test_bench_says_when_a_compressed_artifact_runs_slower_than_its_fp32_sibling(slower_int8,
                                                                                 bench_cli,
                                                                                 tmp_path):
    fp32, int8 = slower_int8
    output = tmp_path / "out"
    result = bench_cli("bench", str(fp32), str(int8), "--dataset", "digits", "--preprocess", "none",
                       *QUICK, "--output", str(output))
    assert result.exit_code == 0, result.output
    report = json.loads((output / "bench.json").read_text())
    assert validate(report) == []
    rows = {row["name"]: row for row in report["artifacts"]}
    speedup = rows["wide_int8.onnx"]["speedup"]
    measured = rows["small_fp32.onnx"]["metrics"]["p50_ms"] / rows["wide_int8.onnx"]["metrics"]["p50_ms"]
    assert speedup["baseline"] == "small_fp32.onnx" and speedup["ratio"] == pytest.approx(measured)
    assert (speedup["batch"], speedup["threads"]) == (1, 1) and speedup["ratio"] < 1
    assert rows["wide_int8.onnx"]["metrics"]["speedup"] == speedup["ratio"]
    assert "speedup" not in rows["small_fp32.onnx"]["metrics"]  # the baseline has no ratio
    line = (f"wide_int8.onnx runs at {speedup['ratio']:.2f}x the speed of small_fp32.onnx on "
            "this machine")
    assert line in result.stdout and line in (output / "bench.md").read_text()
    assert "vs fp32 (p50, batch 1, 1 thread)" in result.stdout  # the column says its setting
    assert f"{speedup['ratio']:.2f}x" in next(text for text in result.stdout.splitlines()
                                              if text.startswith("wide_int8.onnx"))

    gated = bench_cli("bench", str(fp32), str(int8), "--dataset", "digits", "--preprocess", "none",
                      *QUICK, "--output", str(output), "--fail-if", "speedup<1")
    assert gated.exit_code == 1  # as any broken gate
    errors = [text for text in gated.stderr.splitlines() if text.startswith("error:")]
    assert len(errors) == 1, gated.stderr
    assert re.fullmatch(r'error: 1 gate\(s\) broke: wide_int8\.onnx: speedup = 0\.\d+ < 1 '
                        r'\(gate "speedup<1"\)', errors[0]), errors[0]


def test_a_speedup_gate_fails_a_run_that_asks_for_100x_from_int8(model_folder, bench_cli, tmp_path):
    result = bench_cli("bench", str(model_folder), "--only", "onnx-fp32,onnx-int8", *QUICK,
                       "--output", str(tmp_path / "out"),
                       "--fail-if", "speedup>100", "--fail-if", "speedup<100")
    assert result.exit_code == 1  # as any broken gate
    errors = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: 1 gate(s) broke: onnx-int8: speedup = ")
    assert errors[0].endswith('< 100 (gate "speedup<100")')  # "speedup>100" held: no int8 is 100x
    report = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert report["gates"]["broken"] == [errors[0].split("broke: ", 1)[1]]
    assert "onnx-fp32" not in {line.split(":")[0] for line in report["gates"]["broken"]}
