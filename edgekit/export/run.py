"""``edgekit.export``: every artifact of a model, each checked against the Keras model it came from.

The artifacts land in the model folder's ``export/`` sub-folder (written in a hidden staging
folder and renamed into place, so the model folder's own files never change); the Triton
repository (default ``triton_repo/``) gets a new model version.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit import manifest as manifest_io
from edgekit import outputs
from edgekit.config import shell_command
from edgekit.data.sources import dataset_inputs
from edgekit.errors import ModelError, OptionError, RunFailedError
from edgekit.export import fidelity
from edgekit.export.config import ExportConfig
from edgekit.export.formats import FORMATS
from edgekit.export.job import ExportJob
from edgekit.export.source import resolve_source
from edgekit.models import describe_model
from edgekit.models.keras3 import is_subclassed
from edgekit.models.loading import plain_loading_options
from edgekit.registry import load_plugins

_TRACKED = ("tf2onnx", "onnx", "onnxruntime", "onnxconverter-common", "ai-edge-litert",
            "tritonclient")


@dataclass
class ExportResult:
    """What an export wrote: its folder and manifest (one entry per artifact)."""

    output_dir: Path
    manifest: dict

    @property
    def artifacts(self) -> dict:
        return self.manifest["artifacts"]

    @property
    def passed(self) -> bool:
        return self.manifest["status"] == "complete"

    def path(self, artifact: str) -> Path:
        """Where an artifact's file is (``triton``: the version's model.onnx)."""
        entry = self.artifacts[artifact]
        if entry["format"] == "triton":
            return Path(entry["path"])
        return self.output_dir / entry["file"]

    def table(self) -> str:
        return fidelity.format_table(list(self.artifacts.values()))


class FidelityError(RunFailedError):
    """An artifact disagrees with its Keras model beyond the thresholds (exit code 1).

    The export folder is written all the same, the failed artifacts marked ``failed`` in its
    manifest; ``result`` holds it.
    """

    def __init__(self, message: str, result: ExportResult):
        super().__init__(message)
        self.result = result


def export(model: str | os.PathLike, output_dir: str | os.PathLike | None = None,
           force: bool = False, progress: bool = False, **options) -> ExportResult:
    """Export a model to TFLite, ONNX, a Triton repository and a mobile bundle, and check each.

    Every artifact is compared with the Keras model on the dataset's test split (or the first
    ``samples`` of it): top-1 agreement and max / mean absolute output difference, held to the
    thresholds of its precision. Everything is recorded in ``<output>/manifest.json``.

    Args:
        model: a model folder from ``edgekit train`` / ``compress``, or a .keras / .h5 /
            SavedModel path (then ``dataset`` is required).
        output_dir: the export folder (default ``<model folder>/export``, or
            ``<file's folder>/<stem>-export``).
        force: replace an existing export folder.
        progress: print the input contract line (the CLI does).
        **options: fields of :class:`edgekit.export.config.ExportConfig` (to, opset, samples,
            triton_repository, thresholds, ...).

    Returns:
        An :class:`ExportResult`.

    Raises:
        FidelityError: (exit code 1) when an artifact breaks its thresholds; the folder is
            written all the same, with that artifact marked failed.
        EdgekitError: for bad options, an unconvertible model, corrupt files, outputs that exist.

    Example:
        >>> result = edgekit.export("models/cnn-digits", to="tflite,onnx,triton,mobile")
        >>> print(result.table())
        >>> result.path("onnx-int8")
    """
    if not isinstance(model, (str, os.PathLike)):
        return _export_object(model, output_dir, force, progress, options)
    load_plugins()  # a plug-in's format must be registered before the config is read
    options = dict(options)
    custom_objects = plain_loading_options(options)
    config = ExportConfig.from_options(options)
    source = resolve_source(model, dataset=config.dataset, data_dir=config.data_dir,
                            seed=config.seed, calibration_samples=config.calibration_samples,
                            preprocess=config.preprocess,
                            custom_objects=custom_objects if custom_objects is not None
                            else config.custom_objects,
                            unsafe_deserialization=config.unsafe_deserialization)
    if progress:
        print(source.dataset.contract.line(), flush=True)
    final = Path(output_dir) if output_dir is not None else source.default_output()
    folder_inputs = () if source.folder is None else (
        source.folder / manifest_io.MANIFEST_NAME,
        *(path for path in (source.recipe_tflite[0] if source.recipe_tflite else None,) if path))
    outputs.check_output(final, force, ("export",),
                         inputs=(source.model_file, *folder_inputs,
                                 *dataset_inputs(config.dataset, config.data_dir)))
    formats = FORMATS.ordered(config.to)
    for export_format in formats:
        if export_format.preflight is not None:
            export_format.preflight(config, source)
    with outputs.OutputLock(final):
        staging = outputs.staging_path(final)
        outputs.discard(staging)
        started = time.time()
        x_test, _ = source.dataset.preprocessed("test")
        x = x_test[: config.samples] if config.samples else x_test
        reference = source.model.predict(x, batch_size=256, verbose=0)
        staging.mkdir(parents=True)
        job = ExportJob(source=source, config=config, staging=staging, final=final, x=x,
                        reference=np.asarray(reference, dtype=np.float32))
        try:
            with outputs.writing(final):
                for export_format in formats:
                    export_format.write(job)
            manifest = _manifest(job, formats, time.time() - started)
            manifest_io.write_manifest(staging, manifest)
            outputs.publish(staging, final)
        except BaseException:
            outputs.discard(staging)
            raise
    result = ExportResult(output_dir=final, manifest=manifest)
    failed = [entry["name"] for entry in job.artifacts.values() if entry.get("status") == "failed"]
    if failed:
        raise FidelityError(
            f"{len(failed)} artifact(s) disagree with the Keras model beyond the thresholds: "
            + "; ".join(f"{name}: {', '.join(job.artifacts[name]['fidelity']['failures'])}"
                        for name in failed)
            + f". They are kept, marked failed, in {final / manifest_io.MANIFEST_NAME}; loosen "
            + " / ".join(dict.fromkeys(flag for name in failed
                                       for flag in _threshold_flags(job.artifacts[name]["fidelity"])))
            + " only if that is acceptable", result)
    return result


def _export_object(model, output_dir, force: bool, progress: bool, options: dict) -> ExportResult:
    """A live model object (tf-keras or Keras 3): saved to a scratch folder, exported from there.

    A functional model goes through a .keras file; a subclassed Keras 3 model through its traced
    call (``model.export``, a SavedModel), as post-training quantization sees it.
    """
    name = str(getattr(model, "name", "model"))
    if output_dir is None:
        raise OptionError(f"exporting the in-memory model {name!r} needs output_dir= (it has no "
                          "folder of its own); e.g. export(model, output_dir='exports/mine')")
    if not hasattr(model, "save"):
        raise ModelError(f"export takes a Keras model, a model folder or a model file; received "
                         f"a {type(model).__name__}")
    with tempfile.TemporaryDirectory(prefix="edgekit-object-") as folder:
        if is_subclassed(model):
            path = Path(folder) / name
            with contextlib.redirect_stdout(io.StringIO()):
                model.export(str(path), verbose=False)
        else:
            path = Path(folder) / f"{name}.keras"
            model.save(path)
        return export(path, output_dir=output_dir, force=force, progress=progress, **options)


def _threshold_flags(fidelity_record: dict) -> list[str]:
    kind = fidelity_record["thresholds"]["class"]
    flags = []
    for failure in fidelity_record["failures"]:
        flags.append(f"--{kind}-max-abs-diff" if failure.startswith("max abs diff")
                     else f"--{kind}-min-agreement")
    return flags


def _manifest(job: ExportJob, formats: list, seconds: float) -> dict:
    source, config = job.source, job.config
    failed = any(entry.get("status") == "failed" for entry in job.artifacts.values())
    return {
        "kind": "export",
        "stage": "export",
        "name": job.final.name,
        "status": "failed" if failed else "complete",
        "created": manifest_io.now(),
        "parent": source.parent_record(),
        "command": shell_command("edgekit", ["export", str(source.path), *config.to_cli_args(),
                                             "--output", str(job.final)]),
        "config": config.to_dict(),
        # The module that wrote each format, in the order they ran: a plug-in's is named too.
        "formats": {export_format.name: export_format.write.__module__ for export_format in formats},
        "dataset": source.dataset.describe(),
        "input_contract": source.dataset.contract.to_dict(),
        "model": {**describe_model(source.model),
                  **(source.settings.record() if source.settings is not None else {})},
        "fidelity": {"split": "test", "samples": int(len(job.x)),
                     "reference": str(source.model_file),
                     "calibration": {"samples": int(len(job.calibration()))
                                     if job._calibration is not None else None,
                                     "seed": source.seed}},
        "artifacts": job.artifacts,
        "runtime": {"seconds": round(seconds, 2)},
        "versions": manifest_io.versions(_TRACKED),
        "machine": manifest_io.machine(),
    }
