"""The ``onnx`` export format: fp32 through tf2onnx, fp16 and static int8 from it, QAT folded.

- ``int8`` of a float model: ONNX Runtime's pre-processing, then static QDQ quantization with
  the types that are fast where the model runs (``--onnx-int8``: U8S8 on x86-64, S8S8 on Arm;
  ``auto`` = this machine's, recorded) and ``--calibration-method``, calibrated on the samples
  TFLite int8 is calibrated on (:func:`edgekit.formats.onnx_quantize.quantize_static_int8`).
- ``int8`` of a model with a quantization-aware model: tf2onnx keeps its learned ranges as QDQ,
  and its weights are stored as int8 initializers
  (:func:`edgekit.formats.onnx_quantize.fold_qat_weights`); it is never quantized again.
- ``--onnx-float-layers``: the post-training int8 file keeps these Keras layers in float
  (ONNX Runtime's ``nodes_to_exclude``: the layer's nodes in the graph ``quantize_static``
  sees, :func:`quantization_graph`, and the Relu / Clip that feeds them,
  :func:`nodes_keeping_float`). A compress folder made with ``--float-layers`` gives its own
  layers by default, so its ONNX int8 keeps what its TFLite int8 keeps.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgekit._compat import quiet_native_logs
from edgekit.errors import ModelError, OptionError, short_reason
from edgekit.export import fidelity
from edgekit.export.common_options import Choice, ListOption
from edgekit.export.formats import ExportFormat, register_format
from edgekit.export.job import ExportJob
from edgekit.formats import onnx as onnx_format
from edgekit.formats.onnx_graph import prepare_float_graph
from edgekit.formats.onnx_quantize import (CALIBRATION_METHODS, SCHEMES, fold_qat_weights,
                                           qat_int8_summary, quantize_static_int8)
from edgekit.formats.tflite_layers import check_layer_names, keras_layer_of
from edgekit.manifest import package_version
from edgekit.options import Option

PRECISIONS = onnx_format.ONNX_PRECISIONS
# --onnx-float-layers none: every layer in int8, whatever the compress recipe kept in float.
NO_FLOAT_LAYERS = "none"
# Activations ONNX Runtime's QDQ quantizer folds into the QuantizeLinear that follows them.
CLAMPING_ACTIVATIONS = ("Relu", "Clip")
_NAMES_SHOWN = 40


@dataclass(frozen=True)
class LayerNames(ListOption):
    """Keras layer names, comma-separated."""

    def expected(self) -> str:
        return "comma-separated Keras layer names"


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
    LayerNames("onnx_float_layers", str, None, "Keras layers the ONNX int8 file keeps in float "
               f"(ONNX Runtime nodes_to_exclude); {NO_FLOAT_LAYERS}: every layer in int8",
               noun="layer", example="conv2,dense", metavar="LAYERS",
               default_text="the compress recipe's --float-layers, else none"),
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
        layers, decided_by = float_layers(job)
        try:
            model = job.source.model
            excluded = nodes_keeping_float(quantization_graph(fp32_path).graph, layers,
                                           {layer.name for layer in model.layers},
                                           model.name) if layers else []
            options.update(quantize_static_int8(fp32_path, path, job.calibration(),
                                                scheme=job.config.onnx_int8,
                                                method=job.config.calibration_method,
                                                nodes_to_exclude=excluded))
        finally:
            fp32_path.unlink()
        if layers:
            options.update(float_layers=list(layers), float_layers_from=decided_by)
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


def float_layers(job: ExportJob) -> tuple[list[str], str | None]:
    """The Keras layers the post-training int8 file keeps in float, and what decided them."""
    given = job.config.onnx_float_layers
    if given is not None:
        return ([] if tuple(given) == (NO_FLOAT_LAYERS,) else list(given)), "--onnx-float-layers"
    recorded = recipe_float_layers(job.source.manifest)
    if not recorded:
        return [], None
    return recorded, ("the compress recipe's --float-layers (its manifest's "
                      "stages.ptq.float_layers); --onnx-float-layers none quantizes them")


def recipe_float_layers(manifest: dict | None) -> list[str]:
    """The layers a compress folder's TFLite int8 keeps in float (``--float-layers``)."""
    if not manifest or manifest.get("stage") != "compress":
        return []
    return list(((manifest.get("stages") or {}).get("ptq") or {}).get("float_layers") or [])


