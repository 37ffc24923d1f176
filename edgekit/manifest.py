"""The manifest every artifact folder carries: what made it, from what, how, and what it measured."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path

from edgekit.errors import ModelError

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
_TRACKED_PACKAGES = ("edgekit", "tensorflow", "tf-keras", "numpy", "scikit-learn")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_version(package: str) -> str:
    """The installed version of ``package``, or "unknown" (for messages and converter records)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def versions(extra_packages: tuple[str, ...] = ()) -> dict:
    """Versions of Python and of the packages that decide what an artifact contains."""
    found = {"python": platform.python_version()}
    for package in (*_TRACKED_PACKAGES, *extra_packages):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def machine() -> dict:
    """CPU model, flags that matter for inference speed, core count and OS."""
    cpu_model, flags = platform.processor() or "", set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and not cpu_model.strip(":"):
                    cpu_model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return {
        "cpu": cpu_model or platform.machine(),
        "cpu_flags": [flag for flag in wanted if flag in flags],
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
    }


def file_entries(folder: str | os.PathLike) -> dict:
    """``{relative path: {"sha256", "bytes"}}`` for every file below ``folder`` but the manifest."""
    folder = Path(folder)
    entries = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative == MANIFEST_NAME:
            continue
        entries[relative] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return entries


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_manifest(folder: str | os.PathLike, manifest: dict) -> Path:
    """Write ``manifest`` as ``folder/manifest.json`` atomically, with every file's sha256."""
    folder = Path(folder)
    manifest = dict(manifest)
    manifest.setdefault("schema_version", SCHEMA_VERSION)
    manifest["files"] = file_entries(folder)
    path = folder / MANIFEST_NAME
    temporary = folder / f".{MANIFEST_NAME}.tmp"
    try:
        temporary.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=_plain) + "\n")
        os.replace(temporary, path)
    except OSError as error:  # a write() error carries no path: name the manifest
        temporary.unlink(missing_ok=True)
        if error.filename is None and error.errno is not None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    return path


def read_manifest(folder: str | os.PathLike) -> dict:
    """Read a model folder's manifest, or raise ModelError saying what is wrong with it."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(
            f"{folder} has no {MANIFEST_NAME}; expected a model folder written by edgekit "
            "(edgekit train / compress). Pass a model file instead, or re-run the stage"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{path} is not valid JSON ({error}); re-run the stage that wrote it") \
            from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("model", {}), dict) \
            or not isinstance(manifest.get("config", {}), dict) \
            or not isinstance(manifest.get("dataset", {}), dict):
        raise ModelError(f"{path} holds a {type(manifest).__name__} that is not an edgekit "
                         "manifest (expected an object with model, config and dataset entries); "
                         "re-run the stage that wrote it")
    return manifest


def _plain(value):
    """JSON for numpy scalars and paths, which manifests meet often."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} to a manifest")
