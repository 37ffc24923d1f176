"""``--fail-if`` gates: parsing, and which artifacts break them."""

from __future__ import annotations

import pytest

from edgekit.bench.gates import broken, check_artifact_names, parse_gate, parse_gates
from edgekit.errors import OptionError

ARTIFACTS = [
    {"name": "keras", "metrics": {"accuracy": 0.98, "accuracy_drop": 0.0, "p99_ms": 3.0}},
    {"name": "tflite-int8", "metrics": {"accuracy": 0.97, "accuracy_drop": 1.0, "p99_ms": 0.5}},
    {"name": "onnx-fp32", "metrics": {}},  # a failed artifact records nothing
]


def test_gates_that_hold_break_nothing():
    assert broken(parse_gates(["accuracy_drop>1.5", "p99_ms>5"]), ARTIFACTS) == []


def test_each_broken_gate_names_the_artifact_the_value_and_the_gate():
    lines = broken(parse_gates(["accuracy_drop>0.5", "p99_ms>=3"]), ARTIFACTS)
    assert lines == ['tflite-int8: accuracy_drop = 1 > 0.5 (gate "accuracy_drop>0.5")',
                     'keras: p99_ms = 3 >= 3 (gate "p99_ms>=3")']


def test_a_gate_for_one_artifact_applies_to_that_artifact_only():
    assert broken(parse_gates(["tflite-int8:p99_ms>0.1"]), ARTIFACTS) == [
        'tflite-int8: p99_ms = 0.5 > 0.1 (gate "tflite-int8:p99_ms>0.1")']
    assert broken(parse_gates(["keras:accuracy<0.9"]), ARTIFACTS) == []


def test_gate_parsing_accepts_spaces_and_every_operator():
    gate = parse_gate(" onnx-int8 : p50_ms <= 2e-1 ")
    assert (gate.artifact, gate.metric, gate.op, gate.value) == ("onnx-int8", "p50_ms", "<=", 0.2)
    for op in (">", ">=", "<", "<=", "==", "!="):
        assert parse_gate(f"accuracy{op}0.5").op == op


@pytest.mark.parametrize("text, message", [
    ("accuracy_drop 0.5", "takes \\[ARTIFACT:\\]METRIC OP VALUE; received 'accuracy_drop 0.5'"),
    ("latency>2", "unknown metric 'latency'; expected one of: accuracy"),
    ("p99_ms>two", "takes \\[ARTIFACT:\\]METRIC OP VALUE"),
])
def test_malformed_gates_are_refused_with_what_is_accepted(text, message):
    with pytest.raises(OptionError, match=message):
        parse_gate(text)


def test_a_gate_naming_an_artifact_not_in_the_run_is_refused():
    with pytest.raises(OptionError, match="names artifact 'tflite-fp16', which is not in this run"):
        check_artifact_names(parse_gates(["tflite-fp16:p50_ms>1"]), ["keras", "tflite-int8"])
