"""One artifact, measured in a process of its own: ``python -m edgekit.bench.worker SPEC.json``.

The parent (:mod:`edgekit.bench.isolation`) writes the spec, the model-ready inputs as .npy and
reads back a result JSON and the artifact's outputs on the test split. Progress goes to the file
descriptor named by ``EDGEKIT_BENCH_EVENTS_FD`` as JSON lines. Only the runtime the artifact needs
is imported: a LiteRT worker never loads TensorFlow, so its memory is its own.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

EVENTS_ENV = "EDGEKIT_BENCH_EVENTS_FD"


def rss_mb(field: str = "VmRSS") -> float | None:
    """This process's resident memory now (VmRSS) or at its peak (VmHWM), in MiB; None off Linux.

    VmHWM starts afresh at exec, unlike getrusage's ru_maxrss, which keeps the parent's size at
    fork: only VmHWM gives the worker's own peak.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Events:
    """JSON lines to the parent: ``{"event": "step", "label": ...}`` per finished step."""

    def __init__(self):
        fd = os.environ.get(EVENTS_ENV)
        self._stream = os.fdopen(int(fd), "w", buffering=1) if fd else None

    def send(self, event: str, **fields) -> None:
        if self._stream is not None:
            self._stream.write(json.dumps({"event": event, **fields}) + "\n")


def check_fits(runtime, sample_shape: tuple, dataset: str, artifact: str) -> None:
    """DataError naming both sides when the artifact's input does not fit the dataset's samples."""
    from edgekit.errors import DataError

    description = runtime.describe()
    tensor = description.get("input") or {}
    shape = tuple(int(size) for size in getattr(runtime, "input_shape", None)
                  or tensor.get("shape", [])[1:])
    dtype = getattr(runtime, "input_dtype", None) or tensor.get("dtype")
    quantized = (description.get("input") or {}).get("quantization") is not None
    dtype_fits = dtype in ("float32", "float16") or (quantized and dtype in ("int8", "uint8", "int16"))
    if shape != tuple(sample_shape) or not dtype_fits:
        raise DataError(
            f"artifact {artifact} takes input {description['input'].get('name')!r} of shape "
            f"(N, {', '.join(map(str, shape))}) {dtype}; dataset {dataset!r} gives samples of shape "
            f"(N, {', '.join(map(str, sample_shape))}) float32. Benchmark it with the dataset it "
            "was trained on (--dataset), or export it again from the right model")


def import_runtime_library(runtime: str) -> None:
    """Import the runtime's library up front, so load time is the model's, not the import's."""
    if runtime in ("keras", "keras3"):
        from edgekit._compat import tensorflow

        tensorflow()
        if runtime == "keras3":
            from edgekit.models.keras3 import keras3

            keras3()
    else:
        import importlib

        module = {"litert": "ai_edge_litert.interpreter", "onnxruntime": "onnxruntime",
                  "triton": "tritonclient.http"}.get(runtime)
        if module:
            importlib.import_module(module)


def take(x, count: int):
    """The first ``count`` samples, repeated when the split is smaller than the batch."""
    import numpy as np

    if len(x) >= count:
        return x[:count]
    return np.resize(x, (count, *x.shape[1:]))


def run(spec: dict, events: Events) -> dict:
    import numpy as np

    from edgekit.bench.engines import RuntimeOptions, prepared_call
    from edgekit.bench.latency import TimingConfig, measure

    if spec.get("pin_cpus"):
        os.sched_setaffinity(0, set(spec["pin_cpus"]))
    x = np.load(spec["x"])
    options = RuntimeOptions(**spec["options"])
    timing = TimingConfig(**spec["timing"])
    runtime, result = load_timed(spec, options, x, events, threads=options.num_threads)

    batches = spec["batches"]
    call, _ = prepared_call(runtime, take(x, batches[0]))
    started = time.perf_counter()
    call()
    result["first_inference_ms"] = (time.perf_counter() - started) * 1e3
    measurements = []
    for batch in batches:
        for concurrency in spec.get("concurrency") or [1]:
            if concurrency == 1:
                call, timed = prepared_call(runtime, take(x, batch))
                measurement = measure(call, timing, batch=batch)
            else:
                from edgekit.bench.load import measure_concurrent

                measurement, timed = measure_concurrent(spec, options, take(x, batch), concurrency,
                                                        timing)
            measurements.append({"batch": batch, "threads": options.num_threads,
                                 "concurrency": concurrency, "timed": timed, **measurement})
            events.send("step", label=f"batch {batch}" + (f" x{concurrency}" if concurrency > 1
                                                           else ""))
    result["measurements"] = measurements
    if spec.get("outputs"):
        np.save(spec["outputs"], np.asarray(runtime.run(x), dtype=np.float32))
        events.send("step", label="accuracy")
    result["memory"]["rss_end_mb"] = rss_mb()
    result["memory"]["peak_rss_mb"] = rss_mb("VmHWM")
    return result


def load_timed(spec: dict, options, x, events, threads):
    """Import the runtime's library and open the artifact, timing both; check it fits ``x``.

    Returns:
        ``(runtime, result)``: the opened runtime and the start of the worker's result record
        (import and load times, memory before and after loading, the runtime's description).
    """
    from edgekit.bench.engines import open_runtime

    started = time.perf_counter()
    import_runtime_library(spec["runtime"])
    result = {"status": "ok", "threads": threads, "pid": os.getpid(),
              "cpu_affinity": sorted(os.sched_getaffinity(0)),
              "import_ms": (time.perf_counter() - started) * 1e3,
              "memory": {"rss_before_load_mb": rss_mb()}}
    started = time.perf_counter()
    runtime = open_runtime(spec["runtime"], spec["path"], options)
    result["load_ms"] = (time.perf_counter() - started) * 1e3
    result["memory"]["rss_after_load_mb"] = rss_mb()
    result["describe"] = runtime.describe()
    check_fits(runtime, tuple(x.shape[1:]), spec["dataset"], spec["name"])
    events.send("step", label="loaded")
    return runtime, result


def main(spec_path: str, job=None) -> int:
    """Run ``job(spec, events)`` (default :func:`run`) and write its result file atomically.

    Any failure becomes this artifact's failed row, never a crash of the whole benchmark.
    """
    with open(spec_path) as handle:
        spec = json.load(handle)
    events = Events()
    try:
        import edgekit._compat  # noqa: F401  (selects Keras 2 before any TensorFlow import)
        from edgekit.errors import EdgekitError

        try:
            result = (job or run)(spec, events)
            code = 0
        except EdgekitError as error:
            result, code = {"status": "failed", "reason": str(error)}, 1
    except Exception as error:  # noqa: BLE001  (any failure is this artifact's row, not a crash)
        lines = [line for line in str(error).splitlines() if line.strip()]
        reason = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        traceback.print_exc()
        result, code = {"status": "failed", "reason": reason}, 1
    temporary = spec["result"] + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(result, handle)
    os.replace(temporary, spec["result"])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
