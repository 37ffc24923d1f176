"""Deploying a model to Triton: its ONNX artifact as a new version, loaded by a running server.

``deploy_triton`` takes the model folder's ONNX file of the chosen precision from its exports
(exporting it first, into ``<model>/export-onnx-<precision>``, when no export has it), adds it to
the repository as the model's next version with :func:`edgekit.formats.triton.add_model_version`,
keeping the model's batching, instances and version policy, and, given a server URL, makes that
server load it without a restart.

A server started by ``edgekit serve`` runs a staging copy of the repository (see
:mod:`edgekit.serve.staging`); each staged config tells where the copy and its source are. Reload
reads them from the server, checks the server serves the repository deployed into, re-stages the
model there and calls Triton's load API (the server must run with ``--model-control explicit``).
A full Triton serving the repository itself (``--backend native``) is simply asked to load.

Example:
    >>> result = deploy_triton("models/cnn-digits", precision="int8",
    ...                        reload_url="http://127.0.0.1:8000")
    >>> result.version, result.reload["ready_versions"]
    (2, [2])
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from edgekit import manifest as manifest_io
from edgekit.errors import ModelError, OptionError
from edgekit.errors import RepositoryError, ServeError

PRECISIONS = ("fp32", "fp16", "int8")
EXPORT_STAGE = "export"
# Triton's message when a server does not allow explicit load / unload (mode none or poll).
_NOT_EXPLICIT = "explicit model load / unload is not allowed"
# How long to let a server in poll mode find a new version (edgekit serve polls every 2 s).
_POLL_WAIT = 6.0


@dataclass
class DeployResult:
    """What a deploy did.

    Attributes:
        model_name: the model's name in the repository.
        version: the version added.
        versions: every version the repository now holds for the model.
        repository: the repository folder.
        onnx_file: the ONNX file deployed (copied into the version folder).
        artifact: the export manifest's entry for that file (name, precision, sha256, fidelity).
        export_dir: the export folder it came from.
        exported: True when deploy ran the export because no export had that precision.
        reload: None without a server; else ``{"url", "staged", "ready_versions"}``.
    """

    model_name: str
    version: int
    versions: list[int]
    repository: Path
    onnx_file: Path
    artifact: dict
    export_dir: Path
    exported: bool
    reload: dict | None = None


def deploy_triton(model: str | os.PathLike, repository: str | os.PathLike = "triton_repo",
                  precision: str = "fp32", reload_url: str | None = None,
                  model_name: str | None = None, timeout: float = 60.0) -> DeployResult:
    """Add a model's ONNX artifact to a Triton repository as a new version, optionally reloading.

    Args:
        model: a model folder from ``edgekit train`` / ``compress``, or one of its export folders.
        repository: the Triton model repository (created if missing).
        precision: the ONNX precision to deploy: fp32, fp16 or int8.
        reload_url: a server (``edgekit serve --model-control explicit``) to load the new version.
        model_name: the name in the repository; default the model folder's name.
        timeout: seconds to wait for the server to load the version.

    Returns:
        A :class:`DeployResult`.

    Raises:
        OptionError: for an unknown precision, a model that is not a folder edgekit wrote, or an
            artifact export skipped (e.g. fp32 of a quantization-aware model).
        ModelError: for an export whose file is missing or changed since it was checked.
        RepositoryError: when the new version's inputs or outputs differ from the model's config.
        FidelityError: when deploy's own export fails the fidelity check (exit code 1).
        ServeError: when the server cannot be reached, serves another repository, was not started
            with ``--model-control explicit``, or does not get the version ready.
    """
    from edgekit.formats.triton import add_model_version, check_model_name

    if precision not in PRECISIONS:
        raise OptionError(f"unknown precision {precision!r}; expected one of: {', '.join(PRECISIONS)}")
    folder, name = _model_folder(model)
    if reload_url:  # an unreachable server or one on another repository: fail before writing
        check_server(reload_url, repository, timeout)
    found = find_onnx_artifact(folder, precision)
    exported = found is None
    export_dir, entry = found or _export_onnx(folder, precision)
    onnx_file = _checked_file(export_dir, entry)
    model_name = check_model_name(model_name or _repository_name(name))
    class_names, options = _model_settings(Path(repository) / model_name, onnx_file)
    lineage = {"deployed_by": "edgekit deploy triton", "export": str(export_dir.resolve()),
               "artifact": entry["name"], "sha256": entry["sha256"], "model": str(Path(model).resolve()),
               "command": _command(model, repository, precision, model_name)}
    added = add_model_version(repository, model_name, onnx_file, class_names=class_names,
                              lineage=lineage, **options)
    result = DeployResult(model_name=model_name, version=added["version"], versions=added["versions"],
                          repository=Path(repository), onnx_file=onnx_file, artifact=entry,
                          export_dir=export_dir, exported=exported)
    if reload_url:
        result.reload = reload_model(reload_url, repository, model_name, added["version"], timeout)
    return result


def find_onnx_artifact(folder: str | os.PathLike, precision: str) -> tuple[Path, dict] | None:
    """The newest passed ``onnx-<precision>`` among a model folder's exports (or an export folder's).

    Returns:
        ``(export folder, manifest entry)``, or None when no export has that precision.

    Raises:
        RunFailedError: when every export of that precision failed its fidelity check.
    """
    from edgekit.errors import RunFailedError

    folder = Path(folder)
    exports = [folder] if _stage(folder) == EXPORT_STAGE else \
        [sub for sub in sorted(folder.iterdir()) if sub.is_dir() and _stage(sub) == EXPORT_STAGE]
    found = []
    for export_dir in exports:
        manifest = manifest_io.read_manifest(export_dir)
        entry = manifest.get("artifacts", {}).get(f"onnx-{precision}")
        if entry and entry.get("file"):
            found.append((entry.get("status") == "passed", manifest.get("created", ""), export_dir, entry))
    if not found:
        return None
    passed, _, export_dir, entry = max(found, key=lambda item: item[:2])
    if not passed:
        raise RunFailedError(
            f"the onnx-{precision} artifact in {export_dir} failed its fidelity check "
            f"({', '.join(entry.get('fidelity', {}).get('failures', [])) or entry.get('status')}); "
            "deploy refuses it. Export it again with looser thresholds if that is acceptable, or "
            "deploy another --precision"
        )
    return export_dir, entry


def reload_model(url: str, repository: str | os.PathLike, model_name: str, version: int | None = None,
                 timeout: float = 60.0) -> dict:
    """Make the server at ``url`` load ``model_name`` as the repository now holds it.

    Returns:
        ``{"url", "staged" (the staging copy re-staged, or None), "ready_versions"}``.

    Raises:
        ServeError: see :func:`deploy_triton`.
    """
    from edgekit.runtimes.triton_client import TritonClient
    from edgekit.serve.staging import restage_model

    with TritonClient(url, timeout=timeout) as client:
        staged = served_staging(client, repository, model_name)
        if staged is not None:
            restage_model(repository, staged, model_name)
        try:
            client.load_model(model_name)
        except ServeError as error:
            if _NOT_EXPLICIT not in str(error):
                raise
            # Mode "poll" finds the (re-staged) version itself within its poll interval; mode
            # "none" never does, and Triton's refusal is the same for both.
            if version is None or not _wait_ready(client, model_name, version, _POLL_WAIT):
                raise ServeError(
                    f"Triton at {client.url} does not load models on request (it was started without "
                    "--model-control explicit); the version is in the repository: restart that server, "
                    "or serve with `edgekit serve --model-control explicit` to deploy without restarts"
                ) from None
        ready = [known for known in _versions(client, model_name) if _ready(client, model_name, known)]
        if version is not None and version not in ready:
            raise ServeError(
                f"Triton at {client.url} loaded model {model_name!r} but version {version} is not "
                f"ready (ready: {ready or 'none'}); check the model's version_policy in "
                f"{Path(repository) / model_name / 'config.pbtxt'} and the server log"
            )
    return {"url": client.url, "staged": str(staged) if staged else None, "ready_versions": ready}


def _wait_ready(client, model_name: str, version: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _ready(client, model_name, version):
            return True
        time.sleep(0.25)
    return False


def _ready(client, model_name: str, version: int) -> bool:
    from edgekit.errors import InferenceError

    try:
        return client.is_model_ready(model_name, str(version))
    except InferenceError:  # gRPC refuses a readiness question about a version it does not know
        return False


def check_server(url: str, repository: str | os.PathLike, timeout: float = 10.0) -> Path | None:
    """Check the server at ``url`` answers and serves ``repository``; return its staging copy.

    Raises:
        ServeError: see :func:`served_staging`, or when the server cannot be reached.
    """
    from edgekit.runtimes.triton_client import TritonClient

    with TritonClient(url, timeout=timeout) as client:
        return served_staging(client, repository)


def served_staging(client, repository: str | os.PathLike, model_name: str = "") -> Path | None:
    """The staging copy the server runs for ``repository``, or None for a server on it directly.

    Raises:
        ServeError: when the server runs a staging copy of another repository.
    """
    from edgekit.serve.staging import SOURCE_REPOSITORY_PARAMETER, STAGED_REPOSITORY_PARAMETER

    repository = Path(repository).resolve()
    names = sorted({entry["name"] for entry in client.models() if entry.get("state") == "READY"},
                   key=lambda name: name != model_name)  # this model's own config first
    for name in names:
        parameters = client.config(name).get("parameters") or {}
        source = _parameter(parameters, SOURCE_REPOSITORY_PARAMETER)
        staged = _parameter(parameters, STAGED_REPOSITORY_PARAMETER)
        if not source or not staged:
            continue
        if Path(source).resolve() != repository:
            raise ServeError(
                f"Triton at {client.url} serves repository {source}, not {repository}; pass "
                f"--repository {source}, or --reload the URL of the server on {repository}"
            )
        if not Path(staged).is_dir():
            raise ServeError(f"Triton at {client.url} runs the staging copy {staged}, which this machine "
                             "does not have; run deploy on the server's machine")
        return Path(staged)
    return None


def _parameter(parameters: dict, key: str) -> str:
    value = parameters.get(key)
    return value.get("string_value", "") if isinstance(value, dict) else str(value or "")


def _versions(client, model_name: str) -> list[int]:
    return sorted({int(entry["version"]) for entry in client.models()
                   if entry.get("name") == model_name and str(entry.get("version", "")).isdigit()})


def _stage(folder: Path) -> str | None:
    path = folder / manifest_io.MANIFEST_NAME
    if not path.is_file():
        return None
    return manifest_io.read_manifest(folder).get("stage")  # a malformed one: ModelError


def _model_folder(model) -> tuple[Path, str]:
    """The folder to search (model or export folder) and the model's name."""
    folder = Path(model).expanduser()
    stage = _stage(folder) if folder.is_dir() else None
    if stage is None:
        raise OptionError(
            f"deploy takes a model folder from edgekit train / compress (or one of its export "
            f"folders); received {str(model)!r}, which has no edgekit manifest.json. For a model file, "
            "run `edgekit export FILE --dataset NAME --to onnx` and deploy its export folder"
        )
    if stage != EXPORT_STAGE:
        return folder, folder.resolve().name
    parent = manifest_io.read_manifest(folder).get("parent", {}).get("path")
    return folder, Path(parent).resolve().name if parent else folder.resolve().parent.name


