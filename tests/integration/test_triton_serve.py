"""A real Triton Inference Server on the repository ``edgekit export`` writes, on loopback ports.

One server (session fixture) answers the accuracy, load and bad-request tests; the kill / restart
and busy-port tests start their own. Only 127.0.0.1 is ever bound.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import numpy as np
import pytest

from edgekit.runtimes.triton_client import TritonClient
from edgekit.errors import InferenceError, ServeError

MODEL = "digits-mlp"


def _free_ports(count: int = 3) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        sockets.append(probe)
        ports.append(probe.getsockname()[1])
    for probe in sockets:
        probe.close()
    return ports


def _port_options(ports) -> dict:
    return dict(zip(("http_port", "grpc_port", "metrics_port"), ports))


@pytest.fixture(scope="session")
def digits_repository(tmp_path_factory):
    """A digits MLP trained for 2 epochs, exported with `edgekit.export(..., to="triton")`.

    Returns the repository, the ONNX file it serves, and the raw and preprocessed test split.
    """
    import edgekit
    from edgekit.export.run import export

    root = tmp_path_factory.mktemp("triton")
    edgekit.train(model="mlp", epochs=2, output_dir=root / MODEL, progress=False)
    export(root / MODEL, to="triton", triton_repository=root / "triton_repo", instance_count=2)
    dataset = edgekit.load_dataset("digits", seed=0)
    x_test, y_test = dataset.preprocessed("test")
    return {"repository": root / "triton_repo", "onnx": root / "triton_repo" / MODEL / "1" / "model.onnx",
            "x_raw": dataset.x_test, "x": x_test, "y": y_test, "preprocessing": dataset.preprocessing}


@pytest.fixture(scope="session")
def reference(digits_repository):
    """The served ONNX file run in process with ONNX Runtime."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(digits_repository["onnx"]), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": np.asarray(x, np.float32)})[0]


@pytest.fixture(scope="session")
def triton_server(digits_repository, tmp_path_factory):
    from edgekit.serve import serve

    log = tmp_path_factory.mktemp("server") / "server.log"
    server = serve(digits_repository["repository"], log_file=str(log), ready_timeout=90,
                   **_port_options(_free_ports()))
    yield server
    server.stop()


@pytest.fixture(params=["http", "grpc"])
def client(request, triton_server):
    with TritonClient(triton_server.endpoints[request.param], timeout=10) as client:
        yield client


def serve_cli() -> click.Group:
    """The edgekit command group, with serve and infer added when main.py does not list them yet."""
    from edgekit.cli.infer import infer_command
    from edgekit.cli.main import cli
    from edgekit.cli.serve import serve_command

    if "serve" in cli.commands:
        return cli
    from edgekit.cli.common import EdgekitGroup

    return EdgekitGroup("edgekit", commands={**cli.commands, "serve": serve_command, "infer": infer_command})


def run_cli(*args: str):
    from click.testing import CliRunner

    return CliRunner().invoke(serve_cli(), list(args), catch_exceptions=False)


# --- loading and answers --------------------------------------------------------------------

