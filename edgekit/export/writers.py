"""The format writers: TFLite, ONNX, Triton and the mobile bundle, each registered by name.

A writer takes the :class:`ExportJob` and records each artifact it writes (file, sha256,
converter, options, fidelity, reproduce command) with ``job.add``. A writer that needs another
format's file asks for it with ``ensure_tflite`` / ``ensure_onnx``, which convert once.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from edgekit.export.job import WRITERS, ExportJob


# --- TFLite -------------------------------------------------------------------------------


def tflite_precisions(job: ExportJob) -> tuple[str, ...]:
    """fp32 plus the recipe's precision, unless the config names them (QAT models: int8 only)."""
    if job.config.tflite_precisions is not None:
        return job.config.tflite_precisions
    if job.quantization_aware:
        return ("int8",)
    recipe = job.source.recipe_tflite
    return ("fp32",) if recipe is None or recipe[1] == "fp32" else ("fp32", recipe[1])


@WRITERS.register("tflite")
def write_tflite(job: ExportJob) -> None:
    for precision in tflite_precisions(job):
        ensure_tflite(job, precision)


def ensure_tflite(job: ExportJob, precision: str) -> dict | None:
    """The ``tflite-<precision>`` artifact, converted (or reused from compress) and checked."""
    from edgekit.formats.tflite import TFLITE_MODES, convert_to_tflite
    from edgekit.runtimes.litert import LiteRTModel

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
        converter = {"name": "tensorflow.lite.TFLiteConverter", "version": _version("tensorflow")}
        options = {"mode": precision, "summary": mode.summary}
        if samples is not None:
            options.update(calibration_samples=int(len(samples)), calibration_seed=job.source.seed)
    outputs_ = LiteRTModel.load(path).run(job.x)
    return job.add({"name": name, "format": "tflite", "precision": precision,
                    "converter": converter, "options": options,
                    "seconds": round(time.time() - started, 2),
                    "command": job.command(name, ("tflite",), tflite_precisions=(precision,))},
                   file=path, outputs_=outputs_)


# --- ONNX ---------------------------------------------------------------------------------


def onnx_precisions(job: ExportJob) -> tuple[str, ...]:
    return ("int8",) if job.quantization_aware else job.config.onnx_precisions


@WRITERS.register("onnx")
def write_onnx(job: ExportJob) -> None:
    requested = job.config.onnx_precisions
    for precision in requested:
        if job.quantization_aware and precision != "int8":
            job.skip(f"onnx-{precision}", "onnx", precision,
                     "a quantization-aware model converts to a QDQ (int8) graph only")
            continue
        ensure_onnx(job, precision)


def ensure_onnx(job: ExportJob, precision: str) -> dict:
    """The ``onnx-<precision>`` artifact, converted, passed through onnx.checker and checked."""
    import onnx

    from edgekit.formats import onnx as onnx_export
    from edgekit.runtimes.onnxruntime import OnnxRuntimeModel

    name = f"onnx-{precision}"
    if name in job.artifacts:
        return job.artifacts[name]
    path = job.staging / f"model_{precision}.onnx"
    opset = job.config.opset
    started = time.time()
    options = {"opset": opset, "batch_axis": onnx_export.BATCH_AXIS_NAME}
    qat_model = job.source.qat_model
    if precision == "int8" and qat_model is not None:
        proto = onnx_export.convert_to_onnx(qat_model, opset)
        converter = {"name": "tf2onnx", "version": onnx_export.converter_version(),
                     "note": "quantization-aware model: its learned ranges kept as QDQ"}
        options["quantization"] = "QAT (QDQ from the fake-quant nodes)"
    elif precision == "fp32":
        proto = _onnx_fp32(job)
        converter = {"name": "tf2onnx", "version": onnx_export.converter_version()}
    elif precision == "fp16":
        proto = onnx_export.to_float16(_onnx_fp32(job))
        converter = {"name": "tf2onnx + onnxconverter_common.float16",
                     "version": f"{onnx_export.converter_version()} + "
                                f"{_version('onnxconverter-common')}"}
        options["keep_io_types"] = True
    else:
        fp32_path = job.staging / ".int8-source.onnx"
        onnx.save(_onnx_fp32(job), str(fp32_path))
        options.update(onnx_export.quantize_int8(fp32_path, path, job.calibration()))
        options["calibration_seed"] = job.source.seed
        fp32_path.unlink()
        proto = onnx.load(str(path))
        converter = {"name": "onnxruntime.quantization.quantize_static",
                     "version": _version("onnxruntime")}
    onnx_export.set_metadata(proto, _onnx_metadata(job, precision))
    onnx.save(proto, str(path))
    onnx_export.check_onnx_file(path)
    outputs_ = OnnxRuntimeModel.load(path).run(job.x)
    overrides = {"onnx_precisions": (precision,)}
    return job.add({"name": name, "format": "onnx", "precision": precision,
                    "converter": converter, "options": options,
                    "seconds": round(time.time() - started, 2),
                    "command": job.command(name, ("onnx",), **overrides)},
                   file=path, outputs_=outputs_)


