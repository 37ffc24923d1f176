"""One artifact per process: a crash, a hang or an error is that artifact's row only."""

from __future__ import annotations

import sys

from edgekit.bench.isolation import run_isolated


def test_a_worker_killed_by_a_signal_is_a_failed_record_naming_the_signal(tmp_path):
    crash = [sys.executable, "-c",
             "import os, signal, sys; print('loading model', file=sys.stderr); "
             "os.kill(os.getpid(), signal.SIGSEGV)"]
    record = run_isolated({"slug": "crash"}, tmp_path, timeout=60, command=crash)
    assert record["status"] == "failed"
    assert record["reason"] == "the runtime crashed (SIGSEGV); last log line: loading model"


def test_a_worker_that_hangs_is_stopped_at_the_timeout(tmp_path):
    hang = [sys.executable, "-c", "import time; time.sleep(60)"]
    record = run_isolated({"slug": "hang"}, tmp_path, timeout=1, command=hang)
    assert record["status"] == "failed" and record["reason"].startswith("timed out after 1 s")


def test_events_the_worker_sends_reach_the_parent(tmp_path):
    talk = [sys.executable, "-c",
            "import os, json, sys; out = os.fdopen(int(os.environ['EDGEKIT_BENCH_EVENTS_FD']), 'w'); "
            "out.write(json.dumps({'event': 'step', 'label': 'loaded'}) + '\\n'); out.close(); "
            "spec = json.load(open(sys.argv[1])); "
            "json.dump({'status': 'ok', 'measurements': []}, open(spec['result'], 'w'))"]
    events = []
    record = run_isolated({"slug": "talk"}, tmp_path, timeout=60, on_event=events.append,
                          command=talk)
    assert events == [{"event": "step", "label": "loaded"}]
    assert record["status"] == "ok"
