"""The ``mobile`` export format: a .tflite, its labels, metadata and a README, as a folder and a .zip."""

from __future__ import annotations

import time

from edgekit.export.common_options import Choice
from edgekit.export.formats import ExportFormat, register_format
from edgekit.export.job import ExportJob
from edgekit.export.tflite import PRECISIONS as TFLITE_PRECISIONS, ensure_tflite
from edgekit.formats.mobile import write_mobile_bundle
from edgekit.manifest import package_version

OPTIONS = (
    Choice("mobile_precision", str, None, "the TFLite precision the mobile bundle ships",
           choices=TFLITE_PRECISIONS,
           default_text="the compress recipe's, else fp32; int8 for a quantization-aware model"),
)


def precision(job: ExportJob) -> str:
    if job.config.mobile_precision:
        return job.config.mobile_precision
    if job.quantization_aware:
        return "int8"
    recipe = job.source.recipe_tflite
    return recipe[1] if recipe is not None else "fp32"


def write(job: ExportJob) -> None:
    shipped = precision(job)
    source = ensure_tflite(job, shipped)
    if source is None:
        job.skip("mobile", "mobile", shipped, f"no TFLite {shipped} file for this model")
        return
    started = time.time()
    dataset = job.source.dataset
    folder = job.staging / "mobile"
    zip_path = job.staging / "mobile.zip"
    metadata = write_mobile_bundle(folder, zip_path, job.staging / source["file"], shipped,
                                   list(dataset.class_names), job.contract_record(),
                                   job.source.name, list(dataset.sample_shape))
    job.add({"name": "mobile", "format": "mobile", "precision": shipped,
             "folder": "mobile", "source_artifact": source["name"],
             "converter": {"name": "edgekit.formats.mobile", "version": package_version("edgekit")},
             "options": {"input_dtype": metadata["input"]["dtype"],
                         "input_quantization": metadata["input"]["quantization"]},
             "fidelity": source["fidelity"], "status": source["status"],
             "seconds": round(time.time() - started, 2),
             "command": job.command("mobile", ("mobile",), mobile_precision=shipped)},
            file=zip_path)


FORMAT = register_format(ExportFormat(
    "mobile", "an app bundle (.tflite, labels, metadata)", write, OPTIONS,
    needs=("tflite",)))