def _export_onnx(folder: Path, precision: str) -> tuple[Path, dict]:
    """Export the ONNX file of ``precision`` into ``<model>/export-onnx-<precision>``."""
    from edgekit.export import export

    if _stage(folder) == EXPORT_STAGE:
        raise OptionError(f"export folder {folder} has no onnx-{precision} artifact; deploy the model "
                          f"folder it came from (deploy exports it), or pick a precision it has")
    output = folder / f"export-onnx-{precision}"
    result = export(folder, output_dir=output, force=True, to=("onnx",), onnx_precisions=(precision,))
    entry = result.artifacts.get(f"onnx-{precision}", {})
    if entry.get("status") != "passed":
        raise OptionError(f"export did not produce onnx-{precision} for {folder}: "
                          f"{entry.get('reason', entry.get('status', 'no artifact'))}; deploy another --precision")
    return output, entry


def _checked_file(export_dir: Path, entry: dict) -> Path:
    path = export_dir / entry["file"]
    if not path.is_file():
        raise ModelError(f"{path} is missing (listed in {export_dir / manifest_io.MANIFEST_NAME}); "
                         "export the model again")
    if entry.get("sha256") and manifest_io.sha256_file(path) != entry["sha256"]:
        raise ModelError(f"{path} changed since it was exported and checked (sha256 differs from its "
                         "manifest); export the model again")
    return path


