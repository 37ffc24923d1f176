"""`--triton-precision int8`: the bundled Triton server serves the int8 ONNX, and `edgekit bench`
reports its fidelity against the Keras model and its p50 (issue 13).

One digits MLP, compressed to int8, exported to ONNX and to a Triton repository with the int8
precision, served on free loopback ports.
"""

from __future__ import annotations

import json
import socket

import pytest

from edgekit.manifest import sha256_file

MODEL = "mlp-digits-int8"
SHORT = ["--warmup-runs", "4", "--warmup-seconds", "0.05", "--min-runs", "20",
         "--min-seconds", "0.2", "--max-windows", "3"]


def _free_ports(count: int = 3) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for probe in sockets:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in sockets]
    for probe in sockets:
        probe.close()
    return ports


@pytest.fixture(scope="module")
def served_int8(tmp_path_factory):
    import edgekit
    from edgekit.serve import serve

    root = tmp_path_factory.mktemp("triton_int8")
    edgekit.train(model="mlp", epochs=3, output_dir=root / "mlp-digits", progress=False)
    edgekit.compress(root / "mlp-digits", output_dir=root / MODEL, int8=True, progress=False)
    result = edgekit.export(root / MODEL, to="onnx,triton", triton_repository=root / "triton_repo",
                            triton_precision="int8")
    ports = _free_ports()
    server = serve(root / "triton_repo", http_port=ports[0], grpc_port=ports[1],
                   metrics_port=ports[2], log_file=str(root / "server.log"), ready_timeout=90)
    yield {"root": root, "export": result, "http": ports[0], "server": server}
    server.stop()


def test_the_served_version_is_the_int8_onnx_file(served_int8):
    root = served_int8["root"]
    manifest = json.loads((root / MODEL / "export" / "manifest.json").read_text())
    triton = manifest["artifacts"]["triton"]
    assert triton["precision"] == "int8"
    served = sorted((root / "triton_repo" / MODEL).glob("*/model.onnx"))[-1]
    int8_file = root / MODEL / "export" / manifest["artifacts"]["onnx-int8"]["file"]
    assert sha256_file(served) == sha256_file(int8_file)


def test_bench_reports_the_served_int8_models_fidelity_and_p50(served_int8, tmp_path, run_edgekit):
    root = served_int8["root"]
    output = tmp_path / "bench"
    done = run_edgekit("bench", str(root / MODEL), "--target",
                       f"triton://127.0.0.1:{served_int8['http']}#{MODEL}", *SHORT,
                       "--output", str(output))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((output / "bench.json").read_text())
    rows = {row["name"]: row for row in report["artifacts"]}
    served = [row for name, row in rows.items() if name.startswith("triton")]
    assert served, sorted(rows)
    row = served[0]
    (run,) = row["runs"]
    assert run["status"] == "ok"
    assert run["measurements"][0]["latency_ms"]["p50"] > 0
    # Answers of the served int8 model against the folder's float reference, on the test split.
    fidelity = row["fidelity"]
    assert fidelity["reference"] in rows and rows[fidelity["reference"]]["precision"] in ("fp32", "float32"), fidelity
    assert fidelity["agreement"] >= 0.97 and fidelity["samples"] > 100, fidelity
    assert row["accuracy"] is not None
    assert "p50" in (output / "bench.md").read_text()