def test_exported_repository_loads_and_the_source_stays_an_onnxruntime_repository(triton_server, digits_repository):
    assert triton_server.models() == [{"name": MODEL, "version": "1", "state": "READY"}]
    source_config = (digits_repository["repository"] / MODEL / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in source_config
    assert not (digits_repository["repository"] / MODEL / "1" / "model.py").exists()
    assert triton_server.log_path.is_file() and "successfully loaded" in triton_server.log_path.read_text()


def test_http_and_grpc_answers_match_onnxruntime_in_process(client, digits_repository, reference):
    x = digits_repository["x"][:96]
    expected = reference(x)
    batched = client.infer(MODEL, x[:32])["probabilities"]
    single = np.concatenate([client.infer(MODEL, x[i:i + 1])["probabilities"] for i in range(32, 96)])
    answers = np.concatenate([batched, single])
    assert answers.shape == expected.shape and answers.dtype == np.float32
    assert (answers.argmax(1) == expected.argmax(1)).all()
    assert np.abs(answers - expected).max() <= 1e-5
    metadata = client.metadata(MODEL)
    assert metadata["inputs"][0]["shape"] == [-1, 8, 8, 1]


def test_top_k_comes_with_the_labels_file(client, digits_repository, reference):
    x = digits_repository["x"][:4]
    rows = client.classify(MODEL, x, top_k=3)
    expected = reference(x)
    for row, probabilities in zip(rows, expected):
        assert [entry.index for entry in row] == list(np.argsort(-probabilities)[:3])
        assert [entry.label for entry in row] == [str(entry.index) for entry in row]  # digits' class names
        assert row[0].score == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_load_test_2000_requests_at_concurrency_8_all_correct(triton_server, digits_repository, reference):
    x = digits_repository["x"]
    expected = reference(x)
    requests, workers, deadline = 2000, 8, time.monotonic() + 90
    before = _inference_count(triton_server)

    def worker(worker_index: int) -> tuple[int, list[str]]:
        protocol = ("http", "grpc")[worker_index % 2]
        done, errors = 0, []
        with TritonClient(triton_server.endpoints[protocol], timeout=10) as client:
            for request in range(worker_index, requests, workers):
                if time.monotonic() > deadline:
                    break
                index = request % len(x)
                try:
                    answer = client.infer(MODEL, x[index:index + 1])["probabilities"][0]
                except ServeError as error:
                    errors.append(str(error))
                    continue
                if answer.argmax() != expected[index].argmax() or np.abs(answer - expected[index]).max() > 1e-5:
                    errors.append(f"request {request}: wrong answer for sample {index}")
                done += 1
        return done, errors

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(worker, range(workers)))
    seconds = time.monotonic() - started
    errors = [error for _, found in results for error in found]
    assert errors == [], errors[:5]
    assert sum(done for done, _ in results) == requests, f"only part of the load ran in {seconds:.0f} s"
    assert _inference_count(triton_server) - before == requests
    print(f"\n{requests} requests at concurrency {workers}: {requests / seconds:.0f} requests/s")


def _inference_count(server) -> int:
    with TritonClient(server.endpoints["grpc"]) as client:
        (stats,) = client.statistics(MODEL)
    return int(stats.get("inference_count", 0))


