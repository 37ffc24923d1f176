"""A tf-keras model to ONNX: fp32 through tf2onnx, fp16 and int8 from that fp32 graph.

- ``fp32``: ``tf2onnx.convert.from_keras`` with a dynamic batch axis named ``batch``.
- ``fp16``: ``onnxconverter_common.float16`` with float32 inputs and outputs kept, so callers
  feed the same arrays as to fp32.
- ``int8``: ONNX Runtime static quantization of the fp32 graph
  (:func:`edgekit.formats.onnx_quantize.quantize_static_int8`: pre-processing, QDQ, the host's
  fast U8S8 / S8S8 types).
- A quantization-aware (tfmot QAT) model converts straight to a QDQ graph: tf2onnx turns its
  fake-quant nodes into QuantizeLinear / DequantizeLinear with the learned ranges, so it is the
  ``int8`` artifact (its weights stored as int8 by
  :func:`edgekit.formats.onnx_quantize.fold_qat_weights`) and is never quantized again.

Every file goes through ``onnx.checker`` and an ONNX Runtime session before it is returned.

Example:
    >>> from edgekit.formats.onnx import convert_to_onnx, check_onnx_file
    >>> proto = convert_to_onnx(model, opset=17)
    >>> onnx.save(proto, "model_fp32.onnx"); check_onnx_file("model_fp32.onnx")
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from pathlib import Path

from edgekit._compat import quiet_native_logs, tensorflow
from edgekit.errors import ModelError, OptionError, first_line
from edgekit.formats.tflite import is_quantization_aware as _is_quantization_aware
from edgekit.manifest import package_version
from edgekit.models.keras3 import is_keras3_model
from edgekit.runtimes.onnxruntime import OnnxRuntimeModel

DEFAULT_OPSET = 17
# Per-channel QuantizeLinear (the int8 artifact) needs opset 13; tf2onnx 1.17 writes up to 18.
MIN_OPSET = 13
ONNX_PRECISIONS = ("fp32", "fp16", "int8")
BATCH_AXIS_NAME = "batch"
# The metadata key export writes the class names under (Triton staging and deploy read it).
CLASS_NAMES_KEY = "edgekit.class_names"
QAT_OUTPUT_PREFIX = "quant_"


def supported_opsets() -> range:
    """The opsets this tf2onnx can write, from :data:`MIN_OPSET` up."""
    from tf2onnx import constants  # lazy: tf2onnx imports TensorFlow

    return range(MIN_OPSET, max(constants.OPSET_TO_IR_VERSION) + 1)


def check_opset(opset: int) -> int:
    """``opset``, or OptionError naming the range tf2onnx supports."""
    allowed = supported_opsets()
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in allowed:
        raise OptionError(
            f"unsupported ONNX opset {opset!r}; expected {allowed.start}..{allowed.stop - 1} "
            f"(tf2onnx {package_version('tf2onnx')} writes up to {allowed.stop - 1}; per-channel int8 "
            f"needs {MIN_OPSET}). Pass e.g. --opset {DEFAULT_OPSET}"
        )
    return opset


def convert_to_onnx(model, opset: int = DEFAULT_OPSET):
    """Convert a single-input tf-keras model to an ONNX ``ModelProto`` with a dynamic batch.

    The input keeps the Keras input's name; the output keeps the Keras output's name (a QAT
    model's ``quant_`` prefix is dropped, so every precision has the same output name).

    Args:
        model: a functional or Sequential tf-keras model, plain or quantization-aware.
        opset: the ONNX opset to write (see :func:`supported_opsets`).

    Returns:
        The ``onnx.ModelProto``.

    Raises:
        OptionError: for an opset tf2onnx cannot write.
        ModelError: when tf2onnx cannot convert an op; the message names the op and its layer.

    Example:
        >>> proto = convert_to_onnx(build_model("cnn", (8, 8, 1), 10), opset=17)
    """
    check_opset(opset)
    tf = tensorflow()
    import tf2onnx  # lazy: tf2onnx imports TensorFlow

    keras3 = is_keras3_model(model)
    input_name = model.inputs[0].name if keras3 else model.input_names[0]
    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=input_name),)
    collector, native = _LogCollector(), []
    try:
        with _tf2onnx_logs(collector), quiet_native_logs(native):
            if keras3:
                # tf2onnx's from_keras reads tf-keras internals (KeyError 'keras_tensor_N' on
                # Keras 3); the model traced as a tf.function converts the same graph.
                function = tf.function(lambda x: model(x, training=False))
                proto, _ = tf2onnx.convert.from_function(function, input_signature=spec,
                                                         opset=opset)
            else:
                proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    except Exception as error:  # noqa: BLE001  (tf2onnx raises anything from KeyError up)
        raise ModelError(_failure(model, collector, error),
                         details=_whole_output(collector, native, error)) from error
    logged = {op for op, _ in collector.unsupported}
    collector.unsupported += [(op, node) for op, node in _unknown_ops(proto) if op not in logged]
    if collector.unsupported:
        raise ModelError(_failure(model, collector, None),
                         details=_whole_output(collector, native, None))
    output_name = _output_name(model)
    if output_name.startswith(QAT_OUTPUT_PREFIX) and is_quantization_aware(model):
        output_name = output_name[len(QAT_OUTPUT_PREFIX):]
    _rename_value(proto, proto.graph.output[0].name, output_name)
    _name_batch_axis(proto)
    return proto


def _output_name(model) -> str:
    """The name the ONNX output gets: the Keras output's name. tf-keras and a Keras 3 functional
    model list it in ``output_names``; a Keras 3 Sequential has none: its last layer's name."""
    names = getattr(model, "output_names", None)
    return names[0] if names else model.layers[-1].name


def to_float16(proto):
    """An fp16 copy of an fp32 ``ModelProto`` whose inputs and outputs stay float32."""
    from onnxconverter_common import float16  # lazy: it imports onnx, heavy for `import edgekit`

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "values out of fp16 range were clipped" per initializer
        return float16.convert_float_to_float16(proto, keep_io_types=True)


def check_onnx_file(path: str | os.PathLike) -> None:
    """Raise ModelError unless ``onnx.checker`` accepts the file and ONNX Runtime loads it."""
    import onnx  # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:  # noqa: BLE001  (DecodeError, ValidationError, InferenceError)
        raise ModelError(f"{Path(path).name} fails onnx.checker: {first_line(error)}; the file "
                         "is corrupt or not an ONNX model; export it again") from error
    OnnxRuntimeModel.load(path)


def set_metadata(proto, values: dict) -> None:
    """Store ``values`` (strings) in the model's ``metadata_props`` (what ``inspect`` shows)."""
    existing = {entry.key: entry for entry in proto.metadata_props}
    for key, value in values.items():
        entry = existing.get(key) or proto.metadata_props.add()
        entry.key, entry.value = key, str(value)


def is_quantization_aware(model) -> bool:
    """The model is a tfmot quantization-aware model (its ONNX graph is QDQ)."""
    return _is_quantization_aware(model)


def converter_version() -> str:
    return package_version("tf2onnx")


def _whole_output(collector: "_LogCollector", native: list, error: BaseException | None) -> str:
    """What tf2onnx said, in full: its exception, its error records and its native log."""
    parts = [f"{type(error).__name__}: {error}" if error is not None else "",
             "\n".join(collector.errors), "".join(native).strip()]
    return "\n\n".join(part for part in parts if part)


class _LogCollector(logging.Handler):
    """Keeps tf2onnx's "Tensorflow op [NODE: OP] is not supported" records."""

    _UNSUPPORTED = re.compile(r"Tensorflow op \[(?P<node>[^:\]]+): (?P<op>\w+)\] is not supported")

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.unsupported: list[tuple[str, str]] = []
        self.errors: list[str] = []

    def emit(self, record):
        message = record.getMessage()
        match = self._UNSUPPORTED.search(message)
        if match:
            self.unsupported.append((match.group("op"), match.group("node")))
        else:
            self.errors.append(message.strip().splitlines()[0] if message.strip() else "")


@contextlib.contextmanager
def _tf2onnx_logs(collector: _LogCollector):
    logger = logging.getLogger("tf2onnx")
    propagate, level = logger.propagate, logger.level
    logger.addHandler(collector)
    logger.propagate = os.environ.get("EDGEKIT_VERBOSE") == "1"
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.removeHandler(collector)
        logger.propagate, logger.level = propagate, level


def _failure(model, collector: _LogCollector, error: BaseException | None) -> str:
    layers = {layer.name for layer in model.layers}
    if collector.unsupported:
        op, node = collector.unsupported[0]
        layer = next((part for part in node.split("/") if part in layers), None)
        where = f"op {op}" + (f" in layer {layer!r}" if layer else f" (node {node})")
        more = len(collector.unsupported) - 1
        extra = f" and {more} more unsupported op(s)" if more else ""
        fix = ("replace that layer with one built from ONNX-supported ops, or export to "
               "TFLite only (--to tflite)")
        if op.startswith("FakeQuant"):
            fix = ("its quantization range is not a usable constant (a QAT model that was "
                   "never fine-tuned?); fine-tune it with edgekit compress --qat first")
        return (f"tf2onnx {package_version('tf2onnx')} cannot convert {where}{extra} of model "
                f"{model.name!r}; {fix}")
    reason = f"{type(error).__name__}: {first_line(error)}" if error else "no reason given"
    if collector.errors:
        reason = collector.errors[0]
    return (f"tf2onnx {package_version('tf2onnx')} failed to convert model {model.name!r}: {reason}; "
            "export to TFLite only (--to tflite), or simplify the model")


def _unknown_ops(proto) -> list[tuple[str, str]]:
    """(op, node name) of nodes tf2onnx left in the graph as TensorFlow ops (no ONNX schema).

    tf2onnx does not always log these: a tfmot fake-quant node whose range it cannot read
    stays a ``FakeQuantWithMinMaxVars`` node, which only onnx.checker would reject later.
    """
    import onnx  # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick

    found = []
    for node in proto.graph.node:
        if node.domain in ("", "ai.onnx", "ai.onnx.ml") and not onnx.defs.has(node.op_type,
                                                                                node.domain):
            found.append((node.op_type, node.name))
    return found


def _rename_value(proto, old: str, new: str) -> None:
    if old == new:
        return
    for node in proto.graph.node:
        for index, name in enumerate(node.output):
            if name == old:
                node.output[index] = new
        for index, name in enumerate(node.input):
            if name == old:
                node.input[index] = new
    for value in proto.graph.output:
        if value.name == old:
            value.name = new


def _name_batch_axis(proto) -> None:
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_AXIS_NAME
