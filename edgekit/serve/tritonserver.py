"""Start, watch and stop a Triton Inference Server on a model repository.

The server binds 127.0.0.1 unless told otherwise (Triton's own default is 0.0.0.0), writes its
log to a file, and is ready when ``/v2/health/ready`` answers 200 (every model loaded). A busy
port, a missing binary or a model that fails to load raise :class:`ServeError` with one line
that carries the server's own reason (read from its log by :mod:`edgekit.serve.server_log`). The
server runs in its own process group, dies with the process that started it, and is stopped
with SIGTERM, then SIGKILL.

Example:
    >>> with serve("triton_repo", http_port=8000) as server:
    ...     print(server.endpoints["http"], server.models())
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path

from edgekit.errors import OptionError, ServeError
from edgekit.serve.installation import TritonInstallation, build_backend_directory, locate_tritonserver
from edgekit.serve.server_log import default_log_path, failure_reason, is_transient_startup_crash
from edgekit.serve.staging import model_folders, stage_repository

BACKENDS = ("python", "native")
MODEL_CONTROL_MODES = ("none", "poll", "explicit")
# A served repository's staging copy and backend folder, in a temporary folder named so, holding
# the serving process's id (so a later serve can remove the folders of a killed one).
WORK_DIR_PREFIX = "edgekit-serve-"
OWNER_FILE = "owner.pid"


@dataclass
class ServeConfig:
    """How to serve a repository; the CLI and the library build this same flat config.

    Attributes:
        repository: the Triton model repository (``edgekit export --to triton`` writes triton_repo/).
        backend: "python" serves a staging copy whose ONNX models run with ONNX Runtime in
            Triton's Python backend (the bundled build); "native" serves the repository as it is,
            with a full Triton build given by ``tritonserver``.
        tritonserver: path of a full build's ``tritonserver``; None uses the one in nvidia-pytriton.
        host: address the HTTP, gRPC and metrics endpoints bind.
        http_port, grpc_port, metrics_port: the three ports.
        model_control: Triton's model control mode; "explicit" loads every model at start and
            lets clients load and unload models (``edgekit deploy --reload``).
        log_file: where the server's log goes; None writes ``<repository>-server.log`` beside the
            repository.
        ready_timeout: seconds to wait for readiness before giving up.
        work_dir: where the staging copy and backend folder go; None uses a temporary folder
            removed at shutdown.
    """

    repository: str = "triton_repo"
    backend: str = "python"
    tritonserver: str | None = None
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    model_control: str = "none"
    log_file: str | None = None
    ready_timeout: float = 60.0
    work_dir: str | None = None

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise OptionError(f"backend must be one of {', '.join(BACKENDS)}; received {self.backend!r}")
        if self.model_control not in MODEL_CONTROL_MODES:
            raise OptionError(f"model_control must be one of {', '.join(MODEL_CONTROL_MODES)}; "
                              f"received {self.model_control!r}")
        if self.backend == "native" and not self.tritonserver:
            raise OptionError(
                "--backend native needs --tritonserver PATH, a full Triton build with the "
                "onnxruntime backend (the bundled build has only the Python backend); "
                "or use --backend python"
            )
        ports = {"http_port": self.http_port, "grpc_port": self.grpc_port, "metrics_port": self.metrics_port}
        for name, port in ports.items():
            if not isinstance(port, int) or not 1 <= port <= 65535:
                raise OptionError(f"{name} must be an integer in 1..65535; received {port!r}")
        if len(set(ports.values())) != 3:
            raise OptionError(f"the HTTP, gRPC and metrics ports must differ; received {ports}")
        if not self.ready_timeout > 0:
            raise OptionError(f"ready_timeout must be > 0 seconds; received {self.ready_timeout!r}")


def check_ports_free(host: str, ports: dict[str, int]) -> None:
    """Raise ServeError naming the first port something already listens on.

    The probe sets SO_REUSEADDR like the server does, so ports left in TIME_WAIT by a previous
    server count as free.
    """
    for name, port in ports.items():
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                raise ServeError(
                    f"cannot serve: {name} port {port} on {host} is busy ({error.strerror}); stop what "
                    f"holds it or pass another --{name.split()[0].lower()}-port"
                ) from error


class TritonServer:
    """One ``tritonserver`` process serving a repository.

    Use :func:`serve` to build, start and wait in one call, or ``start()`` and ``stop()``;
    as a context manager it stops on exit.
    """

    def __init__(self, config: ServeConfig):
        config.validate()
        self.config = config
        self.process: subprocess.Popen | None = None
        self.installation: TritonInstallation | None = None
        self.staged = None
        self.retried_after: str | None = None  # the first start's crash, when it was retried
        self.work_dir: Path | None = None
        self._own_work_dir = False
        self.log_path = Path(config.log_file) if config.log_file else default_log_path(config.repository)

    @property
    def endpoints(self) -> dict[str, str]:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return {"http": f"http://{host}:{self.config.http_port}",
                "grpc": f"grpc://{host}:{self.config.grpc_port}",
                "metrics": f"http://{host}:{self.config.metrics_port}/metrics"}

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> "TritonServer":
        """Start the server and wait until it is ready; raises ServeError with its reason if not."""
        config = self.config
        self.installation = locate_tritonserver(config.tritonserver)
        model_folders(config.repository)  # a clear error before anything starts
        check_ports_free(config.host, {"HTTP": config.http_port, "gRPC": config.grpc_port,
                                       "metrics": config.metrics_port})
        if config.work_dir:
            self.work_dir = Path(config.work_dir)
            self.work_dir.mkdir(parents=True, exist_ok=True)
        else:
            _remove_orphaned_work_dirs()
            self.work_dir, self._own_work_dir = Path(tempfile.mkdtemp(prefix=WORK_DIR_PREFIX)), True
            (self.work_dir / OWNER_FILE).write_text(str(os.getpid()))
        try:
            repository = Path(config.repository).resolve()
            if config.backend == "python":
                staging = self.work_dir / "repository"
                shutil.rmtree(staging, ignore_errors=True)
                self.staged = stage_repository(repository, staging)
                repository = staging
            backends = build_backend_directory(self.installation, self.work_dir / "backends")
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            for attempt in (1, 2):
                self._launch(repository, backends)
                try:
                    self.wait_ready(config.ready_timeout)
                    break
                except ServeError:
                    if attempt == 2 or not self._crashed_transiently():
                        raise
                    # One retry, with the crash's log kept beside the new one.
                    self._kill_group()
                    self.process.wait()
                    os.replace(self.log_path, self.crash_log_path)
                    self.retried_after = failure_reason(self.crash_log_path)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def crash_log_path(self) -> Path:
        """Where the log of a first start that crashed transiently is kept."""
        return self.log_path.with_name(self.log_path.name + ".crash")

    def _launch(self, repository: Path, backends: Path | None) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self._command(repository, backends), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.installation.environment(),
                start_new_session=True,  # Ctrl-C reaches us, and we stop the server in order
                preexec_fn=_die_with_parent)
        atexit.register(self.stop)

    def _crashed_transiently(self) -> bool:
        code = self.process.poll()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return False
        return code is not None and is_transient_startup_crash(code, text)

    def _kill_group(self) -> None:
        try:  # the server's group: Python backend stubs it may have left behind
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _command(self, repository: Path, backends: Path | None) -> list[str]:
        config = self.config
        command = [str(self.installation.binary), f"--model-repository={repository}",
                   f"--http-address={config.host}", f"--grpc-address={config.host}",
                   f"--metrics-address={config.host}", f"--http-port={config.http_port}",
                   f"--grpc-port={config.grpc_port}", f"--metrics-port={config.metrics_port}",
                   "--allow-gpu-metrics=false", "--exit-timeout-secs=10",
                   f"--model-control-mode={config.model_control}"]
        if config.model_control == "explicit":
            command.append("--load-model=*")
        if config.model_control == "poll":
            command.append("--repository-poll-secs=2")
        if backends is not None:
            command.append(f"--backend-directory={backends}")
        return command

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ServeError(f"Triton exited with code {self.process.returncode} before it was ready: "
                                 f"{self.failure_reason()} (log: {self.log_path})")
            if self._http_status("/v2/health/ready") == 200:
                return
            if time.monotonic() > deadline:
                reason = self.failure_reason()
                raise ServeError(f"Triton was not ready after {timeout:g} s ({reason}); see {self.log_path} "
                                 "or raise --timeout")
            time.sleep(0.1)

    def _http_status(self, path: str, timeout: float = 1.0) -> int | None:
        try:
            with urllib.request.urlopen(self.endpoints["http"] + path, timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except (OSError, ValueError):
            return None

    def models(self) -> list[dict]:
        """Every model of the repository: name, version, state and, if not ready, the reason."""
        request = urllib.request.Request(self.endpoints["http"] + "/v2/repository/index", data=b"{}",
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except (OSError, ValueError) as error:
            raise ServeError(f"cannot list the models at {self.endpoints['http']}: {error}") from error

    def poll(self) -> int | None:
        """None while the server runs, else its exit code."""
        return self.process.poll() if self.process else -1

    def failure_reason(self) -> str:
        return failure_reason(self.log_path)

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``) and remove the work folder."""
        atexit.unregister(self.stop)
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            self._kill_group()
            code = self.process.wait()
        if self._own_work_dir and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None
        return code

    def __enter__(self) -> "TritonServer":
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(repository: str | os.PathLike = "triton_repo", **options) -> TritonServer:
    """Start Triton on ``repository`` and return the ready server.

    Args:
        repository: the model repository to serve.
        **options: any field of :class:`ServeConfig` (backend, tritonserver, host, http_port,
            grpc_port, metrics_port, model_control, log_file, ready_timeout, work_dir).

    Returns:
        The running, ready :class:`TritonServer`; call ``stop()`` or use it in a ``with`` block.

    Raises:
        OptionError: for an unknown option or an invalid value.
        RepositoryError: for a missing or unstageable repository.
        ServeError: for a missing binary, a busy port, a model that fails to load, or a server
            not ready within ``ready_timeout``.

    Example:
        >>> server = serve("triton_repo", http_port=8000, grpc_port=8001, metrics_port=8002)
        >>> server.stop()
    """
    unknown = sorted(set(options) - set(ServeConfig.field_names()))
    if unknown:
        raise OptionError(f"unknown serve option(s) {', '.join(unknown)}; expected some of: "
                          f"{', '.join(ServeConfig.field_names())}")
    return TritonServer(ServeConfig(repository=os.fspath(repository), **options)).start()


def _die_with_parent() -> None:
    """In the child, before exec: the kernel kills it when edgekit dies, by any signal.

    Without it, an ``edgekit serve`` killed with SIGKILL leaves tritonserver serving, orphaned,
    and the next ``serve`` on the same ports cannot start.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the atexit / signal handlers still stop it
        pass


def _remove_orphaned_work_dirs() -> None:
    """Staging folders of earlier ``serve`` runs whose process is gone (killed with SIGKILL)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{WORK_DIR_PREFIX}*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # an older edgekit's folder, or one being created: not ours to judge
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass


__all__ = ["BACKENDS", "MODEL_CONTROL_MODES", "ServeConfig", "TritonServer", "check_ports_free", "serve"]
