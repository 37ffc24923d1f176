"""The load test's pieces without a server: statistics deltas, bounded windows, answer checks."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edgekit.bench import load
from edgekit.bench.load import ClientThreads, _answer_check, _window, server_delta


def _stats(success, queue_ns, infer_ns, executions, inferences, as_strings=False):
    entry = (lambda count, ns: {"count": str(count), "ns": str(ns)}) if as_strings else \
        (lambda count, ns: {"count": count, "ns": ns})
    stats = {"inference_stats": {"success": entry(success, success * 900_000),
                                 "queue": entry(success, queue_ns),
                                 "compute_infer": entry(success, infer_ns),
                                 "fail": entry(0, 0)},
             "execution_count": executions, "inference_count": inferences}
    if as_strings:
        stats["execution_count"], stats["inference_count"] = str(executions), str(inferences)
    return stats


@pytest.mark.parametrize("as_strings", [False, True])  # gRPC's JSON writes 64-bit counts as strings
def test_server_delta_gives_per_request_times_and_the_mean_batch(as_strings):
    before = _stats(100, 10_000_000, 50_000_000, 80, 100, as_strings)
    after = _stats(500, 30_000_000, 250_000_000, 180, 500, as_strings)
    delta = server_delta(before, after)
    assert delta["requests"] == 400 and delta["failed"] == 0
    assert delta["queue_ms"] == pytest.approx(0.05) and delta["compute_infer_ms"] == pytest.approx(0.5)
    assert delta["executions"] == 100 and delta["mean_batch"] == pytest.approx(4.0)
    assert delta["compute_output_ms"] is None  # not reported: no figure, not zero


def test_a_server_gone_silent_stops_the_window_after_the_error_limit(monkeypatch):
    monkeypatch.setattr(load, "MAX_ERRORS_PER_WINDOW", 25)

    def refused():
        raise ConnectionRefusedError("connection refused")

    with ClientThreads(lambda: (refused, lambda: None), 4) as clients:
        window = _window(clients, min_runs=10, min_seconds=60.0)
    assert window.latencies == [] and 25 <= window.errors <= 28
    assert window.first_error == "connection refused"


def test_a_window_ends_at_its_deadline_even_without_enough_answers(monkeypatch):
    monkeypatch.setattr(load, "WINDOW_GRACE_SECONDS", 0.2)
    gate = threading.Event()

    def slow():
        gate.wait(0.05)
        return np.zeros((1, 3), np.float32)

    with ClientThreads(lambda: (slow, lambda: None), 2) as clients:
        window = _window(clients, min_runs=10_000, min_seconds=0.0)
    assert 0 < len(window.latencies) < 10_000 and window.errors == 0


def test_answers_that_differ_from_the_first_count_as_wrong():
    expected = np.array([[0.1, 0.7, 0.2]], np.float32)
    check = _answer_check(expected)
    assert check(expected.copy())
    assert not check(np.array([[0.7, 0.1, 0.2]], np.float32))  # another top-1
    assert not check(expected + 1e-3)                           # same top-1, off by more than 1e-5
    assert not check(np.zeros((2, 3), np.float32))              # another shape
    answers = iter([expected, expected + 1e-3] * 1000)
    with ClientThreads(lambda: ((lambda: next(answers)), lambda: None), 1) as clients:
        window = _window(clients, min_runs=10, min_seconds=0.0, check=check)
    assert window.wrong_answers >= 5 and window.errors == 0


def test_a_client_that_cannot_connect_fails_the_level_at_once():
    def open_client():
        raise OSError("cannot reach Triton")

    with pytest.raises(OSError, match="cannot reach Triton"):
        ClientThreads(open_client, 3)


def test_each_connection_is_used_only_by_the_thread_that_opened_it():
    owners, users = [], []

    def open_client():
        owners.append(threading.get_ident())
        return (lambda: users.append(threading.get_ident())), lambda: users.append(-1)

    with ClientThreads(open_client, 3) as clients:
        for _ in range(3):  # three windows, same threads
            _window(clients, min_runs=5, min_seconds=0.0)
    assert set(users) - {-1} <= set(owners) and len(set(owners)) == 3 and users.count(-1) == 3
