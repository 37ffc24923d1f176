"""The ``tflite`` export format: one .tflite per precision, converted or reused from compress."""

from __future__ import annotations

import shutil
import time

from edgekit.export import fidelity
from edgekit.export.common_options import ListOption
from edgekit.export.formats import ExportFormat, register_format
from edgekit.export.job import ExportJob
from edgekit.formats.tflite import TFLITE_MODES, convert_to_tflite
from edgekit.manifest import package_version
from edgekit.runtimes.litert import LiteRTModel

PRECISIONS = ("fp32", "dynamic", "fp16", "int8", "int16x8")

OPTIONS = (
    ListOption("tflite_precisions", str, None, "the TFLite precisions to write",
               choices=PRECISIONS, noun="precision", example="fp32,int8",
               default_text="fp32 plus the compress recipe's; int8 for a quantization-aware model"),
)


def precisions(job: ExportJob) -> tuple[str, ...]:
    """fp32 plus the recipe's precision, unless the config names them (QAT models: int8 only)."""
    if job.config.tflite_precisions is not None:
        return job.config.tflite_precisions
    if job.quantization_aware:
        return ("int8",)
    recipe = job.source.recipe_tflite
    return ("fp32",) if recipe is None or recipe[1] == "fp32" else ("fp32", recipe[1])


def write(job: ExportJob) -> None:
    for precision in precisions(job):
        ensure_tflite(job, precision)


def ensure_tflite(job: ExportJob, precision: str) -> dict | None:
    """The ``tflite-<precision>`` artifact, converted (or reused from compress) and checked.

    Returns its manifest entry, or None when the model cannot have it (a QAT model in fp32).
    """
    name = f"tflite-{precision}"
    if name in job.artifacts:
        return job.artifacts[name]
    path = job.staging / f"model_{precision}.tflite"
    started = time.time()
    recipe = job.source.recipe_tflite
    if recipe is not None and recipe[1] == precision:
        LiteRTModel.load(recipe[0])  # a corrupt or truncated file fails here, cleanly
        shutil.copyfile(recipe[0], path)
        converter = {"name": "reused", "from": str(recipe[0]),
                     "note": "the compress recipe's file, not converted again"}
        options = {"mode": precision}
    else:
        if job.quantization_aware and precision != "int8":
            job.skip(name, "tflite", precision,
                     "a quantization-aware model converts to int8 only")
            return None
        mode = TFLITE_MODES.get(precision)
        samples = job.calibration() if mode.representative_data == "required" else None
        path.write_bytes(convert_to_tflite(job.source.model, precision, representative_data=samples))
        converter = {"name": "tensorflow.lite.TFLiteConverter",
                     "version": package_version("tensorflow")}
        options = {"mode": precision, "summary": mode.summary}
        if samples is not None:
            options.update(calibration_samples=int(len(samples)), calibration_seed=job.source.seed)
    outputs_ = fidelity.outputs_of(path, job.x)
    return job.add({"name": name, "format": "tflite", "precision": precision,
                    "converter": converter, "options": options,
                    "seconds": round(time.time() - started, 2),
                    "command": job.command(name, ("tflite",), tflite_precisions=(precision,))},
                   file=path, outputs_=outputs_)


FORMAT = register_format(ExportFormat(
    "tflite", "a .tflite per precision", write, OPTIONS))
