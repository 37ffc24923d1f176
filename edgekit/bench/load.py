"""Load at a concurrency level (perf_analyzer's method): C clients sending back to back.

Each client has its own connection and sends its next request as soon as the last one answers.
Warm-up, measurement windows and the stability check are those of a single caller
(:mod:`edgekit.bench.latency`); throughput is samples answered per second of wall time; errors
and wrong answers (top-1 differs, or an output off by more than 1e-5 from the first answer) are
counted, not raised. Triton's statistics API is read before and after every window, so the
record carries the server's own queue and compute times and its mean batch size over exactly the
measured windows.

Every loop is bounded: a window ends when it has ``min_runs`` answers and ``min_seconds``
seconds, or :data:`WINDOW_GRACE_SECONDS` after ``min_seconds`` whatever it has, or after
:data:`MAX_ERRORS_PER_WINDOW` errors; each request has the client's own timeout. A window with
no answer at all fails the artifact with the server's first error.

A served model's load test runs in a worker process of its own (:mod:`edgekit.bench.load_worker`);
``edgekit bench --compare-batching`` measures a model beside its ``<model>-nobatch`` copy
(:func:`edgekit.formats.triton.add_unbatched_variant`).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgekit.bench.latency import TimingConfig, measurement_record, windows_agree
from edgekit.errors import ServeError
from edgekit.runtimes import Runtime

WINDOW_GRACE_SECONDS = 30.0
MAX_ERRORS_PER_WINDOW = 200
ANSWER_TOLERANCE = 1e-5
SERVER_TIMES = ("queue", "compute_input", "compute_infer", "compute_output")


@dataclass
class Window:
    """What one window (or the warm-up) saw: successful latencies (s), wall time, failures."""

    latencies: list
    wall: float
    errors: int
    wrong_answers: int
    first_error: str | None


def measure_concurrent(open_runtime: Callable[[], Runtime], batch: np.ndarray, concurrency: int,
                       timing: TimingConfig, expected: np.ndarray | None = None) -> tuple[dict, str]:
    """Measure ``concurrency`` clients, each with its own connection from ``open_runtime()``.

    Args:
        open_runtime: opens one more connection to the served model (a loaded runtime).
        batch: the samples each request sends.
        concurrency: clients sending back to back.
        timing: warm-up, window and stability settings.
        expected: the right answer for ``batch``; answers that differ count as wrong.

    Returns:
        The measurement record (see :func:`edgekit.bench.latency.measurement_record`) with
        ``throughput_per_s`` over wall time, ``errors``, ``wrong_answers``, ``first_error`` and,
        when the server reports statistics, ``server``; and what was timed.

    Raises:
        ServeError: when no request of a window (or of the warm-up) succeeded.
    """
    def open_client():
        runtime = open_runtime()
        return runtime.prepared_call(batch)[0], runtime.close

    observer = open_runtime()  # statistics, main thread
    check = _answer_check(expected)
    try:
        with ClientThreads(open_client, concurrency) as clients:
            warmup = _window(clients, timing.warmup_runs, timing.warmup_seconds, check) \
                if timing.warmup_runs or timing.warmup_seconds else None
            if warmup is not None and not warmup.latencies and warmup.errors:
                _raise_all_failed("the warm-up", concurrency, warmup)
            snapshots = [_statistics(observer)]
            windows: list[Window] = []
            stable = False
            while len(windows) < timing.max_windows:
                window = _window(clients, timing.min_runs, timing.min_seconds, check)
                snapshots.append(_settled_statistics(observer, snapshots[-1],
                                                     len(window.latencies)))
                if not window.latencies:
                    _raise_all_failed(f"window {len(windows) + 1}", concurrency, window)
                windows.append(window)
                if len(windows) >= 2 and windows_agree(float(np.median(windows[-2].latencies)),
                                                       float(np.median(windows[-1].latencies)),
                                                       timing.stability_tolerance):
                    stable = True
                    break
    finally:
        observer.close()
    record = measurement_record([], [window.latencies for window in windows], stable,
                                timing.stability_tolerance, len(batch))
    used = windows[-2:] if stable else windows
    record["throughput_per_s"] = float(len(batch) * sum(len(w.latencies) for w in used)
                                       / sum(w.wall for w in used))
    if warmup is not None:
        record["warmup"] = {"runs": len(warmup.latencies), "seconds": warmup.wall,
                            "mean_ms": float(np.mean(warmup.latencies)) * 1e3
                            if warmup.latencies else None, "errors": warmup.errors}
    record["errors"] = int(sum(window.errors for window in windows))
    record["wrong_answers"] = int(sum(window.wrong_answers for window in windows))
    record["first_error"] = next((w.first_error for w in windows if w.first_error), None)
    record["window_seconds"] = [round(window.wall, 4) for window in windows]
    first = len(snapshots) - 1 - len(used)
    if all(snapshot is not None for snapshot in snapshots):
        record["server"] = server_delta(snapshots[first], snapshots[-1])
        record["server"]["windows"] = [
            {key: value for key, value in server_delta(before, after).items()
             if key in ("queue_ms", "compute_infer_ms", "requests", "mean_batch")}
            for before, after in zip(snapshots[:-1], snapshots[1:])]
    return record, (f"{concurrency} concurrent client(s), one request each at a time, "
                    "round trip")


class ClientThreads:
    """One thread per client, each owning its connection from opening to closing.

    tritonclient.http's client lives on the gevent hub of the thread that made it ("cannot
    switch to a different thread" from any other), so a connection is opened, used by every
    window, and closed in the same thread; windows hand the threads a job instead.

    Args:
        open_client: called in each thread; returns ``(call, close)``.
        count: the number of clients.
    """

    OPEN_TIMEOUT_SECONDS = 60.0

    def __init__(self, open_client, count: int):
        self._jobs = [queue.Queue() for _ in range(count)]
        self._done: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._serve, args=(open_client, jobs), daemon=True)
                         for jobs in self._jobs]
        for thread in self._threads:
            thread.start()
        failures = [self._done.get(timeout=self.OPEN_TIMEOUT_SECONDS) for _ in self._threads]
        failures = [failure for failure in failures if failure is not None]
        if failures:
            self.close()
            raise failures[0]

    def _serve(self, open_client, jobs: queue.Queue) -> None:
        try:
            call, close = open_client()
        except BaseException as error:  # noqa: BLE001  (raised in the main thread)
            self._done.put(error)
            return
        self._done.put(None)
        try:
            while (job := jobs.get()) is not None:
                try:
                    job(call)
                finally:
                    self._done.put(None)
        finally:
            close()

    def start(self, job) -> None:
        """Run ``job(call)`` in every client thread (returns at once)."""
        for jobs in self._jobs:
            jobs.put(job)

    def wait(self) -> None:
        """Until every thread finished the job it was given (each request has its timeout)."""
        for _ in self._jobs:
            self._done.get()

    def close(self) -> None:
        for jobs, thread in zip(self._jobs, self._threads):
            if thread.is_alive():
                jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=self.OPEN_TIMEOUT_SECONDS)

    def __enter__(self) -> "ClientThreads":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _answer_check(expected: np.ndarray | None):
    if expected is None:
        return None
    expected = np.asarray(expected, dtype=np.float32)
    labels = expected.reshape(len(expected), -1).argmax(1) if expected.ndim > 1 else None

    def check(answer) -> bool:
        answer = np.asarray(answer, dtype=np.float32)
        if answer.shape != expected.shape:
            return False
        if labels is not None and not np.array_equal(answer.reshape(len(answer), -1).argmax(1),
                                                     labels):
            return False
        return float(np.abs(answer - expected).max(initial=0.0)) <= ANSWER_TOLERANCE

    return check


def _window(clients: ClientThreads, min_runs: int, min_seconds: float, check=None) -> Window:
    """Run every client until ``min_runs`` answers and ``min_seconds`` (bounded; see module)."""
    latencies: list[float] = []
    counts = {"errors": 0, "wrong": 0}
    first_error: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(call):
        while not stop.is_set():
            started = time.perf_counter()
            try:
                answer = call()
            except Exception as error:  # noqa: BLE001  (counted: a load test reports errors, it goes on)
                with lock:
                    counts["errors"] += 1
                    if not first_error:
                        first_error.append(str(error) or type(error).__name__)
                    if counts["errors"] >= MAX_ERRORS_PER_WINDOW:
                        stop.set()
                continue
            elapsed = time.perf_counter() - started
            right = check is None or check(answer)
            with lock:
                latencies.append(elapsed)
                if not right:
                    counts["wrong"] += 1

    started = time.perf_counter()
    deadline = started + min_seconds + WINDOW_GRACE_SECONDS
    clients.start(client)
    while not stop.is_set():
        now = time.perf_counter()
        if (len(latencies) >= min_runs and now - started >= min_seconds) or now > deadline:
            break
        time.sleep(0.002)
    stop.set()
    clients.wait()
    return Window(latencies=list(latencies), wall=time.perf_counter() - started,
                  errors=counts["errors"], wrong_answers=counts["wrong"],
                  first_error=first_error[0] if first_error else None)


def _raise_all_failed(where: str, concurrency: int, window: Window):
    raise ServeError(f"every request of {where} at concurrency {concurrency} failed "
                     f"({window.errors} error(s) in {window.wall:.1f} s); the first: "
                     f"{window.first_error}")


def _settled_statistics(runtime, before: dict | None, answered: int, wait: float = 1.0):
    """Statistics once the server has counted every answer of the window.

    Triton sends a response before it adds that request to its statistics, so a snapshot taken
    the moment the last answer arrives can miss it; re-read for up to ``wait`` seconds.
    """
    deadline = time.monotonic() + wait
    while True:
        stats = _statistics(runtime)
        if stats is None or before is None or time.monotonic() >= deadline:
            return stats
        counted = server_delta(before, stats).get("requests", 0)
        if counted >= answered:
            return stats
        time.sleep(0.02)


def _statistics(runtime) -> dict | None:
    if not hasattr(runtime, "statistics"):
        return None
    try:
        return runtime.statistics()
    except Exception:  # noqa: BLE001  (statistics are a bonus; the load test stands without them)
        return None


def server_delta(before: dict, after: dict) -> dict:
    """Per-request server times (ms) and batching between two cumulative statistics snapshots.

    Triton counts ``queue`` and ``compute_*`` per request, ``execution_count`` per model run;
    ``inference_count`` counts samples. gRPC's JSON spells 64-bit counts as strings.

    Example:
        >>> server_delta(before, after)
        {'success_ms': 0.41, 'queue_ms': 0.05, ..., 'requests': 800, 'failed': 0,
         'executions': 210, 'inferences': 800, 'mean_batch': 3.81}
    """
    def totals(stats: dict, key: str) -> tuple[int, int]:
        entry = (stats.get("inference_stats") or {}).get(key) or {}
        return int(entry.get("count", 0) or 0), int(entry.get("ns", 0) or 0)

    result = {}
    for key in ("success", *SERVER_TIMES):
        count = totals(after, key)[0] - totals(before, key)[0]
        nanoseconds = totals(after, key)[1] - totals(before, key)[1]
        result[f"{key}_ms"] = nanoseconds / count / 1e6 if count > 0 else None
    result["requests"] = totals(after, "success")[0] - totals(before, "success")[0]
    result["failed"] = totals(after, "fail")[0] - totals(before, "fail")[0]
    result["executions"] = int(after.get("execution_count", 0) or 0) - \
        int(before.get("execution_count", 0) or 0)
    result["inferences"] = int(after.get("inference_count", 0) or 0) - \
        int(before.get("inference_count", 0) or 0)
    result["mean_batch"] = result["inferences"] / result["executions"] \
        if result["executions"] > 0 else None
    return result
