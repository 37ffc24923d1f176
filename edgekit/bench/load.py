"""Load at a concurrency level (perf_analyzer's method): C clients sending back to back.

Each client has its own connection and sends its next request as soon as the last one answers.
Windows and the stability check are the same as for a single caller; throughput is samples
answered per second of wall time; errors are counted, not raised. When the runtime can report
server-side statistics (Triton), the queue and compute times of the window are added.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from edgekit.bench.latency import TimingConfig, measurement_record, windows_agree


def measure_concurrent(spec: dict, options, batch: np.ndarray, concurrency: int,
                       timing: TimingConfig) -> tuple[dict, str]:
    """Measure ``concurrency`` clients, each with its own runtime opened from ``spec``."""
    from edgekit.bench.engines import open_runtime, prepared_call

    runtimes = [open_runtime(spec["runtime"], spec["path"], options) for _ in range(concurrency)]
    calls = [prepared_call(runtime, batch)[0] for runtime in runtimes]
    before = _statistics(runtimes[0])
    for call in calls:  # warm-up, every connection
        for _ in range(max(1, timing.warmup_runs // concurrency)):
            call()
    windows, walls, errors = [], [], 0
    stable = False
    while len(windows) < timing.max_windows:
        latencies, wall, failed = _window(calls, timing)
        windows.append(latencies)
        walls.append(wall)
        errors += failed
        if len(windows) >= 2 and windows_agree(float(np.median(windows[-2])),
                                               float(np.median(windows[-1])),
                                               timing.stability_tolerance):
            stable = True
            break
    record = measurement_record([], windows, stable, timing.stability_tolerance, len(batch))
    used_walls = walls[-2:] if stable else walls
    record["throughput_per_s"] = float(len(batch) * record["runs"] / sum(used_walls))
    record["errors"] = int(errors)
    after = _statistics(runtimes[0])
    if before is not None and after is not None:
        record["server"] = server_delta(before, after)
    for runtime in runtimes:
        getattr(runtime, "close", lambda: None)()
    return record, f"{concurrency} concurrent clients, one request each at a time"


def _window(calls, timing: TimingConfig) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    failures = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def client(call):
        while not stop.is_set():
            started = time.perf_counter()
            try:
                call()
            except Exception:  # noqa: BLE001  (counted: a load test reports errors, it goes on)
                with lock:
                    failures[0] += 1
                continue
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client, args=(call,), daemon=True) for call in calls]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    while len(latencies) < timing.min_runs or time.perf_counter() - started < timing.min_seconds:
        time.sleep(0.005)
    stop.set()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started, failures[0]


def _statistics(runtime) -> dict | None:
    if not hasattr(runtime, "statistics"):
        return None
    try:
        return runtime.statistics()
    except Exception:  # noqa: BLE001  (statistics are a bonus; the load test stands without them)
        return None


def server_delta(before: dict, after: dict) -> dict:
    """Per-request server times (ms) between two cumulative Triton statistics snapshots."""
    def totals(stats: dict, key: str) -> tuple[int, int]:
        entry = (stats.get("inference_stats") or {}).get(key) or {}
        return int(entry.get("count", 0) or 0), int(entry.get("ns", 0) or 0)

    result = {}
    for key in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
        count = totals(after, key)[0] - totals(before, key)[0]
        nanoseconds = totals(after, key)[1] - totals(before, key)[1]
        result[f"{key}_ms"] = nanoseconds / count / 1e6 if count > 0 else None
    result["requests"] = totals(after, "success")[0] - totals(before, "success")[0]
    result["executions"] = int(after.get("execution_count", 0) or 0) - \
        int(before.get("execution_count", 0) or 0)
    return result
