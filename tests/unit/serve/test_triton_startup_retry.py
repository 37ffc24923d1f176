"""One retry when a starting server aborts on the Python backend's interprocess lock, and only then.

The decision is tested on the log text such a crash writes; the retry itself with a stand-in
``tritonserver`` (a small Python script) that aborts the same way on its first start.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from edgekit.errors import ServeError
from edgekit.serve.server_log import failure_reason, is_transient_startup_crash
from edgekit.serve.tritonserver import serve

# The tail of the log of a server that aborted while two Python-backend instances of one model
# initialised: the exception lines as libstdc++ and Triton's signal handler print them (as in
# triton-inference-server/server#8882), after the instance lines of the bundled 2.51 build.
LOCK_CRASH_LOG = textwrap.dedent("""\
    I1124 09:12:41.201553 48211 python_be.cc:2050] "TRITONBACKEND_ModelInstanceInitialize: digits-mlp_0_0 (CPU device 0)"
    I1124 09:12:41.201781 48211 python_be.cc:2050] "TRITONBACKEND_ModelInstanceInitialize: digits-mlp_0_1 (CPU device 0)"
    terminate called after throwing an instance of 'boost::interprocess::lock_exception'
      what():  boost::interprocess::lock_exception
    Signal (6) received.
     0# 0x000055F0A3C1B1A9 in /opt/pytriton/tritonserver/bin/tritonserver
     1# 0x00007F4E5B842520 in /lib/x86_64-linux-gnu/libc.so.6
     2# pthread_kill in /lib/x86_64-linux-gnu/libc.so.6
    """)
LOAD_FAILURE_LOG = (
    'E1123 18:30:09.731876 13727 model_lifecycle.cc:642] "failed to load \'m\' version 1: '
    "Internal: ModuleNotFoundError: No module named 'numpy'\"\n"
    "error: creating server: Internal - failed to load all models\n")


@pytest.mark.parametrize("code", [-6, 134])
def test_an_abort_on_the_interprocess_lock_is_worth_one_more_start(code):
    assert is_transient_startup_crash(code, LOCK_CRASH_LOG)


@pytest.mark.parametrize("code, log", [
    (1, LOAD_FAILURE_LOG),            # a model that fails to load fails again
    (-11, LOCK_CRASH_LOG),            # not an abort
    (-6, "Signal (6) received.\n"),   # an abort for another reason
    (1, LOCK_CRASH_LOG.replace("Signal (6) received.", "")),
])
def test_other_early_exits_are_reported_at_once(code, log):
    assert not is_transient_startup_crash(code, log)


def test_the_reason_of_an_abort_is_the_exception_it_threw(tmp_path):
    log = tmp_path / "server.log"
    log.write_text(LOCK_CRASH_LOG)
    assert failure_reason(log) == ("the server aborted: terminate called after throwing an "
                                   "instance of 'boost::interprocess::lock_exception'")


STAND_IN = """\
#!{python}
# Aborts like the lock crash on its first start; answers /v2/health/ready on the next.
import http.server, os, signal, sys
from pathlib import Path
starts = Path(__file__).with_name("starts")
count = int(starts.read_text()) + 1 if starts.exists() else 1
starts.write_text(str(count))
if count <= {crashes}:
    sys.stdout.write({log!r})
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGABRT)
port = int(next(arg.split("=", 1)[1] for arg in sys.argv if arg.startswith("--http-port=")))
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/v2/health/ready" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Ready)
signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
server.serve_forever()
"""


def _stand_in(tmp_path, crashes: int):
    binary = tmp_path / "build" / "bin" / "tritonserver"
    binary.parent.mkdir(parents=True)
    binary.write_text(STAND_IN.format(python=sys.executable, crashes=crashes, log=LOCK_CRASH_LOG))
    binary.chmod(0o755)
    return binary


def _ports(free_port_factory) -> dict:
    return dict(zip(("http_port", "grpc_port", "metrics_port"), free_port_factory()))


@pytest.fixture
def three_free_ports():
    import socket

    def ports():
        probes = [socket.socket() for _ in range(3)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        found = [probe.getsockname()[1] for probe in probes]
        for probe in probes:
            probe.close()
        return found

    return ports


def test_a_lock_crash_at_startup_is_retried_once_and_its_log_kept(tmp_path, linear_repository,
                                                                   three_free_ports):
    binary = _stand_in(tmp_path, crashes=1)
    server = serve(linear_repository, backend="native", tritonserver=str(binary),
                   log_file=str(tmp_path / "server.log"), ready_timeout=30,
                   **_ports(three_free_ports))
    try:
        assert server.poll() is None
        assert (binary.parent / "starts").read_text() == "2"
        assert server.retried_after.startswith("the server aborted: terminate called")
        assert "boost::interprocess::lock_exception" in server.crash_log_path.read_text()
    finally:
        server.stop()


def test_a_second_lock_crash_is_reported_not_retried_again(tmp_path, linear_repository,
                                                           three_free_ports):
    binary = _stand_in(tmp_path, crashes=2)
    with pytest.raises(ServeError, match=r"Triton exited with code -6 before it was ready: "
                                         r"the server aborted: .*lock_exception"):
        serve(linear_repository, backend="native", tritonserver=str(binary),
              log_file=str(tmp_path / "server.log"), ready_timeout=30, **_ports(three_free_ports))
    assert (binary.parent / "starts").read_text() == "2"
