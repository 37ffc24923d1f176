"""The measurement statistics and loop, on known timing sequences and a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.bench.latency import TimingConfig, measure, stability_warning, summarize, windows_agree
from edgekit.errors import OptionError


class FakeClock:
    """A clock that advances by the next duration of ``durations`` at each call's end."""

    def __init__(self, durations):
        self.now = 0.0
        self.durations = iter(durations)
        self.calls = 0

    def __call__(self) -> float:
        return self.now

    def call(self) -> None:
        self.calls += 1
        self.now += next(self.durations)


def test_summarize_gives_known_statistics_in_milliseconds():
    seconds = [0.001 * value for value in range(1, 101)]  # 1..100 ms
    summary = summarize(seconds)
    assert summary["count"] == 100
    assert summary["min"] == pytest.approx(1.0) and summary["max"] == pytest.approx(100.0)
    assert summary["mean"] == pytest.approx(50.5)
    assert summary["std"] == pytest.approx(np.std(np.arange(1, 101)))
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p90"] == pytest.approx(90.1)
    assert summary["p99"] == pytest.approx(99.01)


def test_summarize_refuses_an_empty_sequence():
    with pytest.raises(ValueError, match="no timings"):
        summarize([])


def test_windows_agree_within_tolerance_of_their_mean():
    assert windows_agree(1.0, 1.09, 0.10)
    assert not windows_agree(1.0, 1.2, 0.10)


def test_measure_runs_until_min_count_and_min_duration_then_stops_when_two_windows_agree():
    clock = FakeClock([1 / 64] * 1000)  # exact in binary: no rounding at the window's end
    timing = TimingConfig(warmup_runs=3, warmup_seconds=0.0, min_runs=5, min_seconds=0.125,
                          max_windows=5)
    record = measure(clock.call, timing, batch=4, clock=clock)
    assert record["warmup"]["runs"] == 3
    # 0.125 s at 15.625 ms per run: the duration (8 runs), not the count (5), ends each window.
    assert record["stability"] == {"stable": True, "windows": 2,
                                   "window_p50_ms": [pytest.approx(15.625)] * 2,
                                   "tolerance": 0.1, "spread": pytest.approx(0.0)}
    assert record["runs"] == 16
    assert record["latency_ms"]["p50"] == pytest.approx(15.625)
    assert record["throughput_per_s"] == pytest.approx(256.0)
    assert clock.calls == 3 + 16


def test_warmup_timings_stay_out_of_the_statistics():
    clock = FakeClock([1.0, 1.0] + [0.002] * 100)
    timing = TimingConfig(warmup_runs=2, warmup_seconds=0.0, min_runs=10, min_seconds=0.0)
    record = measure(clock.call, timing, clock=clock)
    assert record["warmup"]["mean_ms"] == pytest.approx(1000.0)
    assert record["latency_ms"]["max"] == pytest.approx(2.0)


def test_a_measurement_that_never_stabilises_says_so():
    durations = [0.001 * (2 ** (index // 10)) for index in range(50)]  # doubles every window
    clock = FakeClock(durations)
    timing = TimingConfig(warmup_runs=0, warmup_seconds=0.0, min_runs=10, min_seconds=0.0,
                          max_windows=4)
    record = measure(clock.call, timing, clock=clock)
    assert record["stability"]["stable"] is False
    assert record["stability"]["windows"] == 4
    assert record["runs"] == 40  # every window counts when none agreed
    warning = stability_warning("tflite-int8 batch 1", record)
    assert "never stabilised" in warning and "1.000, 2.000, 4.000, 8.000 ms" in warning


@pytest.mark.parametrize("field, value, message", [
    ("min_runs", 0, "min_runs must be >= 1"),
    ("max_windows", 1, "max_windows must be >= 2"),
    ("stability_tolerance", 1.5, "stability_tolerance must be in"),
    ("min_seconds", -1, "min_seconds must be >= 0"),
])
def test_timing_config_refuses_values_out_of_range(field, value, message):
    with pytest.raises(OptionError, match=message):
        TimingConfig(**{field: value})
