"""Deploying a model to Triton: its ONNX artifact as a new version, loaded by a running server.

``deploy_triton`` takes the model folder's ONNX file of the chosen precision from its exports
(exporting it first, into ``<model>/export-onnx-<precision>``, when no export has it), adds it to
the repository as the model's next version with :func:`edgekit.formats.triton.add_model_version`,
keeping the model's batching, instances and version policy, and, given a server URL, makes that
server load it without a restart.

The model folder and its exports are read through :class:`edgekit.models.folder.ModelFolder`; the
new version is fitted to the model the repository holds by :mod:`edgekit.serve.reconcile`, and a
running server loads it through :mod:`edgekit.serve.reload` (a server started by ``edgekit serve``
re-stages it first; it must run with ``--model-control explicit``).

Example:
    >>> result = deploy_triton("models/cnn-digits", precision="int8",
    ...                        reload_url="http://127.0.0.1:8000")
    >>> result.version, result.reload["ready_versions"]
    (2, [2])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgekit.config import shell_command
from edgekit.errors import OptionError, RunFailedError
from edgekit.export import export
from edgekit.formats.triton import add_model_version, check_model_name
from edgekit.models.folder import Artifact, ModelFolder, NotAModelFolderError, safe_model_name
from edgekit.serve.reconcile import reconcile_version
from edgekit.serve.reload import check_server, reload_model

PRECISIONS = ("fp32", "fp16", "int8")


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
    if precision not in PRECISIONS:
        raise OptionError(f"unknown precision {precision!r}; expected one of: {', '.join(PRECISIONS)}")
    folder = _open_model(model)
    if reload_url:  # an unreachable server or one on another repository: fail before writing
        check_server(reload_url, repository, timeout)
    artifact = _onnx_artifact(folder, precision)
    exported = artifact is None
    artifact = artifact or _export_onnx(folder, precision)
    onnx_file, export_dir, entry = artifact.verify(), artifact.folder.path, artifact.entry
    model_name = check_model_name(model_name or safe_model_name(folder.model_name))
    class_names, options = reconcile_version(Path(repository) / model_name, onnx_file)
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
        ModelError: for a folder edgekit did not write, or a broken manifest among its exports.
    """
    artifact = _onnx_artifact(ModelFolder.open(folder), precision)
    return (artifact.folder.path, artifact.entry) if artifact is not None else None


def _onnx_artifact(folder: ModelFolder, precision: str) -> Artifact | None:
    """The newest ``onnx-<precision>`` among the exports, passed ones first; a failed one is refused."""
    artifact = folder.find_artifact(f"onnx-{precision}")
    if artifact is None:
        return None
    if artifact.status != "passed":
        failures = artifact.entry.get("fidelity", {}).get("failures", [])
        raise RunFailedError(
            f"the onnx-{precision} artifact in {artifact.folder.path} failed its fidelity check "
            f"({', '.join(failures) or artifact.status}); deploy refuses it. Export it again with "
            "looser thresholds if that is acceptable, or deploy another --precision"
        )
    return artifact


def _open_model(model) -> ModelFolder:
    """The model folder (or export folder) to deploy from."""
    try:
        return ModelFolder.open(model)
    except NotAModelFolderError as error:
        raise OptionError(
            f"deploy takes a model folder from edgekit train / compress (or one of its export "
            f"folders); received {str(model)!r}, which has no edgekit manifest.json. For a model file, "
            "run `edgekit export FILE --dataset NAME --to onnx` and deploy its export folder"
        ) from error


def _export_onnx(folder: ModelFolder, precision: str) -> Artifact:
    """Export the ONNX file of ``precision`` into ``<model>/export-onnx-<precision>``."""
    if folder.is_export:
        raise OptionError(f"export folder {folder.path} has no onnx-{precision} artifact; deploy the model "
                          f"folder it came from (deploy exports it), or pick a precision it has")
    output = folder.path / f"export-onnx-{precision}"
    result = export(folder.path, output_dir=output, force=True, to=("onnx",), onnx_precisions=(precision,))
    entry = result.artifacts.get(f"onnx-{precision}", {})
    if entry.get("status") != "passed":
        raise OptionError(f"export did not produce onnx-{precision} for {folder.path}: "
                          f"{entry.get('reason', entry.get('status', 'no artifact'))}; deploy another --precision")
    return ModelFolder.open(output).find_artifact(f"onnx-{precision}")


def _command(model, repository, precision: str, model_name: str) -> str:
    return shell_command("edgekit", ["deploy", "triton", str(model), "--repository", str(repository),
                                     "--precision", precision, "--model-name", model_name])


__all__ = ["PRECISIONS", "DeployResult", "deploy_triton", "find_onnx_artifact"]
