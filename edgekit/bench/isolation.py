"""Each artifact in a process of its own: its peak memory is its own, its crash is its own row.

The parent starts ``python -m edgekit.bench.worker``, relays its progress events, waits for it and
turns whatever happened (a result, an error, a signal, a timeout) into one record. The peak RSS is
the worker's own (its VmHWM); ``wait4``'s ru_maxrss would include the parent's size at fork.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from edgekit.bench.worker import EVENTS_ENV

WORKER = [sys.executable, "-m", "edgekit.bench.worker"]


def run_isolated(spec: dict, work: Path, timeout: float,
                 on_event: Callable[[dict], None] | None = None,
                 command: list[str] | None = None) -> dict:
    """Run one worker on ``spec`` and return its result record (``status`` ok or failed).

    Args:
        spec: the worker's spec; ``result`` and ``outputs`` paths are filled in here.
        work: a folder for the spec, the result and the worker's log.
        timeout: seconds before the worker is killed (a failed row: "timed out").
        on_event: called with each progress event the worker sends.
        command: the worker command (tests pass one that crashes).
    """
    work.mkdir(parents=True, exist_ok=True)
    stem = spec["slug"]
    spec = {**spec, "result": str(work / f"{stem}.result.json")}
    spec_path = work / f"{stem}.spec.json"
    spec_path.write_text(json.dumps(spec))
    log_path = work / f"{stem}.log"
    read_fd, write_fd = os.pipe()
    env = {**os.environ, EVENTS_ENV: str(write_fd)}
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen([*(command or WORKER), str(spec_path)], stdout=log, stderr=log,
                                   stdin=subprocess.DEVNULL, env=env, pass_fds=(write_fd,))
    os.close(write_fd)
    timed_out = _relay_events(read_fd, started + timeout, on_event)
    if timed_out:
        process.kill()
    process.wait()
    seconds = time.monotonic() - started
    result_path = Path(spec["result"])
    if result_path.is_file():
        result = json.loads(result_path.read_text())
    else:
        result = {"status": "failed",
                  "reason": _death_reason(process.returncode, timed_out, timeout, log_path)}
    result.setdefault("memory", {})
    result["process_seconds"] = seconds
    result["log"] = str(log_path)
    return result


def _relay_events(read_fd: int, deadline: float, on_event) -> bool:
    """Forward JSON-line events until the worker closes its end; True when the deadline passed."""
    selector = selectors.DefaultSelector()
    selector.register(read_fd, selectors.EVENT_READ)
    buffer = b""
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if not selector.select(timeout=min(remaining, 1.0)):
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                return False
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if on_event is not None and line.strip():
                    try:
                        on_event(json.loads(line))
                    except json.JSONDecodeError:
                        pass
    finally:
        selector.close()
        os.close(read_fd)


def _death_reason(code: int, timed_out: bool, timeout: float, log_path: Path) -> str:
    if timed_out:
        return f"timed out after {timeout:.0f} s (raise --timeout if the artifact is just slow)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        reason = f"the runtime crashed ({name})"
    else:
        reason = f"the worker exited with code {code} without a result"
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines()
             if line.strip()] if log_path.is_file() else []
    return f"{reason}; last log line: {lines[-1][:200]}" if lines else reason
