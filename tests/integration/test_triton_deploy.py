"""Deploying to a running Triton, and TFLite served through LiteRT, on a real server on loopback.

One server (module fixture, ``--model-control explicit``) serves a repository holding a digits
MLP exported by ``edgekit export`` and the same MLP as an int8 .tflite. Only 127.0.0.1 is bound.
"""

from __future__ import annotations

import json
import socket

import click
import numpy as np
import pytest

from edgekit.runtimes.triton_client import TritonClient

MODEL = "digits-mlp"
TFLITE_MODEL = "digits-litert"
TFLITE_CONFIG = """
name: "{name}"
backend: "armnn_tflite"
default_model_filename: "model.tflite"
max_batch_size: 16
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ 8, 8, 1 ] }} ]
output [ {{ name: "probabilities" data_type: TYPE_FP32 dims: [ 10 ] label_filename: "labels.txt" }} ]
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
dynamic_batching {{ max_queue_delay_microseconds: 100 }}
"""


def _free_ports(count: int = 3) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for probe in sockets:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in sockets]
    for probe in sockets:
        probe.close()
    return ports


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A trained digits MLP, its fp32 version 1 in triton_repo/, an int8 .tflite beside it."""
    import edgekit
    from edgekit._compat import keras
    from edgekit.data.calibration import calibration_samples
    from edgekit.export.run import export
    from edgekit.formats.tflite import convert_to_tflite

    root = tmp_path_factory.mktemp("deploy")
    model_folder, repository = root / MODEL, root / "triton_repo"
    edgekit.train(model="mlp", epochs=1, output_dir=model_folder, progress=False)
    export(model_folder, to="triton", triton_repository=repository)
    dataset = edgekit.load_dataset("digits", seed=0)
    x_test, _ = dataset.preprocessed("test")
    tflite_folder = repository / TFLITE_MODEL
    (tflite_folder / "1").mkdir(parents=True)
    content = convert_to_tflite(keras().models.load_model(model_folder / "model.keras"), "int8",
                                representative_data=calibration_samples(dataset, 200, 0), int8_io=True)
    (tflite_folder / "1" / "model.tflite").write_bytes(content)
    (tflite_folder / "config.pbtxt").write_text(TFLITE_CONFIG.format(name=TFLITE_MODEL))
    (tflite_folder / "labels.txt").write_text("".join(f"{name}\n" for name in dataset.class_names))
    return {"model": model_folder, "repository": repository, "x": x_test,
            "tflite": tflite_folder / "1" / "model.tflite"}


@pytest.fixture(scope="module")
def explicit_server(deployment, tmp_path_factory):
    from edgekit.serve import serve

    ports = dict(zip(("http_port", "grpc_port", "metrics_port"), _free_ports()))
    server = serve(deployment["repository"], model_control="explicit", ready_timeout=90,
                   log_file=str(tmp_path_factory.mktemp("log") / "server.log"), **ports)
    yield server
    server.stop()


def deploy_cli() -> click.Group:
    """The edgekit command group, with deploy added when main.py does not list it yet."""
    from edgekit.cli.common import EdgekitGroup
    from edgekit.cli.deploy import deploy_group
    from edgekit.cli.main import cli

    if "deploy" in cli.commands:
        return cli
    return EdgekitGroup("edgekit", commands={**cli.commands, "deploy": deploy_group})


def run_cli(*args: str):
    from click.testing import CliRunner

    return CliRunner().invoke(deploy_cli(), list(args), catch_exceptions=False)


def _onnx(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": np.asarray(x, np.float32)})[0]


def test_a_version_deployed_while_serving_becomes_the_one_answering(explicit_server, deployment):
    repository, x = deployment["repository"], deployment["x"][:64]
    old = _onnx(repository / MODEL / "1" / "model.onnx")(x)
    with TritonClient(explicit_server.endpoints["http"]) as client:
        assert np.abs(client.infer(MODEL, x[:32])["probabilities"] - old[:32]).max() <= 1e-5

    result = run_cli("deploy", "triton", str(deployment["model"]), "--repository", str(repository),
                     "--precision", "int8", "--reload", explicit_server.endpoints["grpc"])
    assert result.exit_code == 0, result.output
    assert "onnx-int8:" in result.stdout and "(exported;" in result.stdout  # no export had int8 yet
    assert "version 2 (versions [1, 2])" in result.stdout and "ready versions [2]" in result.stdout

    new = _onnx(repository / MODEL / "2" / "model.onnx")(x)
    assert np.abs(new - old).max() > 1e-3  # int8 and fp32 are told apart
    for protocol in ("http", "grpc"):
        with TritonClient(explicit_server.endpoints[protocol]) as client:
            answers = np.concatenate([client.infer(MODEL, x[:32])["probabilities"],
                                      *(client.infer(MODEL, x[i:i + 1])["probabilities"] for i in range(32, 64))])
            assert np.abs(answers - new).max() <= 1e-5
            assert (answers.argmax(1) == new.argmax(1)).all()
            assert client.is_model_ready(MODEL, "2") and not client.is_model_ready(MODEL, "1")
    config = (repository / MODEL / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "edgekit_preprocessing" in config
    assert not (repository / MODEL / "2" / "model.py").exists()  # the repository stays standard
    lineage = json.loads((repository / MODEL / "2" / "edgekit.json").read_text())
    assert lineage["artifact"] == "onnx-int8" and lineage["export"].endswith("export-onnx-int8")


def test_deploying_to_a_server_on_another_repository_changes_nothing(explicit_server, deployment, tmp_path):
    result = run_cli("deploy", "triton", str(deployment["model"]), "--repository", str(tmp_path / "other"),
                     "--reload", explicit_server.endpoints["http"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"serves repository {deployment['repository'].resolve()}, not {(tmp_path / 'other').resolve()}" in line
    assert not (tmp_path / "other").exists()


def test_tflite_int8_model_answers_as_litert_does_in_process(explicit_server, deployment):
    from edgekit.runtimes.litert import LiteRTModel

    x = deployment["x"][:48]
    expected = LiteRTModel.load(deployment["tflite"], num_threads=1).run(x)
    for protocol in ("http", "grpc"):
        with TritonClient(explicit_server.endpoints[protocol]) as client:
            answers = np.concatenate([client.infer(TFLITE_MODEL, x[:16])["probabilities"],
                                      *(client.infer(TFLITE_MODEL, x[i:i + 1])["probabilities"]
                                        for i in range(16, 48))])
            assert answers.dtype == np.float32 and answers.shape == expected.shape
            assert (answers.argmax(1) == expected.argmax(1)).all()
            assert np.abs(answers - expected).max() <= 1e-6
            (top,) = client.classify(TFLITE_MODEL, x[:1], top_k=1)
            assert top[0].label == str(expected[0].argmax())