def _repository_name(name: str) -> str:
    from edgekit.export.writers import _triton_name  # the name `edgekit export --to triton` gives

    return _triton_name(name)


def _model_settings(model_folder: Path, onnx_file: Path) -> tuple[list[str] | None, dict]:
    """Class names and config options for the new version, the model's own when it exists.

    Raises:
        RepositoryError: when the model exists with another platform or other inputs / outputs.
    """
    import onnx

    from edgekit.formats.triton import CONFIG_FILENAME, LABELS_FILENAME, PLATFORM, build_model_config, \
        read_model_config

    proto = onnx.load(str(onnx_file), load_external_data=False)
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    class_names = json.loads(metadata["edgekit.class_names"]) if "edgekit.class_names" in metadata else None
    if not (model_folder / CONFIG_FILENAME).is_file():
        return class_names, {}
    existing = read_model_config(model_folder)
    if existing.platform != PLATFORM:
        raise RepositoryError(
            f"model {model_folder.name!r} in {model_folder.parent} has platform/backend "
            f"{existing.platform or existing.backend!r}; deploy adds ONNX versions to {PLATFORM} "
            "models only; pass another --model-name"
        )
    if class_names is None and (model_folder / LABELS_FILENAME).is_file():
        class_names = (model_folder / LABELS_FILENAME).read_text().splitlines()
    options = _config_options(existing)
    new = build_model_config(model_folder.name, proto, labels=False, **options)
    for kind in ("input", "output"):
        before = [(t.name, t.data_type, list(t.dims)) for t in getattr(existing, kind)]
        after = [(t.name, t.data_type, list(t.dims)) for t in getattr(new, kind)]
        if before != after:
            raise RepositoryError(
                f"{onnx_file.name} has {kind}s {after} but model {model_folder.name!r} serves {before}; "
                "Triton serves every version with one config, so deploy it under another --model-name"
            )
    return class_names, options


