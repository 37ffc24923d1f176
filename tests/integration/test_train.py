"""``edgekit train`` end to end on the bundled digits, in-process and through the console script."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from edgekit.manifest import sha256_file

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_train_writes_a_complete_model_folder(cli_runner, tmp_path):
    output = tmp_path / "cnn-digits"
    result = cli_runner("train", "--epochs", "2", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert "test accuracy:" in result.stdout and "precision" in result.stdout
    manifest = _manifest(output)
    assert manifest["status"] == "complete" and manifest["stage"] == "train"
    assert manifest["dataset"]["name"] == "digits"
    assert manifest["dataset"]["class_names"] == [str(i) for i in range(10)]
    assert set(manifest["dataset"]["preprocessing"]) >= {"scale", "mean", "std"}
    assert len(manifest["training"]["history"]["val_loss"]) == 2
    assert manifest["model"]["input"]["shape"][-3:] == [8, 8, 1]
    assert len(manifest["evaluation"]["test"]["per_class"]) == 10
    assert manifest["command"].startswith("edgekit train --model cnn --dataset digits")
    assert manifest["versions"]["tensorflow"].startswith("2.")
    for name, entry in manifest["files"].items():
        assert sha256_file(output / name) == entry["sha256"], name
    for plot in ("training_curves.png", "confusion_matrix.png"):
        assert (output / plot).read_bytes()[:8] == PNG_MAGIC
    assert not list(tmp_path.glob(".*partial"))


def test_saved_model_reloads_as_keras2_and_reproduces_test_accuracy(tmp_path):
    import tf_keras

    import edgekit

    result = edgekit.train(model="mlp", epochs=2, output_dir=tmp_path / "m", progress=False)
    model = tf_keras.models.load_model(result.output_dir / "model.keras")
    assert isinstance(model, tf_keras.Model)
    dataset = edgekit.load_dataset("digits", seed=0)
    x_test, y_test = dataset.preprocessed("test")
    accuracy = float((model.predict(x_test, verbose=0).argmax(1) == y_test).mean())
    assert accuracy == pytest.approx(result.test_accuracy, abs=1e-9)


def test_installed_console_script_trains_without_tensorflow_noise(run_edgekit, tmp_path):
    finished = run_edgekit("train", "--model", "mlp", "--epochs", "1", "--output", "out")
    assert finished.returncode == 0, finished.stderr
    assert "test accuracy:" in finished.stdout
    assert "oneDNN" not in finished.stderr and "absl" not in finished.stderr
    assert (tmp_path / "out" / "model.keras").is_file()


def test_finished_run_resumed_to_more_epochs_has_the_whole_history(cli_runner, tmp_path):
    output = str(tmp_path / "run")
    first = cli_runner("train", "--model", "mlp", "--epochs", "2", "--early-stopping", "0",
                       "--output", output)
    assert first.exit_code == 0, first.output
    steps_per_epoch = _manifest(Path(output))["training"]["optimizer_steps"] // 2
    second = cli_runner("train", "--output", output, "--resume", "--epochs", "4")
    assert second.exit_code == 0, second.output
    training = _manifest(Path(output))["training"]
    assert training["epochs_run"] == 4 and training["resumed_after_epoch"] == 2
    assert len(training["history"]["loss"]) == 4
    # The optimizer state came back: its step counter continued instead of restarting.
    assert training["optimizer_steps"] == 4 * steps_per_epoch


def test_interrupted_run_keeps_its_checkpoint_and_resumes(run_edgekit, edgekit_command, tmp_path,
                                                          interruptible):
    staging_state = tmp_path / ".run.partial" / "checkpoints" / "state.json"
    process = subprocess.Popen(
        [edgekit_command, "train", "--model", "mlp", "--epochs", "200", "--batch-size", "8",
         "--early-stopping", "0", "--output", "run"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=interruptible)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if staging_state.exists() and json.loads(staging_state.read_text())["epochs_done"] >= 2:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted after epoch" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "run").exists()
    done = json.loads(staging_state.read_text())["epochs_done"]
    resumed = run_edgekit("train", "--output", "run", "--resume", "--epochs", str(done + 2))
    assert resumed.returncode == 0, resumed.stderr
    training = _manifest(tmp_path / "run")["training"]
    assert training["resumed_after_epoch"] == done
    assert len(training["history"]["loss"]) == done + 2
    assert not (tmp_path / ".run.partial").exists()


def test_mixed_bfloat16_on_cpu_keeps_a_float32_output(tmp_path):
    import tf_keras

    import edgekit

    result = edgekit.train(model="cnn", epochs=1, precision="mixed_bfloat16",
                           output_dir=tmp_path / "bf16", progress=False)
    assert result.manifest["runtime"]["precision_policy"] == "mixed_bfloat16"
    model = tf_keras.models.load_model(result.output_dir / "model.keras")
    assert model.layers[-1].dtype == "float32"
    assert any(layer.compute_dtype == "bfloat16" for layer in model.layers)
    assert tf_keras.mixed_precision.global_policy().name == "float32"


def test_mirrored_strategy_cosine_sgd_augment_and_tensorboard_train(tmp_path):
    import edgekit

    result = edgekit.train(model="mlp", epochs=2, distribute="mirrored", optimizer="sgd",
                           momentum=0.8, schedule="cosine", weight_decay=1e-4, augment=True,
                           tensorboard=True, output_dir=tmp_path / "m", progress=False)
    assert result.manifest["runtime"]["distribution"] == "mirrored"
    assert list((result.output_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert result.test_accuracy > 0.2


def test_multi_worker_strategy_trains_from_tf_config(run_edgekit, tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tf_config = json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]},
                            "task": {"type": "worker", "index": 0}})
    finished = run_edgekit("train", "--model", "mlp", "--epochs", "1", "--distribute",
                           "multi-worker", "--output", "mw", env={"TF_CONFIG": tf_config})
    assert finished.returncode == 0, finished.stderr
    runtime = _manifest(tmp_path / "mw")["runtime"]
    assert runtime["distribution"] == "multi-worker" and runtime["replicas"] == 1


def test_users_model_file_keeps_training(tmp_path, cli_runner):
    import tf_keras

    inputs = tf_keras.Input((8, 8, 1))
    x = tf_keras.layers.Flatten()(inputs)
    outputs = tf_keras.layers.Dense(10)(x)  # logits: edgekit must notice
    path = tmp_path / "mine.keras"
    tf_keras.Model(inputs, outputs).save(path)
    result = cli_runner("train", "--model", str(path), "--epochs", "3", "--lr", "0.01",
                        "--preprocess", "scale=0.0625", "--output", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    manifest = _manifest(tmp_path / "out")
    assert manifest["model"]["outputs"] == "logits"
    assert manifest["parent"]["sha256"] == sha256_file(path)
    # A linear model trained with the right (from_logits=True) loss learns digits quickly.
    assert manifest["evaluation"]["test"]["accuracy"] > 0.85


def _write_npz(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 255, (40, 6, 6, 1)).astype(np.uint8),
              "y_train": np.arange(40) % 3,
              "x_test": rng.integers(0, 255, (12, 6, 6, 1)).astype(np.uint8),
              "y_test": np.arange(12) % 3}
    arrays.update(overrides)
    np.savez(path, **arrays)
    return path


def test_npz_dataset_trains(tmp_path, cli_runner):
    path = _write_npz(tmp_path / "tiny.npz")
    result = cli_runner("train", "--model", "mlp", "--dataset", f"npz:{path}", "--epochs", "1",
                        "--output", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert _manifest(tmp_path / "out")["dataset"]["sample_shape"] == [6, 6, 1]


BAD_INPUTS = [
    (["--model", "transformer"], "unknown model 'transformer'; expected one of: .*cnn"),
    (["--dataset", "cifar99"], "unknown dataset 'cifar99'"),
    (["--epochs", "0"], "epochs must be an integer >= 1; received 0"),
    (["--optimizer", "adam", "--momentum", "0.5"], "--momentum applies to --optimizer sgd only"),
    (["--resume", "--force"], "received both"),
    (["--resume"], "--resume found no checkpoint"),
    (["--model", "missing.keras"], "missing.keras"),
    (["--model-option", "alpha"], "--model-option takes KEY=VALUE"),
    (["--model", "cnn", "--model-option", "width=3"], "width"),
    (["--distribute", "multi-worker"], "needs the TF_CONFIG environment variable"),
    (["--dataset", "npz:nowhere.npz"], "nowhere.npz"),
    (["--augment", "--dataset", "npz:SEQUENCE"], "--augment"),
    (["--dataset", "npz:LABELS"], "label"),
    (["--dataset", "npz:EMPTY"], "empty|no samples|0 samples"),
    (["--dataset", "npz:SHAPE"], "shape"),
    (["--model", "CORRUPT"], "corrupt.keras"),
    (["--model", "CORRUPT", "--model-option", "a=1"], "--model-option configures zoo models"),
]


@pytest.mark.parametrize("arguments, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_gets_one_clear_line_and_exit_code_2(arguments, message, cli_runner, tmp_path,
                                                       monkeypatch):
    import re

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    substitutions = {
        "npz:SEQUENCE": _write_npz(tmp_path / "seq.npz", x_train=np.zeros((40, 5, 4), np.float32),
                                   x_test=np.zeros((12, 5, 4), np.float32)),
        "npz:LABELS": _write_npz(tmp_path / "labels.npz", y_train=np.arange(40) % 3 + 7,
                                 class_names=np.array(["a", "b", "c"])),
        "npz:EMPTY": _write_npz(tmp_path / "empty.npz", x_test=np.zeros((0, 6, 6, 1), np.uint8),
                                y_test=np.zeros((0,), np.int64)),
        "npz:SHAPE": _write_npz(tmp_path / "shape.npz", x_test=np.zeros((12, 5, 5, 1), np.uint8)),
    }
    substitutions = {key: f"npz:{path}" for key, path in substitutions.items()}
    substitutions["CORRUPT"] = str(corrupt)
    arguments = [substitutions.get(argument, argument) for argument in arguments]
    result = cli_runner("train", "--epochs", "1", "--output", str(tmp_path / "out"), *arguments)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))


def test_existing_output_is_refused_and_kept(cli_runner, tmp_path):
    output = tmp_path / "taken"
    output.mkdir()
    (output / "manifest.json").write_text('{"stage": "train"}')  # an earlier train run's folder
    (output / "earlier.txt").write_text("earlier work")
    result = cli_runner("train", "--epochs", "1", "--output", str(output))
    assert result.exit_code == 2
    assert "exists and is not empty; pass --force" in result.stderr
    assert (output / "earlier.txt").read_text() == "earlier work"


def test_resume_refuses_a_different_model(cli_runner, tmp_path):
    output = str(tmp_path / "run")
    assert cli_runner("train", "--model", "mlp", "--epochs", "1", "--output", output).exit_code == 0
    result = cli_runner("train", "--model", "cnn", "--output", output, "--resume", "--epochs", "3")
    assert result.exit_code == 2
    assert "--resume continues a run with model='mlp'; received model='cnn'" in result.stderr
    result = cli_runner("train", "--output", output, "--resume", "--epochs", "1")
    assert "has trained 1 epochs; received --epochs 1" in result.stderr
