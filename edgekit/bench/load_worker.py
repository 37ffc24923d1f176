"""The load-test worker: a served model's (batch, concurrency) levels in a process of its own.

``python -m edgekit.bench.load_worker SPEC.json`` takes the spec and writes the result record of
:mod:`edgekit.bench.worker`, with :func:`run_load_test` as the job, so that concurrency 1 is
measured the same way as the other levels (:mod:`edgekit.bench.load`).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from edgekit.bench.latency import TimingConfig
from edgekit.bench.load import measure_concurrent
from edgekit.bench.worker import finish, load_timed, main as worker_main, runtime_class, take

LOAD_WORKER = [sys.executable, "-m", "edgekit.bench.load_worker"]


def run_load_test(spec: dict, events) -> dict:
    """The worker's job for a served model: every (batch, concurrency) level, then the outputs.

    Same spec and result record as :func:`edgekit.bench.worker.run`; concurrency 1 goes through
    :func:`measure_concurrent` too, so every level has errors, answers and server statistics.
    """
    x = np.load(spec["x"])
    timing = TimingConfig(**spec["timing"])
    runtime, result = load_timed(spec, x, events, threads=None)
    options = result["options"]

    def open_runtime():
        return runtime_class(spec).load(spec["path"], **options)

    measurements = []
    for index, batch in enumerate(spec["batches"]):
        samples = take(x, batch)
        call, _ = runtime.prepared_call(samples)
        started = time.perf_counter()
        expected = np.asarray(call(), dtype=np.float32)  # later answers must equal this one
        if index == 0:
            result["first_inference_ms"] = (time.perf_counter() - started) * 1e3
        for concurrency in spec.get("concurrency") or [1]:
            measurement, timed = measure_concurrent(open_runtime, samples, concurrency, timing,
                                                    expected=expected)
            measurements.append({"batch": batch, "threads": None, "concurrency": concurrency,
                                 "timed": timed, **measurement})
            events.send("step", label=f"batch {batch} x{concurrency}")
    return finish(spec, runtime, x, result, measurements, events)


def main(spec_path: str) -> int:
    """As :func:`edgekit.bench.worker.main`, with :func:`run_load_test` as the job."""
    return worker_main(spec_path, job=run_load_test)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
