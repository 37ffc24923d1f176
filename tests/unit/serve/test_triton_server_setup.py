"""Finding the server, checking options and ports, and reading its reason for failing — no server started."""

from __future__ import annotations

import importlib.util
import socket

import pytest

from edgekit.errors import OptionError
from edgekit.errors import ServeError
from edgekit.serve.installation import build_backend_directory, locate_tritonserver
from edgekit.serve.server_log import failure_reason
from edgekit.serve.tritonserver import ServeConfig, check_ports_free, serve


def test_bundled_server_binary_libraries_and_stub_are_found(tmp_path):
    installation = locate_tritonserver()
    assert installation.binary.name == "tritonserver" and installation.binary.is_file()
    assert installation.python_stub.is_file()
    assert "nvidia-pytriton" in installation.source
    backends = build_backend_directory(installation, tmp_path / "backends")
    assert sorted(p.name for p in (backends / "python").iterdir()) == [
        "libtriton_python.so", "triton_python_backend_stub", "triton_python_backend_utils.py"]
    assert str(installation.library_dirs[0]) in installation.environment()["LD_LIBRARY_PATH"]


def test_missing_triton_extra_says_how_to_install_it(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pytriton" else real_find_spec(name, *a))
    with pytest.raises(ServeError, match=r"not installed \(no nvidia-pytriton\).*edgekit\[triton\]"):
        locate_tritonserver()


def test_a_given_binary_that_does_not_exist_is_refused(tmp_path):
    with pytest.raises(ServeError, match="is not an executable file.*full Triton build"):
        locate_tritonserver(tmp_path / "tritonserver")


@pytest.mark.parametrize("options, message", [
    ({"backend": "native"}, "--backend native needs --tritonserver PATH"),
    ({"backend": "onnx"}, "backend must be one of python, native; received 'onnx'"),
    ({"http_port": 8001}, "ports must differ"),
    ({"grpc_port": 70000}, r"grpc_port must be an integer in 1..65535; received 70000"),
    ({"model_control": "auto"}, "model_control must be one of none, poll, explicit"),
    ({"ready_timeout": 0}, "ready_timeout must be > 0"),
])
def test_invalid_serve_options_are_refused(options, message):
    with pytest.raises(OptionError, match=message):
        ServeConfig(**options).validate()


def test_unknown_serve_option_lists_the_known_ones(tmp_path):
    with pytest.raises(OptionError, match="unknown serve option.*http_prot.*expected some of: .*http_port"):
        serve(tmp_path, http_prot=1)


def test_a_busy_port_is_named_with_its_flag():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ServeError, match=f"gRPC port {port} on 127.0.0.1 is busy.*--grpc-port"):
            check_ports_free("127.0.0.1", {"HTTP": _free(), "gRPC": port})


def _free() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


LOG = r'''I1123 18:30:09.657108 13727 model_lifecycle.cc:472] "loading: m:1"
E1123 18:30:09.731876 13727 model_lifecycle.cc:642] "failed to load 'm' version 1: Internal: ModuleNotFoundError: No module named 'numpy'\n\nAt:\n  /tmp/repo/m/1/model.py(1): <module>\n"
| m     | 1       | UNAVAILABLE: Internal: ModuleNotFoundError |
error: creating server: Internal - failed to load all models
'''


def test_the_server_reason_for_a_model_that_failed_to_load_is_one_line(tmp_path):
    log = tmp_path / "server.log"
    log.write_text(LOG)
    assert failure_reason(log) == ("model 'm' version 1 failed to load: Internal: ModuleNotFoundError: "
                                   "No module named 'numpy'")


def test_other_failures_give_the_last_error_line(tmp_path):
    log = tmp_path / "server.log"
    log.write_text('I1123 18:30:09.6 1 a.cc:1] "starting"\n'
                   'E1123 18:30:10.650789 13727 http_server.cc:99] "failed to start HTTP service: Address in use"\n')
    assert failure_reason(log) == "failed to start HTTP service: Address in use"
    assert failure_reason(tmp_path / "missing.log") == "no server log"
