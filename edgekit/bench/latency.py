"""The measurement method, after TFLite's benchmark_model and Triton's perf_analyzer.

One call is timed as it is: warm-up runs (a count and a minimum time) whose timings are kept
apart, then measurement windows, each running until both a minimum count and a minimum duration
are reached. Windows repeat until two consecutive ones agree on p50 within a tolerance (the
stability check); a measurement that never stabilises says so instead of pretending.

Everything here is plain Python and numpy, so the statistics are tested on known sequences.

Example:
    >>> timing = TimingConfig(min_runs=50, min_seconds=1.0)
    >>> measurement = measure(lambda: interpreter.invoke(), timing)
    >>> measurement["latency_ms"]["p50"], measurement["stability"]["stable"]
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from edgekit.errors import OptionError

PERCENTILES = (50, 90, 99)
# Raw timings kept per measurement for the distribution plots: enough for a smooth violin,
# small enough that a JSON with dozens of measurements stays a few hundred kilobytes.
KEPT_SAMPLES = 2000


@dataclass(frozen=True)
class TimingConfig:
    """How long and how often to run; defaults follow benchmark_model (50 runs, 1 s).

    Attributes:
        warmup_runs: untimed runs before measuring (at least this many ...).
        warmup_seconds: ... and for at least this long.
        min_runs: runs per measurement window (at least this many ...).
        min_seconds: ... and for at least this long.
        max_windows: windows tried before giving up on stability.
        stability_tolerance: consecutive windows' p50 must differ by at most this share.
    """

    warmup_runs: int = 10
    warmup_seconds: float = 0.5
    min_runs: int = 50
    min_seconds: float = 1.0
    max_windows: int = 5
    stability_tolerance: float = 0.10

    def __post_init__(self):
        for name in ("warmup_runs", "min_runs"):
            if int(getattr(self, name)) < (0 if name == "warmup_runs" else 1):
                raise OptionError(f"{name} must be >= {0 if name == 'warmup_runs' else 1}; "
                                  f"received {getattr(self, name)}")
        for name in ("warmup_seconds", "min_seconds"):
            if float(getattr(self, name)) < 0:
                raise OptionError(f"{name} must be >= 0; received {getattr(self, name)}")
        if int(self.max_windows) < 2:
            raise OptionError(f"max_windows must be >= 2 (stability compares two windows); "
                              f"received {self.max_windows}")
        if not 0 < float(self.stability_tolerance) < 1:
            raise OptionError(f"stability_tolerance must be in (0, 1), e.g. 0.1 for 10%; "
                              f"received {self.stability_tolerance}")

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(seconds) -> dict:
    """Latency statistics in milliseconds: min, mean, std, p50, p90, p99, max (and the count).

    Percentiles use numpy's linear interpolation, as perf_analyzer's sorted-index method
    converges to for large counts; std is the population standard deviation (ddof=0), as
    benchmark_model reports it.
    """
    values = np.asarray(seconds, dtype=np.float64) * 1e3
    if values.size == 0:
        raise ValueError("no timings to summarize")
    summary = {"count": int(values.size), "min": float(values.min()), "mean": float(values.mean()),
               "std": float(values.std())}
    for percentile in PERCENTILES:
        summary[f"p{percentile}"] = float(np.percentile(values, percentile))
    summary["max"] = float(values.max())
    return summary


def windows_agree(first_p50: float, second_p50: float, tolerance: float) -> bool:
    """True when two windows' p50 differ by at most ``tolerance`` of their mean."""
    mean = (first_p50 + second_p50) / 2
    return mean == 0 or abs(first_p50 - second_p50) / mean <= tolerance


def run_window(call: Callable[[], object], min_runs: int, min_seconds: float,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Time ``call`` until both ``min_runs`` runs and ``min_seconds`` seconds are reached."""
    timings = []
    started = clock()
    while len(timings) < min_runs or clock() - started < min_seconds:
        before = clock()
        call()
        timings.append(clock() - before)
    return timings


def measure(call: Callable[[], object], timing: TimingConfig, batch: int = 1,
            clock: Callable[[], float] = time.perf_counter) -> dict:
    """Warm up, then measure windows until two consecutive ones agree (or ``max_windows``).

    Args:
        call: one inference on a prepared batch (its inputs already set).
        timing: counts, durations and the stability tolerance.
        batch: samples per call, for throughput.
        clock: seconds as a float; tests pass a fake one.

    Returns:
        ``{"warmup", "runs", "seconds", "latency_ms", "throughput_per_s", "stability",
        "samples_ms"}``; the statistics cover the two windows that agreed (every window when
        none did).
    """
    warmup = run_window(call, timing.warmup_runs, timing.warmup_seconds, clock) \
        if timing.warmup_runs or timing.warmup_seconds else []
    windows: list[list[float]] = []
    stable = False
    while len(windows) < timing.max_windows:
        windows.append(run_window(call, timing.min_runs, timing.min_seconds, clock))
        if len(windows) >= 2 and windows_agree(float(np.median(windows[-2])),
                                               float(np.median(windows[-1])),
                                               timing.stability_tolerance):
            stable = True
            break
    return measurement_record(warmup, windows, stable, timing.stability_tolerance, batch)


def measurement_record(warmup: list[float], windows: list[list[float]], stable: bool,
                       tolerance: float, batch: int) -> dict:
    """The JSON record of one measurement, from its raw timings in seconds."""
    used = [*windows[-2], *windows[-1]] if stable else [t for window in windows for t in window]
    latency = summarize(used)
    total = float(np.sum(used))
    window_p50 = [float(np.median(window)) * 1e3 for window in windows]
    spread = (max(window_p50) - min(window_p50)) / (sum(window_p50) / len(window_p50)) \
        if len(window_p50) > 1 and sum(window_p50) else 0.0
    kept = np.asarray(used, dtype=np.float64) * 1e3
    if kept.size > KEPT_SAMPLES:
        kept = kept[np.linspace(0, kept.size - 1, KEPT_SAMPLES).astype(int)]
    return {
        "warmup": {"runs": len(warmup), "seconds": float(np.sum(warmup)) if warmup else 0.0,
                   "mean_ms": float(np.mean(warmup)) * 1e3 if warmup else None},
        "runs": int(len(used)),
        "seconds": total,
        "latency_ms": latency,
        "throughput_per_s": float(batch * len(used) / total) if total > 0 else None,
        "stability": {"stable": bool(stable), "windows": len(windows),
                      "window_p50_ms": window_p50, "tolerance": float(tolerance),
                      "spread": float(spread)},
        "samples_ms": [round(float(value), 6) for value in kept],
    }


def stability_warning(name: str, measurement: dict) -> str | None:
    """One line when a measurement never stabilised, else None."""
    stability = measurement["stability"]
    if stability["stable"]:
        return None
    p50s = ", ".join(f"{value:.3f}" for value in stability["window_p50_ms"])
    return (f"{name}: latency never stabilised: p50 of {stability['windows']} windows "
            f"{p50s} ms differ by more than {stability['tolerance'] * 100:.0f}%; the machine may "
            "be busy: rerun on a quiet machine, pin CPUs (--pin-cpus) or raise --min-seconds")
