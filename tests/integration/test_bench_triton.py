"""``edgekit bench --target triton://...`` as a load test against a real Triton server on loopback.

One server (module fixture) serves a digits classifier written without TensorFlow (a logistic
regression from scikit-learn, as ONNX, added with export's own ``add_model_version``) and its
``-nobatch`` variant; one short sweep (concurrency 1 and 4, HTTP and gRPC, batching on and off)
answers most tests. Only 127.0.0.1 is ever bound; no timing is asserted.
"""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest

from edgekit.bench.report import validate

MODEL = "digits-linear"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SHORT = ["--warmup-runs", "4", "--warmup-seconds", "0.05", "--min-runs", "20",
         "--min-seconds", "0.2", "--max-windows", "3"]
TRITON_ROWS = ("triton-http", "triton-http-nobatch", "triton-grpc", "triton-grpc-nobatch")


def _free_ports(count: int = 3) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for probe in sockets:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in sockets]
    for probe in sockets:
        probe.close()
    return ports


def _linear_onnx(path, weights: np.ndarray, bias: np.ndarray):
    """softmax(reshape(x, [N, 64]) @ W + b): input "input" [N, 8, 8, 1] -> "probabilities"."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "flat_shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "W"], ["logits_raw"]),
         helper.make_node("Add", ["logits_raw", "b"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)],
        "digits_linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 8, 8, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(np.array([-1, 64], np.int64), "flat_shape"),
         numpy_helper.from_array(weights.astype(np.float32), "W"),
         numpy_helper.from_array(bias.astype(np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A repository with the model and its -nobatch variant, served on free loopback ports."""
    from sklearn.linear_model import LogisticRegression

    import edgekit
    from edgekit.formats.triton import add_unbatched_variant
    from edgekit.formats.triton import add_model_version
    from edgekit.serve import serve

    root = tmp_path_factory.mktemp("bench_triton")
    dataset = edgekit.load_dataset("digits")
    x_train, y_train = dataset.preprocessed("train")
    classifier = LogisticRegression(max_iter=300).fit(x_train.reshape(len(x_train), -1), y_train)
    onnx_file = _linear_onnx(root / "digits-linear.onnx", classifier.coef_.T, classifier.intercept_)
    repository = root / "triton_repo"
    add_model_version(repository, MODEL, onnx_file, class_names=list(dataset.class_names),
                      instance_count=2)
    variant = add_unbatched_variant(repository, MODEL)
    ports = _free_ports()
    server = serve(repository, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2],
                   log_file=str(root / "server.log"), ready_timeout=90)
    yield {"server": server, "onnx": onnx_file, "repository": repository, "variant": variant,
           "http": ports[0], "grpc": ports[1]}
    server.stop()


