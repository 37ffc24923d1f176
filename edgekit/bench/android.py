"""Android: run TFLite's benchmark_model on a device over adb and read its output into our schema.

``--target adb[:SERIAL] --benchmark-binary PATH`` pushes the binary and each .tflite to
``/data/local/tmp/edgekit``, runs the binary with the run's threads, warm-up and run counts, and
parses what it prints. benchmark_model reports count, min, max, avg and std (newer builds add
p5 / median / p95), init and first-inference times and memory; figures it does not print
(p90, p99 without raw timings) stay null rather than being invented.

Example:
    >>> parse_benchmark_output(open("benchmark_model.txt").read())["latency_ms"]["mean"]
    0.0745
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from edgekit.errors import DataError, OptionError

DEVICE_FOLDER = "/data/local/tmp/edgekit"
_PAIRS = re.compile(r"(\w+)=([-+0-9.eE]+)")
_TIMINGS = re.compile(r"Inference timings in us:\s*Init:\s*([-+0-9.eE]+),\s*First inference:\s*"
                      r"([-+0-9.eE]+),\s*Warmup \(avg\):\s*([-+0-9.eE]+),\s*Inference \(avg\):\s*"
                      r"([-+0-9.eE]+)")
_MEMORY = re.compile(r"(?:Memory footprint delta from the start of the tool|Peak memory footprint)"
                     r" \(MB\):\s*init=([-+0-9.eE]+)\s+overall=([-+0-9.eE]+)")
_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring:\s*([-+0-9.eE]+)")
_RUNNING = re.compile(r"Running benchmark for at least (\d+) iterations and at least ([0-9.]+) "
                      r"seconds")


def parse_benchmark_output(text: str) -> dict:
    """benchmark_model's stdout / logcat text -> a measurement record of edgekit's schema.

    Raises:
        DataError: when the text holds no timing summary (the binary failed: its last lines say
            why).
    """
    blocks = []  # (min runs, {count, first, curr, min, max, avg, std, ...}) per "Running" block
    expected = None
    for line in text.splitlines():
        running = _RUNNING.search(line)
        if running:
            expected = int(running.group(1)), float(running.group(2))
            continue
        if "count=" in line and ("avg=" in line or "curr=" in line) and "Timings" not in line:
            values = {key: float(value) for key, value in _PAIRS.findall(line)}
            blocks.append((expected, values))
    timings = _TIMINGS.search(text)
    if timings is None or not blocks:
        tail = [line.strip() for line in text.splitlines() if line.strip()][-3:]
        raise DataError("benchmark_model printed no timing summary; its last lines: "
                        + (" | ".join(tail) or "(nothing)"))
    init_us, first_us, warmup_us, inference_us = (float(value) for value in timings.groups())
    warmup_block = blocks[0][1] if len(blocks) > 1 else None
    measured = blocks[-1][1]
    count = int(measured.get("count", 0))
    latency = {"count": count, "min": measured.get("min", inference_us) / 1e3,
               "mean": measured.get("avg", inference_us) / 1e3,
               "std": measured.get("std", 0.0) / 1e3,
               "p50": measured["median"] / 1e3 if "median" in measured else None,
               "p90": None, "p99": None,
               "max": measured.get("max", inference_us) / 1e3}
    if latency["p50"] is None:
        latency["p50"] = latency["mean"]  # older builds print no median: mean stands in (noted)
        latency["p50_is_mean"] = True
    for name in ("p5", "p95"):
        if name in measured:
            latency[name] = measured[name] / 1e3
    memory = _MEMORY.search(text)
    peak = _PEAK.search(text)
    seconds = latency["mean"] * count / 1e3
    return {
        "load_ms": init_us / 1e3, "first_inference_ms": first_us / 1e3,
        "memory": {"init_mb": float(memory.group(1)) if memory else None,
                   "overall_mb": float(memory.group(2)) if memory else None,
                   "peak_rss_mb": float(peak.group(1)) if peak else
                   (float(memory.group(2)) if memory else None),
                   "source": "benchmark_model (approximate, as it says)"},
        "measurement": {
            "warmup": {"runs": int(warmup_block.get("count", 0)) if warmup_block else 0,
                       "seconds": None, "mean_ms": warmup_us / 1e3},
            "runs": count, "seconds": seconds, "latency_ms": latency,
            "throughput_per_s": 1e3 / latency["mean"] if latency["mean"] else None,
            "stability": {"stable": True, "windows": 1, "window_p50_ms": [latency["p50"]],
                          "tolerance": 0.0, "spread": 0.0, "note": "one benchmark_model window"},
            "samples_ms": [latency["min"], latency["p50"], latency["max"]],
        },
    }


def adb_command(target: str) -> list[str]:
    """``adb`` or ``adb -s SERIAL`` for ``adb`` / ``adb:SERIAL``."""
    adb = shutil.which("adb")
    if adb is None:
        raise OptionError("--target adb needs the adb tool on PATH (Android SDK platform-tools)")
    serial = target.partition(":")[2]
    return [adb, "-s", serial] if serial else [adb]


def benchmark_arguments(config, graph: str, threads: int | None) -> list[str]:
    return [f"--graph={graph}", f"--num_threads={threads or 1}",
            f"--warmup_runs={config.warmup_runs}", f"--warmup_min_secs={config.warmup_seconds}",
            f"--num_runs={config.min_runs}", f"--min_secs={config.min_seconds}",
            f"--use_xnnpack={'true' if config.xnnpack else 'false'}"]


def run_on_device(artifact, config, threads: int | None) -> dict:
    """Push, run and parse; a failed record (with the device's reason) instead of raising."""
    binary = Path(config.benchmark_binary)
    if not binary.is_file():
        return {"status": "failed", "reason": f"--benchmark-binary {str(binary)!r} does not exist"}
    if config.batches != (1,):
        note = "benchmark_model runs the model's own input shape; --batch is not applied on device"
    else:
        note = None
    adb = adb_command(config.target)
    remote_binary = f"{DEVICE_FOLDER}/benchmark_model"
    remote_graph = f"{DEVICE_FOLDER}/{Path(artifact.path).name}"
    steps = [[*adb, "shell", "mkdir", "-p", DEVICE_FOLDER],
             [*adb, "push", str(binary), remote_binary],
             [*adb, "shell", "chmod", "755", remote_binary],
             [*adb, "push", artifact.path, remote_graph]]
    try:
        for step in steps:
            _call(step, config.timeout)
        output = _call([*adb, "shell", remote_binary,
                        *benchmark_arguments(config, remote_graph, threads)], config.timeout)
        parsed = parse_benchmark_output(output)
    except (DataError, subprocess.SubprocessError, OSError) as error:
        return {"status": "failed", "reason": str(error)}
    measurement = {"batch": 1, "threads": threads, "concurrency": 1,
                   "timed": "benchmark_model on the device (Invoke())", **parsed["measurement"]}
    return {"status": "ok", "device": config.target, "load_ms": parsed["load_ms"],
            "first_inference_ms": parsed["first_inference_ms"], "memory": parsed["memory"],
            "measurements": [measurement], "note": note, "raw_output": output[-4000:]}


def _call(command: list[str], timeout: float) -> str:
    finished = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if finished.returncode != 0:
        lines = [line for line in (finished.stderr + finished.stdout).splitlines() if line.strip()]
        raise subprocess.SubprocessError(f"`{' '.join(command[-3:])}` failed: "
                                         f"{lines[-1] if lines else finished.returncode}")
    return finished.stdout + finished.stderr
