"""The ``onnx`` export format: fp32 through tf2onnx, fp16 and static int8 from it, QAT folded.

- ``int8`` of a float model: ONNX Runtime's pre-processing, then static QDQ quantization with
  the types that are fast where the model runs (``--onnx-int8``: U8S8 on x86-64, S8S8 on Arm;
  ``auto`` = this machine's, recorded) and ``--calibration-method``, calibrated on the samples
  TFLite int8 is calibrated on (:func:`edgekit.formats.onnx_quantize.quantize_static_int8`).
- ``int8`` of a model with a quantization-aware model: tf2onnx keeps its learned ranges as QDQ,
  and its weights are stored as int8 initializers
  (:func:`edgekit.formats.onnx_quantize.fold_qat_weights`); it is never quantized again.
"""

from __future__ import annotations

import json
import time

from edgekit.export import fidelity
from edgekit.export.common_options import Choice, ListOption
from edgekit.export.formats import ExportFormat, register_format
from edgekit.export.job import ExportJob
from edgekit.formats import onnx as onnx_format
from edgekit.formats.onnx_quantize import (CALIBRATION_METHODS, SCHEMES, fold_qat_weights,
                                           qat_int8_summary, quantize_static_int8)
from edgekit.manifest import package_version
from edgekit.options import Option

PRECISIONS = onnx_format.ONNX_PRECISIONS

OPTIONS = (
    Option("opset", int, onnx_format.DEFAULT_OPSET, "the ONNX opset to write",
           minimum=onnx_format.MIN_OPSET, example=str(onnx_format.DEFAULT_OPSET)),
    ListOption("onnx_precisions", str, ",".join(PRECISIONS), "the ONNX precisions to write (a "
               "quantization-aware model: int8 only)", choices=PRECISIONS, noun="precision",
               example="fp32,int8"),
    Choice("onnx_int8", str, "auto", "ONNX int8 types: u8s8 (uint8 activations, int8 weights; "
           "fast on x86-64), s8s8 (fast on Arm); auto picks this machine's and records it",
           choices=("auto", *SCHEMES)),
    Choice("calibration_method", str, "minmax", "how ONNX int8 calibration sets activation "
           "ranges", choices=CALIBRATION_METHODS),
)


def write(job: ExportJob) -> None:
    for precision in job.config.onnx_precisions:
        if job.quantization_aware and precision != "int8":
            job.skip(f"onnx-{precision}", "onnx", precision,
                     "a quantization-aware model converts to a QDQ (int8) graph only")
            continue
        ensure_onnx(job, precision)


def ensure_onnx(job: ExportJob, precision: str) -> dict:
    """The ``onnx-<precision>`` artifact, converted, passed through onnx.checker and checked."""
    import onnx  # lazy: onnx takes about 0.15 s to import; only an ONNX export needs it

    name = f"onnx-{precision}"
    if name in job.artifacts:
        return job.artifacts[name]
    path = job.staging / f"model_{precision}.onnx"
    opset = job.config.opset
    started = time.time()
    options = {"opset": opset, "batch_axis": onnx_format.BATCH_AXIS_NAME}
    tf2onnx = {"name": "tf2onnx", "version": onnx_format.converter_version()}
    qat_model = job.source.qat_model
    if precision == "int8" and qat_model is not None:
        proto = fold_qat_weights(onnx_format.convert_to_onnx(qat_model, opset))
        converter = {"name": "tf2onnx + edgekit.formats.onnx_quantize.fold_qat_weights",
                     "version": tf2onnx["version"],
                     "note": "quantization-aware model: its learned ranges kept as QDQ, its "
                             "weights stored as int8"}
        options.update(quantization="QAT (QDQ from the fake-quant nodes, int8 weights)",
                       weights=qat_int8_summary(proto))
    elif precision == "fp32":
        proto = _onnx_fp32(job)
        converter = tf2onnx
    elif precision == "fp16":
        proto = onnx_format.to_float16(_onnx_fp32(job))
        converter = {"name": "tf2onnx + onnxconverter_common.float16",
                     "version": f"{tf2onnx['version']} + {package_version('onnxconverter-common')}"}
        options["keep_io_types"] = True
    else:
        fp32_path = job.staging / ".int8-source.onnx"
        onnx.save(_onnx_fp32(job), str(fp32_path))
        try:
            options.update(quantize_static_int8(fp32_path, path, job.calibration(),
                                                scheme=job.config.onnx_int8,
                                                method=job.config.calibration_method))
        finally:
            fp32_path.unlink()
        options["calibration_seed"] = job.source.seed
        proto = onnx.load(str(path))
        converter = {"name": "onnxruntime.quantization (quant_pre_process + quantize_static)",
                     "version": package_version("onnxruntime")}
    onnx_format.set_metadata(proto, _metadata(job, precision))
    onnx.save(proto, str(path))
    onnx_format.check_onnx_file(path)
    outputs_ = fidelity.outputs_of(path, job.x)
    return job.add({"name": name, "format": "onnx", "precision": precision,
                    "converter": converter, "options": options,
                    "seconds": round(time.time() - started, 2),
                    "command": job.command(name, ("onnx",), onnx_precisions=(precision,))},
                   file=path, outputs_=outputs_)


def _onnx_fp32(job: ExportJob):
    if job._onnx_fp32 is None:
        job._onnx_fp32 = onnx_format.convert_to_onnx(job.source.model, job.config.opset)
    return job._onnx_fp32


def _metadata(job: ExportJob, precision: str) -> dict:
    dataset = job.source.dataset
    return {"edgekit.source": job.source.name, "edgekit.precision": precision,
            onnx_format.CLASS_NAMES_KEY: json.dumps(list(dataset.class_names)),
            "edgekit.preprocessing": json.dumps(job.contract_record())}


FORMAT = register_format(ExportFormat(
    "onnx", "ONNX fp32 / fp16 / int8", write, OPTIONS))