@pytest.fixture(scope="module")
def bench_cli():
    from click.testing import CliRunner

    from edgekit.cli.bench import bench_command
    from edgekit.cli.common import EdgekitGroup

    group = EdgekitGroup("edgekit")
    group.add_command(bench_command)
    return lambda *args: CliRunner().invoke(group, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def sweep(served, bench_cli, tmp_path_factory):
    """One short sweep: the in-process ONNX file and the four served variants."""
    import edgekit

    output = tmp_path_factory.mktemp("sweep")
    # The linear model was fitted on the standardised digits; a loose ONNX file says nothing
    # about that, so the contract is stated.
    p = edgekit.load_dataset("digits").preprocessing
    result = bench_cli("bench", str(served["onnx"]), "--dataset", "digits",
                       "--preprocess", f"scale={p.scale!r},mean={p.mean!r},std={p.std!r}",
                       "--target", f"triton://127.0.0.1:{served['http']}#{MODEL}",
                       "--grpc-port", str(served["grpc"]), "--protocol", "http,grpc",
                       "--concurrency", "1,4", "--compare-batching", *SHORT,
                       "--output", str(output))
    assert (output / "bench.json").is_file(), result.output
    report = json.loads((output / "bench.json").read_text())
    return {"result": result, "output": output, "report": report,
            "rows": {row["name"]: row for row in report["artifacts"]}}


def test_the_sweep_over_http_and_grpc_with_batching_on_and_off_has_zero_errors(sweep):
    assert sweep["result"].exit_code == 0, sweep["result"].output
    rows = sweep["rows"]
    assert set(TRITON_ROWS) <= set(rows)
    for name in TRITON_ROWS:
        (run,) = rows[name]["runs"]
        assert run["status"] == "ok"
        assert [m["concurrency"] for m in run["measurements"]] == [1, 4]
        for measurement in run["measurements"]:
            assert measurement["errors"] == 0 and measurement["wrong_answers"] == 0, measurement
            assert measurement["throughput_per_s"] > 0
            latency = measurement["latency_ms"]
            assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
        assert rows[name]["metrics"]["errors"] == 0
    assert rows["triton-http"]["runs"][0]["describe"]["dynamic_batching"] is True
    assert rows["triton-http-nobatch"]["runs"][0]["describe"]["dynamic_batching"] is False


def test_served_answers_match_the_onnx_file_run_in_process(sweep):
    rows = sweep["rows"]
    onnx_row = next(row for row in rows.values() if row["format"] == "onnx")
    for name in TRITON_ROWS:
        fidelity = rows[name]["fidelity"]
        assert fidelity["reference"] == onnx_row["name"]
        assert fidelity["agreement"] == 1.0 and fidelity["max_abs_diff"] <= 1e-5
        assert fidelity["samples"] == sweep["report"]["datasets"][onnx_row["subject"]]["samples"]
        assert rows[name]["accuracy"] == onnx_row["accuracy"]


def test_server_statistics_cover_the_measured_windows(sweep):
    for name in TRITON_ROWS:
        for measurement in sweep["rows"][name]["runs"][0]["measurements"]:
            server = measurement["server"]
            assert server["requests"] >= measurement["runs"] > 0  # stragglers finish after a window
            assert server["failed"] == 0
            assert server["queue_ms"] is not None and server["compute_infer_ms"] > 0
            assert len(server["windows"]) == measurement["stability"]["windows"]
            if name.endswith("-nobatch"):  # without the batcher every request runs alone
                assert server["mean_batch"] == 1.0
            else:
                assert server["mean_batch"] >= 1.0


def test_the_json_is_valid_and_the_markdown_and_terminal_show_the_load_test(sweep):
    assert validate(sweep["report"]) == []
    markdown = (sweep["output"] / "bench.md").read_text()
    assert "## Load test (Triton)" in markdown
    assert "| triton-grpc-nobatch | 1 | 4 |" in markdown
    assert "Load test (Triton" in sweep["result"].stdout


def test_the_throughput_vs_latency_plot_is_a_png(sweep):
    assert sweep["report"]["plots"]["throughput_vs_latency"] == "plots/throughput_vs_latency.png"
    content = (sweep["output"] / "plots" / "throughput_vs_latency.png").read_bytes()
    assert content.startswith(PNG_MAGIC) and len(content) > 10_000


def test_the_unbatched_variant_is_the_same_model_without_the_batcher(served):
    from edgekit.formats.triton import read_model_config

    original = read_model_config(served["repository"] / MODEL)
    variant = read_model_config(served["variant"])
    assert original.HasField("dynamic_batching") and not variant.HasField("dynamic_batching")
    assert variant.name == f"{MODEL}-nobatch"
    assert variant.max_batch_size == original.max_batch_size
    assert variant.instance_group == original.instance_group
    assert (served["variant"] / "1" / "model.onnx").read_bytes() == \
        (served["repository"] / MODEL / "1" / "model.onnx").read_bytes()


def test_compare_batching_refuses_a_pair_that_does_not_differ_in_batching(served):
    from edgekit.bench import bench
    from edgekit.errors import OptionError

    with pytest.raises(OptionError, match="expects 'digits-linear-nobatch' .* with dynamic_batching"):
        bench(dataset="digits", target=f"http://127.0.0.1:{served['http']}#{MODEL}-nobatch",
              compare_batching=True)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_an_unreachable_url_is_one_clear_error(protocol, bench_cli):
    from edgekit.bench import bench
    from edgekit.errors import ServeError

    (port,) = _free_ports(1)
    started = time.monotonic()
    with pytest.raises(ServeError, match=f"cannot reach Triton at {protocol}://127.0.0.1:{port}.*"
                                         "check --target"):
        bench(dataset="digits", target=f"{protocol}://127.0.0.1:{port}")
    print(f"\n{protocol}: refused after {time.monotonic() - started:.2f} s")
    result = bench_cli("bench", "--dataset", "digits", "--target", f"triton://127.0.0.1:{port}",
                       "--protocol", protocol, "--grpc-port", str(port))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach Triton at"), lines
