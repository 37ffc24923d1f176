"""A fake lab for the search: figures by candidate name, no TensorFlow, no processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.optimize.artifacts import Artifact
from edgekit.optimize.latency import Latency


class FakeLab:
    """Builds nothing: every candidate's validation accuracy, size and p50 come from tables.

    A name missing from ``accuracy`` scores the reference accuracy (no drop); ``calls`` lists
    what the search asked for, in order.
    """

    def __init__(self, accuracy=None, p50=None, gzip=None, reference=0.9, fallback=None):
        self.accuracy = accuracy or {}
        self.p50 = p50 or {}
        self.gzip = gzip or {}
        self.reference = reference
        self.fallback_accuracy = fallback  # {count of layers in float: accuracy}
        self.calls = []

    validation_samples = 100

    def reference_accuracy(self):
        return self.reference

    def score(self, candidate, artifact):
        self.calls.append(("score", candidate.name))
        return self.accuracy.get(candidate.name, self.reference)

    def _artifact(self, candidate, accuracy=None):
        return Artifact(path=Path(f"/fake/{candidate.name}"),
                        accuracy_val=self.accuracy.get(candidate.name, self.reference)
                        if accuracy is None else accuracy,
                        size_bytes=2 * self.gzip.get(candidate.name, 1000),
                        gzip_bytes=self.gzip.get(candidate.name, 1000))

    def post_training(self, candidate):
        self.calls.append(("post-training", candidate.name))
        artifact = self._artifact(candidate)
        artifact.accuracy_val = None  # scored by score(), as the real lab does
        return artifact

    def fine_tuning(self, candidate):
        self.calls.append(("fine-tuning", candidate.name))
        return self._artifact(candidate)

    def fallback(self, candidate, fits, keep_going, kept_layers):
        self.calls.append(("fallback", candidate.name))
        from edgekit.optimize.sensitivity import fewest_layers

        scores = self.fallback_accuracy or {}
        layers = [f"layer{index}" for index in range(1, 9)]
        search = fewest_layers(layers, lambda nodes: scores.get(len(nodes), 0.1), fits,
                               keep_going)
        best = search.best
        record = {"float_layers": list(best.nodes) if best else [], "stopped": search.stopped,
                  "ranking": []}
        if best is None:
            return None, record
        artifact = self._artifact(candidate, best.accuracy)
        artifact.details["float_layers"] = list(best.nodes)
        return artifact, record

    def latency(self, paths):
        self.calls.append(("latency", tuple(paths)))
        return {name: Latency(self.p50.get(name, 1.0), 2 * self.p50.get(name, 1.0))
                for name in paths}


@pytest.fixture
def fake_lab():
    return FakeLab