def quantization_graph(fp32_path: str | os.PathLike, float_narrow_convs: bool = False):
    """The model ONNX Runtime's ``quantize_static`` sees for an fp32 file: edgekit's float-graph
    rewrites, then ``quant_pre_process``, as :func:`quantize_static_int8` runs them (with the
    same ``float_narrow_convs``). Its node names are the ones ``nodes_to_exclude`` takes
    (pre-processing fuses and renames nodes).

    Raises:
        ModelError: when pre-processing fails.
    """
    import onnx  # lazy: onnx takes about 0.15 s to import; only an ONNX export needs it
    # lazy: onnxruntime.quantization takes about 0.25 s to import; only int8 export needs it
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared, _ = prepare_float_graph(onnx.load(str(fp32_path)),
                                      space_to_depth=not float_narrow_convs)
    with tempfile.TemporaryDirectory(prefix="edgekit-onnx-") as scratch, quiet_native_logs():
        source, target = Path(scratch) / "prepared.onnx", Path(scratch) / "pre.onnx"
        onnx.save(prepared, str(source))
        try:
            quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
        except Exception as error:  # noqa: BLE001  (onnx shape inference and ORT raise their own)
            raise ModelError(f"ONNX Runtime pre-processing (quant_pre_process) of "
                             f"{Path(fp32_path).name} failed: {short_reason(error)}; expected an "
                             "fp32 graph ONNX Runtime can optimize; keep every layer in int8 "
                             f"(--onnx-float-layers {NO_FLOAT_LAYERS})") from error
        return onnx.load(str(target))


def layer_key(node, layer_names, model_name: str | None = None) -> str:
    """The unit a node is kept in float with: its Keras layer, else the node itself."""
    return keras_layer_of(node.name, layer_names, model_name) or node.name


def nodes_keeping_float(graph, keys, layer_names, model_name: str | None = None) -> list[str]:
    """The ``nodes_to_exclude`` that keep these Keras layers (or nodes) in float.

    A layer's nodes come with the Relu / Clip nodes that feed them: ONNX Runtime's QDQ
    quantizer drops a Relu / Clip in front of a quantized tensor (the QuantizeLinear clamps
    instead) and its graph optimizer may then remove that Q/DQ pair in front of a float node,
    losing the clamp (seen: a dead unit at -1 before its Relu reached a float layer as -1).

    Args:
        graph: the graph quantize_static sees (:func:`quantization_graph`).
        keys: Keras layer names (or node names of nodes without a layer).
        layer_names: the model's Keras layer names.
        model_name: the Keras model's name (a Keras 3 model's node names carry it).

    Raises:
        ModelError: for a key no node of the graph belongs to.
    """
    wanted = list(dict.fromkeys(keys))
    keyed = [(node, layer_key(node, layer_names, model_name)) for node in graph.node]
    present = list(dict.fromkeys(key for _, key in keyed))
    missing = [key for key in wanted if key not in present]
    if missing:
        with_nodes = [key for key in present if key in layer_names]
        raise ModelError(
            f"layer {missing[0]!r} of model {model_name or '?'!r} has no node of its own in the "
            "ONNX graph being quantized (pre-processing fused it into a neighbour, or it computes "
            f"nothing); expected a layer with nodes: {', '.join(with_nodes[:_NAMES_SHOWN])}. "
            "Name one of those")
    chosen = [node for node, key in keyed if key in set(wanted)]
    inputs = {name for node in chosen for name in node.input}
    feeding = [node for node in graph.node if node.op_type in CLAMPING_ACTIVATIONS
               and any(name in inputs for name in node.output) and node not in chosen]
    names = {node.name for node in chosen + feeding}
    return [node.name for node in graph.node if node.name in names]


def _validate(config) -> None:
    given = config.onnx_float_layers
    if (given is None or tuple(given) == (NO_FLOAT_LAYERS,) or "onnx" not in config.to
            or "int8" in config.onnx_precisions):
        return
    raise OptionError(
        "--onnx-float-layers keeps layers of the int8 ONNX file in float; received "
        f"--onnx-precisions {','.join(config.onnx_precisions)}. Add int8 to --onnx-precisions, "
        "or drop --onnx-float-layers")


def _preflight(config, source) -> None:
    given = config.onnx_float_layers
    if given is None or tuple(given) == (NO_FLOAT_LAYERS,):
        return
    if source.qat_model is not None:
        raise OptionError(
            f"--onnx-float-layers keeps layers of a post-training int8 file in float; received "
            f"the quantization-aware model {source.name!r}, whose int8 ONNX keeps the ranges it "
            "learned. Drop --onnx-float-layers, or export the float model it was trained from")
    check_layer_names(source.model, given, "--onnx-float-layers")


FORMAT = register_format(ExportFormat(
    "onnx", "ONNX fp32 / fp16 / int8", write, OPTIONS, validate=_validate,
    preflight=_preflight))
