"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import edgekit  # noqa: F401  (selects Keras 2 before any test imports TensorFlow)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_runner():
    """Invoke ``edgekit`` in-process; returns click's Result (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from edgekit.cli.main import cli

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def edgekit_executable() -> str:
    """The installed console script next to this interpreter."""
    candidate = Path(sys.executable).parent / "edgekit"
    found = str(candidate) if candidate.exists() else shutil.which("edgekit")
    if not found:
        pytest.fail("the edgekit console script is not installed; run pip install -e .")
    return found


@pytest.fixture
def edgekit_command() -> str:
    """Path of the installed ``edgekit`` console script."""
    return edgekit_executable()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def interruptible():
    """``preexec_fn`` for a child a test stops with SIGINT: Ctrl-C's default disposition, even
    when the suite runs with SIGINT ignored (started by ``nohup`` or with ``&`` from a script,
    whose children inherit the ignore: their Ctrl-C handler never runs)."""
    return _default_sigint


@pytest.fixture
def run_edgekit(tmp_path):
    """Run the installed ``edgekit`` console script in a subprocess, in ``tmp_path``."""

    def run(*args: str, timeout: float = 300, cwd: Path | None = None, env: dict | None = None):
        env = {**{k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}, **(env or {})}
        return subprocess.run([edgekit_executable(), *args], cwd=cwd or tmp_path, env=env,
                              capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def sensitive_model(tmp_path_factory):
    """A .keras file whose layer ``wide_range`` ruins full int8 and nothing else does (the float
    layers of compress / export and the optimizer's fallback are tested on it)."""
    from edgekit._compat import keras
    from edgekit.data import load_dataset

    tf_keras = keras()
    tf_keras.utils.set_random_seed(0)
    dataset = load_dataset("digits", seed=0)
    inputs = tf_keras.Input((8, 8, 1), name="input")
    x = tf_keras.layers.Flatten(name="flatten")(inputs)
    x = tf_keras.layers.Dense(32, activation="relu", name="features")(x)
    x = tf_keras.layers.Dense(32, activation="relu", name="wide_range")(x)
    outputs = tf_keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = tf_keras.Model(inputs, outputs, name="sensitive")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(dataset.x_train * 0.0625, dataset.y_train, epochs=15, batch_size=32, verbose=0)
    kernel, bias = model.get_layer("features").get_weights()
    kernel[:, 0], bias[0] = 0.0, -1.0  # unit 0 of features is dead: always 0 after its ReLU
    model.get_layer("features").set_weights([kernel, bias])
    kernel, bias = model.get_layer("wide_range").get_weights()
    kernel[0, :] = 1000.0  # harmless in float (it multiplies 0), fatal to int8 weight scales
    model.get_layer("wide_range").set_weights([kernel, bias])
    path = tmp_path_factory.mktemp("sensitive") / "sensitive.keras"
    model.save(path)
    return path