def _onnx_fp32(job: ExportJob):
    from edgekit.formats.onnx import convert_to_onnx

    if job._onnx_fp32 is None:
        job._onnx_fp32 = convert_to_onnx(job.source.model, job.config.opset)
    return job._onnx_fp32


def contract_record(dataset) -> dict:
    """The preprocessing (scale, mean, std) plus the input contract's source and raw data range.

    What the ONNX metadata, the Triton config parameter and the mobile bundle carry: a client
    needs the numbers, and a person needs to see where they came from.
    """
    record = dataset.preprocessing.to_dict()
    if dataset.contract is not None:
        record.update(source=dataset.contract.source, detail=dataset.contract.detail,
                      raw=dataset.contract.raw)
    return record


def _onnx_metadata(job: ExportJob, precision: str) -> dict:
    import json

    dataset = job.source.dataset
    return {"edgekit.source": job.source.name, "edgekit.precision": precision,
            "edgekit.class_names": json.dumps(list(dataset.class_names)),
            "edgekit.preprocessing": json.dumps(contract_record(dataset))}


# --- Triton -------------------------------------------------------------------------------


def triton_precision(job: ExportJob) -> str:
    if job.config.triton_precision:
        return job.config.triton_precision
    return "int8" if job.quantization_aware else "fp32"


@WRITERS.register("triton")
def write_triton(job: ExportJob) -> None:
    from edgekit.formats.triton import add_model_version, check_model_name

    config = job.config
    precision = triton_precision(job)
    model_name = check_model_name(config.triton_model_name or _triton_name(job.source.name))
    source = ensure_onnx(job, precision)
    if source.get("status") != "passed":
        job.skip("triton", "triton", precision,
                 f"its ONNX file ({source['name']}) failed the fidelity check; the repository "
                 "was left unchanged")
        return
    started = time.time()
    options = {"max_batch_size": config.max_batch_size,
               "preferred_batch_sizes": tuple(config.preferred_batch_sizes),
               "max_queue_delay_us": config.max_queue_delay_us,
               "instance_count": config.instance_count, "instance_kind": config.instance_kind,
               "version_policy": config.version_policy}
    lineage = {"export": str(job.final.resolve()), "artifact": source["name"],
               "sha256": source["sha256"], "model": str(job.source.path),
               "command": job.command("triton", ("triton",))}
    added = add_model_version(
        config.triton_repository, model_name, job.staging / source["file"],
        class_names=list(job.source.dataset.class_names), lineage=lineage,
        max_batch_size=options["max_batch_size"],
        preferred_batch_sizes=options["preferred_batch_sizes"],
        max_queue_delay_us=options["max_queue_delay_us"],
        instance_count=options["instance_count"], instance_kind=options["instance_kind"],
        version_policy=options["version_policy"])
    job.add({"name": "triton", "format": "triton", "precision": precision,
             "repository": str(Path(config.triton_repository).resolve()),
             "model_name": model_name, "version": added["version"], "path": added["path"],
             "config": added["config"], "versions": added["versions"],
             "file": None, "bytes": source["bytes"], "sha256": source["sha256"],
             "source_artifact": source["name"],
             "converter": {"name": "edgekit.formats.triton (Triton ModelConfig protobuf)",
                           "version": _version("tritonclient")},
             "options": {**options, "preferred_batch_sizes": list(options["preferred_batch_sizes"]),
                         "platform": "onnxruntime_onnx"},
             "fidelity": source["fidelity"], "status": source["status"],
             "seconds": round(time.time() - started, 2),
             "command": job.command("triton", ("triton",))})


def _triton_name(name: str) -> str:
    import re

    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip("_.-")
    return cleaned or "model"


# --- Mobile bundle ------------------------------------------------------------------------


def mobile_precision(job: ExportJob) -> str:
    if job.config.mobile_precision:
        return job.config.mobile_precision
    if job.quantization_aware:
        return "int8"
    recipe = job.source.recipe_tflite
    return recipe[1] if recipe is not None else "fp32"


@WRITERS.register("mobile")
def write_mobile(job: ExportJob) -> None:
    from edgekit.formats.mobile import write_mobile_bundle

    precision = mobile_precision(job)
    source = ensure_tflite(job, precision)
    if source is None:
        job.skip("mobile", "mobile", precision, f"no TFLite {precision} file for this model")
        return
    started = time.time()
    dataset = job.source.dataset
    folder = job.staging / "mobile"
    zip_path = job.staging / "mobile.zip"
    metadata = write_mobile_bundle(folder, zip_path, job.staging / source["file"], precision,
                                   list(dataset.class_names), contract_record(dataset),
                                   job.source.name, list(dataset.sample_shape))
    job.add({"name": "mobile", "format": "mobile", "precision": precision,
             "folder": "mobile", "source_artifact": source["name"],
             "converter": {"name": "edgekit.formats.mobile", "version": _version("edgekit")},
             "options": {"input_dtype": metadata["input"]["dtype"],
                         "input_quantization": metadata["input"]["quantization"]},
             "fidelity": source["fidelity"], "status": source["status"],
             "seconds": round(time.time() - started, 2),
             "command": job.command("mobile", ("mobile",), mobile_precision=precision)},
            file=zip_path)


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
