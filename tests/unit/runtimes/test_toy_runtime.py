"""A runtime of your own plugs in as one module plus one registration, and ``edgekit bench`` runs it.

The test writes the module a user would write (a linear classifier kept in an ``.npz`` file with
the suffix ``.toylinear``, run with numpy, with one option of its own), names it in
``EDGEKIT_PLUGINS`` and runs the installed ``edgekit bench`` on it: the parent finds the runtime
by the file's suffix, its option becomes a flag, each worker process loads the plug-in again and
measures it.
"""

from __future__ import annotations

import json

import numpy as np

from edgekit.bench.report import validate

TOY_RUNTIME = '''
"""A toy runtime: a linear classifier (weights, bias) kept in an .npz file named *.toylinear."""

from __future__ import annotations

import numpy as np

from edgekit.options import Option
from edgekit.runtimes import RUNTIMES
from edgekit.runtimes.base import NUM_THREADS, Runtime

TEMPERATURE = Option("toy_temperature", float, 1.0, "softmax temperature of the toy runtime",
                     minimum=0.01)


class ToyLinear(Runtime):
    name = "toylinear"
    format = "toylinear"
    suffixes = (".toylinear",)
    options = (NUM_THREADS, TEMPERATURE)
    libraries = ("numpy",)

    def __init__(self, weights, bias, sample_shape, temperature):
        self.weights, self.bias = weights.astype(np.float32), bias.astype(np.float32)
        self.sample_shape, self.temperature = tuple(int(s) for s in sample_shape), temperature

    @classmethod
    def load(cls, path, num_threads=None, toy_temperature=1.0):
        with open(path, "rb") as handle, np.load(handle) as data:
            return cls(data["weights"], data["bias"], data["sample_shape"], toy_temperature)

    def run(self, x, batch_size=256):
        logits = np.asarray(x, np.float32).reshape(len(x), -1) @ self.weights + self.bias
        logits = logits / self.temperature
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    def describe(self):
        return {"runtime": self.name, "toy_temperature": self.temperature,
                "input": {"name": "x", "shape": [-1, *self.sample_shape], "dtype": "float32",
                          "quantization": None},
                "output": {"name": "probabilities", "shape": [-1, len(self.bias)],
                           "dtype": "float32", "quantization": None}}


RUNTIMES.register(ToyLinear.name)(ToyLinear)
'''
QUICK = ["--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "5", "--min-seconds", "0.01"]


def _toy_model(path):
    """Least squares on one-hot digits labels, from the raw 0..16 training pixels."""
    import edgekit

    digits = edgekit.load_dataset("digits")
    x = digits.x_train.reshape(len(digits.x_train), -1).astype(np.float64)
    x1 = np.hstack([x, np.ones((len(x), 1))])
    targets = np.eye(digits.num_classes)[digits.y_train]
    solution = np.linalg.solve(x1.T @ x1 + 1e-1 * np.eye(x1.shape[1]), x1.T @ targets)
    with open(path, "wb") as handle:  # np.savez on a path would add .npz to the name
        np.savez(handle, weights=solution[:-1], bias=solution[-1],
                 sample_shape=np.array(digits.sample_shape))
    return path


def test_toy_runtime_is_one_module_and_one_registration_that_edgekit_bench_runs(tmp_path,
                                                                                run_edgekit):
    plugin = tmp_path / "toy_runtime.py"
    plugin.write_text(TOY_RUNTIME)
    model = _toy_model(tmp_path / "digits.toylinear")
    output = tmp_path / "bench"
    args = ["bench", str(model), "--dataset", "digits", "--preprocess", "none", *QUICK,
            "--output", str(output)]

    unknown = run_edgekit(*args)  # without the plug-in, nothing runs .toylinear files
    assert unknown.returncode == 2, unknown.stderr
    assert "is not an artifact edgekit can benchmark" in unknown.stderr
    assert "EDGEKIT_PLUGINS" in unknown.stderr

    plugins = {"EDGEKIT_PLUGINS": str(plugin)}
    refused = run_edgekit(*args, "--toy-temperature", "0", env=plugins)
    assert refused.returncode == 2  # its declared option is checked before anything runs
    assert "--toy-temperature" in refused.stderr and "received 0" in refused.stderr
    assert not output.exists()

    result = run_edgekit(*args, "--toy-temperature", "2", env=plugins)
    assert result.returncode == 0, result.stderr
    assert "digits.toylinear" in result.stdout
    report = json.loads((output / "bench.json").read_text())
    assert validate(report) == []
    (row,) = report["artifacts"]
    assert (row["format"], row["runtime"], row["status"]) == ("toylinear", "toylinear", "ok")
    assert row["accuracy"] > 0.85  # a linear model of the digits, run by the worker
    (run,) = row["runs"]
    assert run["options"] == {"num_threads": 1, "toy_temperature": 2.0}
    assert run["describe"]["toy_temperature"] == 2.0
    assert run["versions"] == {"numpy": np.__version__}
    assert report["versions"]["numpy"] == np.__version__
    assert run["measurements"][0]["timed"] == "runtime.run(batch)"
    assert run["measurements"][0]["latency_ms"]["p50"] > 0