def _config_options(config) -> dict:
    """``add_model_version`` options that rebuild ``config``'s batching, instances and policy."""
    policy = config.version_policy
    which = policy.WhichOneof("policy_choice")
    version_policy = {"all": "all", "specific": f"specific:{','.join(map(str, policy.specific.versions))}",
                      "latest": f"latest:{policy.latest.num_versions}"}.get(which, "latest:1")
    options = {"max_batch_size": config.max_batch_size, "version_policy": version_policy}
    if config.HasField("dynamic_batching"):
        options["preferred_batch_sizes"] = tuple(config.dynamic_batching.preferred_batch_size)
        options["max_queue_delay_us"] = config.dynamic_batching.max_queue_delay_microseconds
    if config.instance_group:
        group = config.instance_group[0]
        options["instance_count"] = group.count or 1
        options["instance_kind"] = "gpu" if group.kind == group.KIND_GPU else "cpu"
    return options


def _command(model, repository, precision: str, model_name: str) -> str:
    from edgekit.config import shell_command

    return shell_command("edgekit", ["deploy", "triton", str(model), "--repository", str(repository),
                                     "--precision", precision, "--model-name", model_name])


__all__ = ["PRECISIONS", "DeployResult", "check_server", "deploy_triton", "find_onnx_artifact",
           "reload_model", "served_staging"]