BAD_REQUESTS = {
    "input name": (lambda x: {"pixels": x}, "unexpected inference input 'pixels'"),
    "shape": (lambda x: x[:, :7], r"unexpected shape for input 'input'.*Expected \[-1,8,8,1\], got \[2,7,8,1\]"),
    "dtype": (lambda x: x.astype(np.float64), "inference input 'input' data-type is 'FP64', but model .* expects 'FP32'"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_requests_fail_cleanly_and_good_requests_still_succeed(case, client, digits_repository, reference):
    x = digits_repository["x"][:2]
    make_inputs, message = BAD_REQUESTS[case]
    with pytest.raises(InferenceError, match=f"refused a request to model '{MODEL}': {message}"):
        client.infer(MODEL, make_inputs(x))
    with pytest.raises(InferenceError, match="Request for unknown model: 'nowhere' is not found"):
        client.infer("nowhere", {"input": x})
    assert np.abs(client.infer(MODEL, x)["probabilities"] - reference(x)).max() <= 1e-5


# --- the CLI ----------------------------------------------------------------------------------

def test_infer_prints_top_k_with_labels_for_an_image_and_an_npy(triton_server, digits_repository, reference, tmp_path):
    from PIL import Image

    raw = digits_repository["x_raw"][:3]  # digits pixels are 0..16
    pixels = np.round(raw[0, :, :, 0] * 255 / 16).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "digit.png")
    np.save(tmp_path / "digits.npy", raw)
    p = digits_repository["preprocessing"]
    from_png = reference(((pixels / 255.0 - p.mean) / p.std)[np.newaxis, :, :, np.newaxis])
    result = run_cli("infer", "--url", triton_server.endpoints["http"], "-k", "2", str(tmp_path / "digit.png"))
    assert result.exit_code == 0, result.output
    assert "from the served model config" in result.stdout  # export's ONNX metadata, passed on
    assert f"1. {from_png.argmax()} " in result.stdout
    result = run_cli("infer", "--url", triton_server.endpoints["grpc"], "--model", MODEL,
                     str(tmp_path / "digits.npy"))
    assert result.exit_code == 0, result.output
    expected = reference(p.apply(raw)).argmax(1)
    for index, label in enumerate(expected):
        assert f"digits.npy [{index}]\n  1. {label} " in result.stdout


def test_infer_with_an_unknown_model_is_one_error_line(triton_server, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((8, 8, 1), np.float32))
    result = run_cli("infer", "--url", triton_server.endpoints["http"], "-m", "nowhere", str(tmp_path / "x.npy"))
    assert result.exit_code == 2  # an unknown name is bad input (issue 11), refused before a request
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error: Triton at http://" in lines[0] and "unknown model: 'nowhere'" in lines[0]


def test_a_busy_port_is_one_clear_line(triton_server, digits_repository):
    from edgekit.serve import serve

    ports = _free_ports(2)
    with pytest.raises(ServeError, match=f"HTTP port {triton_server.config.http_port} on 127.0.0.1 is busy"):
        serve(digits_repository["repository"], http_port=triton_server.config.http_port,
              grpc_port=ports[0], metrics_port=ports[1])
    result = run_cli("serve", str(digits_repository["repository"]), "--http-port", str(ports[0]),
                     "--grpc-port", str(triton_server.config.grpc_port), "--metrics-port", str(ports[1]))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: cannot serve: gRPC port {triton_server.config.grpc_port} on 127.0.0.1 is busy")


def test_a_model_that_fails_to_load_reports_the_server_reason(tmp_path):
    from edgekit.serve import serve

    folder = tmp_path / "repo" / "broken"
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text('backend: "python"\nmax_batch_size: 0\n'
                                         'input [{ name: "x" data_type: TYPE_FP32 dims: [1] }]\n'
                                         'output [{ name: "y" data_type: TYPE_FP32 dims: [1] }]\n')
    (folder / "1" / "model.py").write_text(
        "class TritonPythonModel:\n    def initialize(self, args):\n"
        "        raise RuntimeError('weights.bin is missing')\n")
    with pytest.raises(ServeError, match="model 'broken' version 1 failed to load: .*weights.bin is missing"):
        serve(tmp_path / "repo", log_file=str(tmp_path / "server.log"), ready_timeout=60,
              **_port_options(_free_ports()))


def _serve_command(repository: Path, ports) -> list[str]:
    """``edgekit serve`` in a subprocess (through python -c until main.py registers it)."""
    script = ("import sys; from tests.integration.test_triton_serve import serve_cli; "
              "serve_cli()(sys.argv[1:], prog_name='edgekit')")
    return [sys.executable, "-c", script, "serve", str(repository), "--http-port", str(ports[0]),
            "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])]


def test_killed_server_gives_a_clear_error_and_serve_starts_again_on_the_same_ports(digits_repository, tmp_path):
    from edgekit.serve import serve

    ports = _free_ports()
    server = serve(digits_repository["repository"], log_file=str(tmp_path / "first.log"), **_port_options(ports))
    x = digits_repository["x"][:1]
    failures: list[Exception] = []
    stop = threading.Event()

    def keep_asking():
        with TritonClient(server.endpoints["grpc"], timeout=5) as client:
            while not stop.is_set():
                try:
                    client.infer(MODEL, x)
                except ServeError as error:
                    failures.append(error)
                    return

    asker = threading.Thread(target=keep_asking)
    asker.start()
    time.sleep(0.5)
    os.kill(server.pid, signal.SIGKILL)  # the server this test started, mid-run
    asker.join(timeout=15)
    stop.set()
    server.stop()
    assert failures and "cannot reach Triton at grpc://127.0.0.1" in str(failures[0])
    with pytest.raises(ServeError, match="cannot reach Triton"):
        TritonClient(server.endpoints["http"], timeout=3).check_ready()

    repository_root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(_serve_command(digits_repository["repository"], ports), cwd=repository_root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("ready"):
                break
        output = "".join(lines)
        assert f"HTTP     http://127.0.0.1:{ports[0]}" in output and f"{MODEL}" in output, output
        with TritonClient(f"http://127.0.0.1:{ports[0]}") as client:
            assert client.infer(MODEL, x)["probabilities"].shape == (1, 10)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "stopped" in stdout and "Traceback" not in stderr
    from edgekit.serve.tritonserver import check_ports_free

    check_ports_free("127.0.0.1", {"HTTP": ports[0], "gRPC": ports[1], "metrics": ports[2]})
