"""Where the Triton Inference Server binary, its libraries and its Python backend are.

The ``nvidia-pytriton`` wheel (edgekit's ``[triton]`` extra) carries a real ``tritonserver``
(Triton 2.51) built with the Python backend only: the binary under
``pytriton/tritonserver/bin/``, its shared libraries in ``nvidia_pytriton.libs/``, the backend in
``pytriton/tritonserver/backends/python/`` and one backend stub per Python version in
``pytriton/tritonserver/python_backend_stubs/3.X/``. A full Triton build (NVIDIA's container) is
used instead when the user points to its binary.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from edgekit.errors import OptionError, ServeError


class TritonBinaryError(ServeError, OptionError):
    """--tritonserver names no executable: bad input (exit code 2), not a failed start."""

    exit_code = 2


_INSTALL_HINT = (
    'install the Triton extra (pip install "edgekit[triton]", Linux x86-64), or pass '
    "--tritonserver PATH to a full Triton build"
)


@dataclass(frozen=True)
class TritonInstallation:
    """The files it takes to start one ``tritonserver``.

    Attributes:
        binary: the ``tritonserver`` executable.
        library_dirs: folders to put on ``LD_LIBRARY_PATH`` (empty for a full build).
        python_backend: folder holding ``libtriton_python.so`` and ``triton_python_backend_utils.py``,
            or None when the build's own backend folder is used.
        python_stub: ``triton_python_backend_stub`` for the running Python, or None.
        backend_directory: a full build's own backend folder, or None.
        source: where it came from, for messages and manifests.
    """

    binary: Path
    library_dirs: tuple[Path, ...] = ()
    python_backend: Path | None = None
    python_stub: Path | None = None
    backend_directory: Path | None = None
    source: str = ""

    def environment(self) -> dict:
        """The server's environment: its libraries, and this interpreter's for the Python stub.

        The stub embeds libpython; with this interpreter's ``bin`` folder first on ``PATH`` it
        finds this environment's site-packages (numpy, onnxruntime), as pytriton does.
        """
        env = dict(os.environ)
        libraries = [str(path) for path in self.library_dirs]
        python_libdir = sysconfig.get_config_var("LIBDIR")
        if self.python_stub is not None and python_libdir and Path(python_libdir).is_dir():
            libraries.insert(0, python_libdir)
        if env.get("LD_LIBRARY_PATH"):
            libraries.append(env["LD_LIBRARY_PATH"])
        if libraries:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(libraries)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env


def python_version_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def locate_tritonserver(tritonserver: str | os.PathLike | None = None) -> TritonInstallation:
    """Find a Triton server: the one given, or the one inside the nvidia-pytriton wheel.

    Args:
        tritonserver: path of a full Triton build's ``tritonserver`` (its ``backends`` folder beside
            ``bin`` is used), or None for the build that ships in nvidia-pytriton.

    Returns:
        The installation, with every path checked to exist.

    Raises:
        ServeError: if the binary, its libraries or the Python backend stub for this Python
            version are missing; the message says how to install them.

    Example:
        >>> installation = locate_tritonserver()
        >>> installation.binary.name
        'tritonserver'
    """
    if tritonserver is not None:
        return _given_build(Path(tritonserver).expanduser())
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServeError(f"the Triton Inference Server is not installed (no nvidia-pytriton); {_INSTALL_HINT}")
    package = Path(list(spec.submodule_search_locations)[0])
    root = package / "tritonserver"
    binary = root / "bin" / "tritonserver"
    libraries = package.parent / "nvidia_pytriton.libs"
    backend = root / "backends" / "python"
    stubs = root / "python_backend_stubs"
    stub = stubs / python_version_tag() / "triton_python_backend_stub"
    for path, what in ((binary, "tritonserver binary"), (libraries, "library folder"),
                       (backend / "libtriton_python.so", "Python backend")):
        if not path.exists():
            raise ServeError(f"nvidia-pytriton at {package} has no {what} ({path}); reinstall it, or {_INSTALL_HINT}")
    if not stub.is_file():
        found = sorted(p.name for p in stubs.iterdir()) if stubs.is_dir() else []
        raise ServeError(
            f"nvidia-pytriton has no Python backend stub for Python {python_version_tag()} "
            f"(it has {', '.join(found) or 'none'}); run edgekit with one of those Pythons"
        )
    try:
        version = metadata.version("nvidia-pytriton")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return TritonInstallation(binary=binary, library_dirs=(libraries,), python_backend=backend,
                              python_stub=stub, source=f"nvidia-pytriton {version}")


def _given_build(binary: Path) -> TritonInstallation:
    if binary.is_dir():
        binary = binary / "bin" / "tritonserver"
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise TritonBinaryError(
            f"--tritonserver {binary} is not an executable file; expected the tritonserver binary "
            "of a full Triton build (e.g. /opt/tritonserver/bin/tritonserver in NVIDIA's container)"
        )
    backends = binary.resolve().parent.parent / "backends"
    return TritonInstallation(binary=binary, backend_directory=backends if backends.is_dir() else None,
                              source=str(binary))


def build_backend_directory(installation: TritonInstallation, folder: str | os.PathLike) -> Path | None:
    """Lay out ``folder/python/`` the way ``--backend-directory`` expects, or use the build's own.

    Returns:
        The folder to pass as ``--backend-directory``, or None to let the server use its default.
    """
    if installation.python_backend is None:
        return installation.backend_directory
    target = Path(folder) / "python"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(installation.python_backend / name, target / name)
    shutil.copy2(installation.python_stub, target / "triton_python_backend_stub")
    return Path(folder)
