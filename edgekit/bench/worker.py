"""One artifact, measured in a process of its own: ``python -m edgekit.bench.worker SPEC.json``.

The parent (:mod:`edgekit.bench.isolation`) writes the spec, the model-ready inputs as .npy and
reads back a result JSON and the artifact's outputs on the test split. Progress goes to the file
descriptor named by ``EDGEKIT_BENCH_EVENTS_FD`` as JSON lines. The runtime comes from
:data:`edgekit.runtimes.RUNTIMES` by name, after the plug-ins (``EDGEKIT_PLUGINS``, inherited from
the parent, and the ``edgekit.plugins`` entry points) and, for a runtime a module of its own
registers, that module are imported here too. Only the runtime
the artifact needs loads its library: a LiteRT worker never loads TensorFlow, so its memory is
its own.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback

import numpy as np

from edgekit.bench.latency import TimingConfig, measure
from edgekit.errors import DataError, EdgekitError, UnknownNameError, short_reason
from edgekit.registry import PLUGINS_VARIABLE, load_plugins
from edgekit.runtimes import RUNTIMES, Runtime

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


def check_fits(runtime: Runtime, sample_shape: tuple, dataset: str, artifact: str) -> None:
    """DataError naming both sides when the artifact's input does not fit the dataset's samples."""
    description = runtime.describe()
    tensor = description.get("input") or {}
    shape = tuple(int(size) for size in runtime.input_shape)
    dtype = runtime.input_dtype
    quantized = tensor.get("quantization") is not None
    dtype_fits = dtype in ("float32", "float16") or (quantized and dtype in ("int8", "uint8", "int16"))
    if shape != tuple(sample_shape) or not dtype_fits:
        raise DataError(
            f"artifact {artifact} takes input {tensor.get('name')!r} of shape "
            f"(N, {', '.join(map(str, shape))}) {dtype}; dataset {dataset!r} gives samples of shape "
            f"(N, {', '.join(map(str, sample_shape))}) float32. Benchmark it with the dataset it "
            "was trained on (--dataset), or export it again from the right model")


def runtime_class(spec: dict) -> type[Runtime]:
    """The spec's runtime, after loading the plug-ins (EDGEKIT_PLUGINS is the parent's) and, for
    a runtime a module of its own registers, that module.

    Raises:
        UnknownNameError: when nothing registered it, saying how to make it reachable.
    """
    load_plugins()
    name, module = spec["runtime"], spec.get("runtime_module")
    if name not in RUNTIMES and module:
        importlib.import_module(module)
    if name not in RUNTIMES:
        raise UnknownNameError(
            f"unknown runtime {name!r} in the worker process; expected one of: "
            f"{', '.join(RUNTIMES.names())}. A runtime registered in the parent only (e.g. in "
            f"__main__) is not seen here: put it in a module and name that module in "
            f"{PLUGINS_VARIABLE}")
    return RUNTIMES.get(name)


def take(x, count: int):
    """The first ``count`` samples, repeated when the split is smaller than the batch."""
    if len(x) >= count:
        return x[:count]
    return np.resize(x, (count, *x.shape[1:]))


def run(spec: dict, events: Events) -> dict:
    if spec.get("pin_cpus"):
        os.sched_setaffinity(0, set(spec["pin_cpus"]))
    x = np.load(spec["x"])
    timing = TimingConfig(**spec["timing"])
    threads = spec["options"].get("num_threads")
    runtime, result = load_timed(spec, x, events, threads=threads)

    batches = spec["batches"]
    call, _ = runtime.prepared_call(take(x, batches[0]))
    started = time.perf_counter()
    call()
    result["first_inference_ms"] = (time.perf_counter() - started) * 1e3
    measurements = []
    for batch in batches:
        call, timed = runtime.prepared_call(take(x, batch))
        measurement = measure(call, timing, batch=batch)
        measurements.append({"batch": batch, "threads": threads, "concurrency": 1,
                             "timed": timed, **measurement})
        events.send("step", label=f"batch {batch}")
    return finish(spec, runtime, x, result, measurements, events)


def finish(spec: dict, runtime, x, result: dict, measurements: list, events) -> dict:
    """The end every worker job shares: the measurements, the outputs on the whole split (for
    accuracy and fidelity) when asked, the runtime closed and the memory it ended with."""
    result["measurements"] = measurements
    if spec.get("outputs"):
        np.save(spec["outputs"], np.asarray(runtime.run(x), dtype=np.float32))
        events.send("step", label="accuracy")
    runtime.close()
    result["memory"]["rss_end_mb"] = rss_mb()
    result["memory"]["peak_rss_mb"] = rss_mb("VmHWM")
    return result


def load_timed(spec: dict, x, events, threads):
    """Import the runtime's library and open the artifact, timing both; check it fits ``x``.

    Returns:
        ``(runtime, result)``: the opened runtime and the start of the worker's result record
        (import and load times, memory before and after loading, the options the runtime took,
        its description and its libraries' versions).
    """
    runtime_type = runtime_class(spec)
    started = time.perf_counter()
    runtime_type.import_library()
    result = {"status": "ok", "threads": threads, "pid": os.getpid(),
              "cpu_affinity": sorted(os.sched_getaffinity(0)),
              "import_ms": (time.perf_counter() - started) * 1e3,
              "memory": {"rss_before_load_mb": rss_mb()}}
    options = runtime_type.option_values(spec["options"])
    started = time.perf_counter()
    runtime = runtime_type.load(spec["path"], **options)
    result["load_ms"] = (time.perf_counter() - started) * 1e3
    result["memory"]["rss_after_load_mb"] = rss_mb()
    result["options"] = options
    result["describe"] = runtime.describe()
    result["versions"] = runtime_type.versions()
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
        result = (job or run)(spec, events)
        code = 0
    except EdgekitError as error:
        result, code = {"status": "failed", "reason": str(error)}, 1
    except Exception as error:  # noqa: BLE001  (any failure is this artifact's row, not a crash)
        traceback.print_exc()
        result, code = {"status": "failed", "reason": short_reason(error)}, 1
    temporary = spec["result"] + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(result, handle)
    os.replace(temporary, spec["result"])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
