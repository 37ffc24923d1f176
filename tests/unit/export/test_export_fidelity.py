"""Fidelity measurement and the thresholds each precision is held to."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.export import fidelity
from edgekit.export.config import ExportConfig


def test_identical_outputs_agree_fully_with_zero_difference():
    outputs = np.random.default_rng(0).random((50, 10), dtype=np.float32)
    measured = fidelity.measure(outputs, outputs.copy())
    assert measured == {"samples": 50, "top1_agreement": 1.0, "max_abs_diff": 0.0,
                        "mean_abs_diff": 0.0}


def test_one_flipped_sample_in_a_hundred_is_99_percent_agreement():
    reference = np.tile(np.array([[0.9, 0.1]], np.float32), (100, 1))
    changed = reference.copy()
    changed[7] = [0.2, 0.8]
    measured = fidelity.measure(reference, changed)
    assert measured["top1_agreement"] == pytest.approx(0.99)
    assert measured["max_abs_diff"] == pytest.approx(0.7)
    assert measured["mean_abs_diff"] == pytest.approx(1.4 / 200)


@pytest.mark.parametrize("precision, agreement, diff, passes", [
    ("fp32", 1.0, 5e-5, True),
    ("fp32", 1.0, 2e-4, False),         # max abs diff above 1e-4
    ("fp32", 0.998, 0.0, False),        # agreement below 99.9%
    ("fp16", 0.996, 0.05, True),        # fp16 has no max-diff threshold
    ("fp16", 0.99, 0.0, False),
    ("int8", 0.981, 0.2, True),
    ("dynamic", 0.97, 0.0, False),      # any quantized precision is held to int8's 98%
    ("int16x8", 0.99, 0.0, True),
])
def test_thresholds_by_precision(precision, agreement, diff, passes):
    measured = {"samples": 1000, "top1_agreement": agreement, "max_abs_diff": diff,
                "mean_abs_diff": diff / 10}
    failures = fidelity.judge(measured, fidelity.thresholds_for(precision, ExportConfig()))
    assert (not failures) is passes, failures


def test_thresholds_can_be_overridden():
    config = ExportConfig(int8_min_agreement=0.9, fp32_max_abs_diff=1e-3)
    measured = {"samples": 10, "top1_agreement": 0.95, "max_abs_diff": 5e-4, "mean_abs_diff": 0}
    assert not fidelity.judge(measured, fidelity.thresholds_for("int8", config))
    assert fidelity.judge(measured, fidelity.thresholds_for("fp32", config)) == [
        "top-1 agreement 95.00% < 99.90%"]


def test_table_shows_one_row_per_artifact_and_the_failure():
    reference = np.eye(4, dtype=np.float32)
    rows = [{"name": "onnx-fp32", "file": "model_fp32.onnx", "bytes": 2048,
             "fidelity": fidelity.check(reference, reference + 1e-3, "fp32", ExportConfig())},
            {"name": "onnx-fp16", "format": "onnx", "status": "skipped", "reason": "QAT model"}]
    table = fidelity.format_table(rows).splitlines()
    assert table[0].split()[:2] == ["artifact", "file"]
    assert "onnx-fp32" in table[2] and "2.0 KiB" in table[2] and "100.00%" in table[2]
    assert "FAILED: max abs diff 1.00e-03 > 1e-04" in table[2]
    assert "skipped: QAT model" in table[3]
