"""CI gates: ``--fail-if "accuracy_drop>0.5"`` on any recorded metric, for every artifact.

A gate is ``[ARTIFACT:]METRIC OP VALUE`` with OP one of ``> >= < <= == !=``; without ``ARTIFACT:``
it applies to every artifact that records the metric. The metric names are the keys of each
artifact's ``metrics`` in the benchmark JSON (see :data:`METRICS`). ``speedup`` is recorded for
compressed artifacts only (each against the fp32 artifact of its runtime), so
``--fail-if "speedup<1"`` fails a run in which an int8 (fp16, dynamic...) artifact is slower than
its fp32 sibling.

Example:
    >>> gates = parse_gates(["accuracy_drop>0.5", "tflite-int8:p99_ms>2", "speedup<1"])
    >>> broken(gates, report["artifacts"])
    ['tflite-int8: p99_ms = 2.41 > 2 (gate "tflite-int8:p99_ms>2")',
     'onnx-int8: speedup = 0.62 < 1 (gate "speedup<1")']
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from edgekit.errors import OptionError

METRICS = {
    "accuracy": "test accuracy, 0..1",
    "accuracy_drop": "points of test accuracy lost against the reference Keras model",
    "agreement": "top-1 agreement with the Keras model, 0..1",
    "max_abs_diff": "max absolute output difference from the Keras model",
    "mean_abs_diff": "mean absolute output difference from the Keras model",
    "min_ms": "latency min", "mean_ms": "latency mean", "std_ms": "latency std",
    "p50_ms": "latency median", "p90_ms": "latency p90", "p99_ms": "latency p99",
    "max_ms": "latency max", "throughput_per_s": "samples per second",
    "load_ms": "time to load the artifact", "first_inference_ms": "time of the first inference",
    "peak_rss_mb": "peak resident memory of the artifact's process",
    "size_mb": "file size in MB (10^6 bytes)", "bytes": "file size in bytes",
    "errors": "failed requests in a Triton load test",
    "speedup": "a compressed artifact's p50 speed ratio to the fp32 artifact of the same runtime "
               "measured in the same run (fp32 p50 / its p50; below 1: slower)",
}
OPERATORS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
             ">": operator.gt, "<": operator.lt}
_GATE = re.compile(r"^\s*(?:(?P<artifact>[^:<>=!]+):)?\s*(?P<metric>[a-z0-9_]+)\s*"
                   r"(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>[-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Gate:
    """One condition that fails the run when it holds."""

    text: str
    metric: str
    op: str
    value: float
    artifact: str | None = None

    def breaks(self, measured: float) -> bool:
        return OPERATORS[self.op](measured, self.value)


def parse_gate(text: str) -> Gate:
    """``"tflite-int8:p99_ms>2"`` -> Gate; OptionError saying what is accepted otherwise."""
    match = _GATE.match(text)
    if not match:
        raise OptionError(f"--fail-if takes [ARTIFACT:]METRIC OP VALUE; received {text!r}. "
                          'Example: --fail-if "accuracy_drop>0.5" --fail-if "p99_ms>2"')
    metric = match["metric"]
    if metric not in METRICS:
        raise OptionError(f"--fail-if {text!r}: unknown metric {metric!r}; expected one of: "
                          f"{', '.join(METRICS)}")
    try:
        value = float(match["value"])
    except ValueError as error:
        raise OptionError(f"--fail-if {text!r}: {match['value']!r} is not a number") from error
    artifact = match["artifact"].strip() if match["artifact"] else None
    return Gate(text=text.strip(), metric=metric, op=match["op"], value=value, artifact=artifact)


def parse_gates(texts) -> list[Gate]:
    return [parse_gate(text) for text in texts or ()]


def check_artifact_names(gates: list[Gate], names: list[str]) -> None:
    for gate in gates:
        if gate.artifact is not None and gate.artifact not in names:
            raise OptionError(f"--fail-if {gate.text!r} names artifact {gate.artifact!r}, which is "
                              f"not in this run; expected one of: {', '.join(names)}")


def broken(gates: list[Gate], artifacts: list[dict]) -> list[str]:
    """One line per (gate, artifact) that broke, naming both and the measured value."""
    lines = []
    for gate in gates:
        for artifact in artifacts:
            if gate.artifact is not None and artifact["name"] != gate.artifact:
                continue
            measured = (artifact.get("metrics") or {}).get(gate.metric)
            if measured is None:
                continue
            if gate.breaks(float(measured)):
                lines.append(f"{artifact['name']}: {gate.metric} = {_number(measured)} "
                             f"{gate.op} {_number(gate.value)} (gate \"{gate.text}\")")
    return lines


def _number(value: float) -> str:
    return f"{value:.4g}"
