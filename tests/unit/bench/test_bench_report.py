"""The JSON schema, the tables and the plots, on a synthetic report (no runtime needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.bench.latency import measurement_record
from edgekit.bench.plots import pareto_front
from edgekit.bench.report import SCHEMA, markdown, metrics, terminal_table, validate, write_outputs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(p50_seconds: float) -> dict:
    rng = np.random.default_rng(0)
    windows = [list(p50_seconds * (1 + 0.01 * rng.standard_normal(50))) for _ in range(2)]
    measurement = measurement_record([p50_seconds] * 3, windows, True, 0.1, 1)
    return {"status": "ok", "threads": 1, "load_ms": 5.0, "first_inference_ms": 1.0,
            "memory": {"peak_rss_mb": 120.0},
            "measurements": [{"batch": 1, "threads": 1, "concurrency": 1,
                              "timed": "interpreter.invoke()", **measurement}]}


def _row(name, fmt, accuracy, p50, size, status="ok"):
    row = {"name": name, "subject": "m", "format": fmt, "runtime": fmt, "path": f"/x/{name}",
           "precision": "fp32", "bytes": size, "sha256": None, "status": status,
           "reason": None if status == "ok" else "cannot load TFLite model: truncated",
           "accuracy": accuracy if status == "ok" else None,
           "accuracy_drop": (0.98 - accuracy) * 100 if status == "ok" else None,
           "fidelity": None if fmt == "keras" or status != "ok" else
           {"agreement": 0.99, "max_abs_diff": 0.01, "mean_abs_diff": 0.001, "samples": 360,
            "reference": "keras"},
           "runs": [_run(p50)] if status == "ok" else [{"status": "failed", "reason": "x"}]}
    row["metrics"] = metrics(row)
    return row


@pytest.fixture
def report():
    from edgekit.manifest import machine, now, versions

    return {"schema": "edgekit.bench", "schema_version": 1, "created": now(), "command": "edgekit bench m",
            "seconds": 3.0, "machine": machine(), "versions": versions(),
            "config": {"batches": [1], "threads": [1], "min_runs": 50, "min_seconds": 1.0},
            "datasets": {"m": {"name": "digits"}},
            "artifacts": [_row("keras", "keras", 0.98, 0.0005, 1_300_000),
                          _row("tflite-fp32", "tflite", 0.98, 0.00005, 400_000),
                          _row("tflite-int8", "tflite", 0.975, 0.00002, 110_000),
                          _row("broken", "tflite", 0, 0, 10, status="failed")],
            "gates": {"checked": [], "broken": []}, "warnings": []}


def test_a_report_validates_against_its_schema_and_a_damaged_one_does_not(report):
    assert validate(report) == []
    damaged = json.loads(json.dumps(report))
    del damaged["machine"]
    damaged["artifacts"][1]["runs"][0]["measurements"][0]["latency_ms"]["p99"] = "fast"
    damaged["artifacts"][0]["status"] = "great"
    problems = validate(damaged)
    assert "$: missing 'machine'" in problems
    assert any("latency_ms.p99: expected number" in problem for problem in problems)
    assert any("status: 'great' not one of" in problem for problem in problems)


def test_metrics_flatten_the_primary_measurement(report):
    figures = report["artifacts"][2]["metrics"]
    assert figures["p50_ms"] == pytest.approx(0.02, rel=0.05)
    assert figures["accuracy_drop"] == pytest.approx(0.5)
    assert figures["size_mb"] == pytest.approx(0.11) and figures["peak_rss_mb"] == 120.0
    assert report["artifacts"][3]["metrics"] == {"bytes": 10, "size_mb": 1e-05}


def test_tables_show_every_artifact_and_the_failed_ones_reason(report):
    table = terminal_table(report)
    assert "tflite-int8" in table and "-0.50 pt" in table
    assert "broken" in table and "failed: cannot load TFLite model: truncated" in table
    text = markdown(report)
    assert "| tflite-fp32 |" in text and "Machine:" in text and "cores" in text
    assert text.count("| keras |") == 2  # main table and per-configuration table


def test_pareto_front_keeps_the_points_nothing_beats():
    assert pareto_front([(1.0, 0.90), (2.0, 0.95), (3.0, 0.90), (0.5, 0.80)]) == [3, 0, 1]


def test_outputs_are_written_json_validates_and_plots_are_pngs(report, tmp_path):
    files = write_outputs(report, tmp_path / "bench")
    written = json.loads(files["json"].read_text())
    assert validate(written) == [] and validate(written, SCHEMA) == []
    plots = {name: path for name, path in files.items() if name.startswith("plot:")}
    assert set(plots) == {"plot:accuracy_vs_latency", "plot:accuracy_vs_size",
                          "plot:latency_distribution"}
    for path in plots.values():
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000
    assert "![accuracy_vs_latency](plots/accuracy_vs_latency.png)" in files["markdown"].read_text()
