"""The benchmark_model parser, on output recorded in the formats benchmark_model prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.bench.android import benchmark_arguments, parse_benchmark_output
from edgekit.bench.config import BenchConfig
from edgekit.errors import DataError, OptionError

DATA = Path(__file__).parent / "data"


def _read(name: str) -> str:
    return (DATA / name).read_text()


def test_recent_output_with_percentiles_and_periodic_memory_is_parsed():
    parsed = parse_benchmark_output(_read("benchmark_model_cli_2_16.txt"))
    latency = parsed["measurement"]["latency_ms"]
    assert latency["count"] == 8342 and parsed["measurement"]["runs"] == 8342
    assert latency["mean"] == pytest.approx(0.119626)
    assert latency["p50"] == pytest.approx(0.116) and "p50_is_mean" not in latency
    assert (latency["min"], latency["max"], latency["std"]) == pytest.approx((0.108, 0.934, 0.018))
    assert latency["p95"] == pytest.approx(0.134) and latency["p99"] is None
    assert parsed["load_ms"] == pytest.approx(3.412)
    assert parsed["first_inference_ms"] == pytest.approx(0.402)
    assert parsed["measurement"]["warmup"] == {"runs": 4117, "seconds": None,
                                               "mean_ms": pytest.approx(0.121307)}
    assert parsed["memory"]["peak_rss_mb"] == pytest.approx(7.85547)
    assert parsed["memory"]["overall_mb"] == pytest.approx(3.01953)


def test_older_output_without_info_prefix_or_median_uses_the_mean_and_says_so():
    parsed = parse_benchmark_output(_read("benchmark_model_cli_2_4.txt"))
    latency = parsed["measurement"]["latency_ms"]
    assert latency["count"] == 2461
    assert latency["p50"] == pytest.approx(0.405822) and latency["p50_is_mean"] is True
    assert parsed["memory"]["peak_rss_mb"] == pytest.approx(9.50781)
    assert parsed["load_ms"] == pytest.approx(6.183)


def test_logcat_output_of_the_benchmark_app_is_parsed():
    parsed = parse_benchmark_output(_read("benchmark_model_logcat.txt"))
    assert parsed["measurement"]["latency_ms"]["p50"] == pytest.approx(0.290)
    assert parsed["measurement"]["throughput_per_s"] == pytest.approx(1e3 / 0.2979)


def test_output_of_a_failed_run_is_an_error_quoting_its_last_lines():
    with pytest.raises(DataError, match="no timing summary; its last lines: .*Benchmarking failed"):
        parse_benchmark_output(_read("benchmark_model_failed.txt"))


def test_benchmark_arguments_carry_the_runs_options():
    config = BenchConfig(target="adb:emulator-5554", benchmark_binary="bm", min_runs=100,
                         xnnpack=False)
    arguments = benchmark_arguments(config, "/data/local/tmp/edgekit/m.tflite", 2)
    assert "--num_threads=2" in arguments and "--num_runs=100" in arguments
    assert "--use_xnnpack=false" in arguments


def test_adb_target_without_benchmark_binary_says_how_to_build_it():
    with pytest.raises(OptionError, match="--target adb needs --benchmark-binary"):
        BenchConfig(target="adb")
