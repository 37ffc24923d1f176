"""The Keras layers of a TFLite int8 conversion: their ops, their int8 error, some kept in float.

Full int8 can be ruined by one layer (a weight range per-channel int8 cannot hold, an activation
with outliers). Keeping that layer's ops in float, and the rest in int8, is the usual fix. TFLite
does it with ``tf.lite.experimental.QuantizationDebugger``: the model is calibrated once, and
``QuantizationDebugOptions(denylisted_nodes=...)`` names the ops (by their output tensor) that
``get_nondebug_quantized_model()`` leaves in float; ``fully_quantize=True`` gives int8 input and
output tensors, as ``--int8-io`` does for a full-int8 model. The debugger also measures each
quantized op's error against float, which :mod:`edgekit.optimize.sensitivity` ranks.

An op belongs to the Keras layer its output tensor is named after (``model/dense_1/MatMul;...``).
The converter names a model's output after its signature (``StatefulPartitionedCall:0``): that op
belongs to the model's output layer; any other op without a layer in its name, to the layer of
the op that feeds it.

Example:
    >>> layers = TfliteLayers(model, calibration)
    >>> content = layers.quantized(layers.nodes_for(["wide_range"]))
    >>> content, nodes = convert_keeping_float(model, ["wide_range"], calibration)
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from dataclasses import dataclass

import numpy as np

from edgekit._compat import quiet_native_logs, tensorflow
from edgekit.errors import ModelError, OptionError, short_reason
from edgekit.formats.tflite import (TFLITE_MODES, check_representative_data,
                                    is_quantization_aware, make_converter)

# Samples (from the calibration set) the per-op errors are averaged over.
DEBUG_SAMPLES = 100
# Layer names an error message lists before it stops.
_NAMES_SHOWN = 40
_EPSILON = 1e-12


@dataclass(frozen=True)
class LayerError:
    """One quantized op's (or one layer's) measured int8 error.

    Attributes:
        node: the converter's name for it (a TFLite output tensor, an ONNX node), what
            ``denylisted_nodes`` / ``nodes_to_exclude`` take; for a whole layer, the layer.
        layer: the Keras layer it belongs to, when known.
        op: the op type (``FULLY_CONNECTED``, ``Conv``).
        error: relative RMS error of its output.
    """

    node: str
    layer: str | None
    op: str
    error: float

    @property
    def label(self) -> str:
        return self.layer or f"{self.op} ({self.node[:40]})"

    def to_dict(self) -> dict:
        return {"node": self.node, "layer": self.layer, "op": self.op,
                "error": round(float(self.error), 6)}


def keras_layer_of(node: str, layer_names, model_name: str | None = None) -> str | None:
    """The Keras layer a converter's node or tensor name belongs to (``model/dense_1/MatMul``).

    A Keras 3 model is traced twice on its way to TFLite, and TensorFlow makes the second
    trace's name scopes unique: model ``k3`` becomes ``k3_1``, layer ``dense`` ``dense_1`` and
    layer ``dense_1`` ``dense_1_2``. When ``model_name`` shows such a suffix, a segment is
    read without it (or without a suffix of its own) before it is read as it is.
    """
    for part in node.split(";"):
        segments = part.split("/")
        suffix = _scope_suffix(segments[0], model_name)
        for segment in segments:
            for name in _readings(segment, suffix):
                if name in layer_names:
                    return name
    return None


def _scope_suffix(first: str, model_name: str | None) -> str:
    """``"_1"`` when the first name scope is the model's, made unique (``k3_1`` for ``k3``)."""
    if model_name and first.startswith(model_name + "_") and \
            first[len(model_name) + 1:].isdigit():
        return first[len(model_name):]
    return ""


def _readings(segment: str, suffix: str) -> list[str]:
    if not suffix:
        return [segment]
    readings = [segment[:-len(suffix)]] if segment.endswith(suffix) else []
    return readings + [re.sub(r"_\d+$", "", segment), segment]


def relative_rmse(reference: np.ndarray, value: np.ndarray) -> float:
    """``rms(value - reference) / rms(reference)``: the error relative to the signal."""
    reference = np.asarray(reference, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    noise = np.sqrt(np.mean((value - reference) ** 2))
    return float(noise / (np.sqrt(np.mean(reference ** 2)) + _EPSILON))


def split_layer_names(text: str) -> list[str]:
    """``"conv2, dense"`` -> ``["conv2", "dense"]`` (each name once, in the order given)."""
    return list(dict.fromkeys(name.strip() for name in str(text).split(",") if name.strip()))


def check_layer_names(model, names, flag: str = "--float-layers") -> list[str]:
    """``names`` when ``model`` has every one of them, else ModelError listing its layers."""
    inputs = [layer.name for layer in model.layers if type(layer).__name__ == "InputLayer"]
    known = [layer.name for layer in model.layers if layer.name not in inputs]
    unknown = [name for name in names if name not in known]
    if unknown:
        shown = ", ".join(known[:_NAMES_SHOWN]) + (", ..." if len(known) > _NAMES_SHOWN else "")
        what = "the input, which computes nothing" if unknown[0] in inputs else "not a layer"
        raise ModelError(
            f"{flag} names {unknown[0]!r}, {what} of model {model.name!r}; expected some of "
            f"its layers: {shown}")
    return list(names)


def _dequantized_error(float_value, quantized_value, scale, zero_point) -> float:
    # layer_direct_compare_metrics passes (float output, int8 output, scale, zero point).
    restored = (np.asarray(quantized_value, dtype=np.float64) - float(zero_point)) * float(scale)
    return relative_rmse(float_value, restored)


class TfliteLayers:
    """A full-int8 TFLite conversion of ``model``, calibrated once: its ops by Keras layer, their
    errors, and the int8 model with some ops kept in float.

    Args:
        model: a single-input tf-keras (or Keras 3) model, not a quantization-aware one.
        calibration: model-ready calibration samples (they also feed the error statistics).
        how_to_fix: the end of the message when the debugger cannot quantize the model.

    Raises:
        OptionError: for a quantization-aware model (it converts with its learned ranges).
        DataError: for calibration samples that do not fit the model's input.
        ModelError: when the converter cannot calibrate or quantize the model.
    """

    def __init__(self, model, calibration: np.ndarray,
                 how_to_fix: str = "convert it without --float-layers"):
        if is_quantization_aware(model):
            raise OptionError(
                f"model {model.name!r} is quantization-aware (QAT): its int8 model keeps the "
                "ranges it learned, and layers are kept in float for post-training int8 only; "
                "expected a float model. Quantize the float model with --int8 instead")
        calibration = check_representative_data(model, calibration)
        self.model_name = model.name
        self.layer_names = [layer.name for layer in model.layers]
        self._output_layer = _output_layer(model, self.layer_names)
        self._samples = calibration[:DEBUG_SAMPLES]
        self._how_to_fix = how_to_fix
        self._nodes: dict[str, str | None] | None = None
        tf = tensorflow()
        self._tf = tf
        with self._quiet():
            converter = make_converter(model, tf)
            TFLITE_MODES.get("int8").configure(converter, tf)

            def representative():
                for index in range(len(calibration)):
                    yield [calibration[index:index + 1]]

            converter.representative_dataset = representative
            try:
                self._debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=converter, debug_dataset=self._debug_dataset)
            except Exception as error:  # noqa: BLE001  (ConverterError, ValueError...)
                raise ModelError(f"TFLite's QuantizationDebugger cannot quantize model "
                                 f"{model.name!r}: {short_reason(error)}; expected a model the "
                                 f"int8 converter takes; {how_to_fix}") from error

    def _debug_dataset(self):
        for index in range(len(self._samples)):
            yield [self._samples[index:index + 1]]

    @contextlib.contextmanager
    def _quiet(self):
        with quiet_native_logs(), contextlib.redirect_stdout(io.StringIO()):
            yield

    @property
    def nodes(self) -> dict[str, str | None]:
        """Every op of the calibrated model, by its output tensor's name (what
        ``denylisted_nodes`` takes), with its Keras layer (None: none found), in graph order."""
        if self._nodes is None:
            with self._quiet():
                self._nodes = _op_layers(self._debugger.calibrated_model, set(self.layer_names),
                                         self._output_layer, self.model_name)
        return self._nodes

    def nodes_for(self, layers) -> list[str]:
        """The ops of these Keras layers, for ``denylisted_nodes``.

        Raises:
            ModelError: for a layer with no op of its own in the converted model.
        """
        with_ops = list(dict.fromkeys(layer for layer in self.nodes.values() if layer))
        missing = [layer for layer in layers if layer not in with_ops]
        if missing:
            raise ModelError(
                f"layer {missing[0]!r} of model {self.model_name!r} has no op of its own in the "
                "int8 TFLite model (the converter folded it into a neighbour, or it computes "
                f"nothing); expected a layer with ops: {', '.join(with_ops[:_NAMES_SHOWN])}. "
                "Name one of those")
        wanted = set(layers)
        return [node for node, layer in self.nodes.items() if layer in wanted]

    def errors(self) -> list[LayerError]:
        """Every quantized op's relative RMS error, most sensitive first."""
        tf = self._tf
        with self._quiet():
            debug_model = self._debugger.get_debug_quantized_model()
            options = tf.lite.experimental.QuantizationDebugOptions(
                layer_direct_compare_metrics={"relative_rmse": _dequantized_error})
            reader = tf.lite.experimental.QuantizationDebugger(
                quant_debug_model_content=debug_model, debug_dataset=self._debug_dataset,
                debug_options=options)
            reader.run()
            dump = io.StringIO()
            reader.layer_statistics_dump(dump)
        names = set(self.layer_names)
        found = []
        for row in csv.DictReader(io.StringIO(dump.getvalue())):
            error = float(row["relative_rmse"])
            if not np.isfinite(error):
                continue
            node = row["tensor_name"]
            layer = self.nodes[node] if node in self.nodes else keras_layer_of(
                node, names, self.model_name)
            found.append(LayerError(node=node, layer=layer, op=row["op_name"], error=error))
        return sorted(found, key=lambda item: -item.error)

    def layer_errors(self) -> list[LayerError]:
        """Each Keras layer's largest op error (``node`` is the layer), most sensitive first;
        an op with no layer stands alone under its own name."""
        by_key: dict[str, LayerError] = {}
        for item in self.errors():
            key = item.layer or item.node
            if key not in by_key:  # errors() is sorted: the first one is the largest
                by_key[key] = LayerError(node=key, layer=item.layer, op=item.op,
                                         error=item.error)
        return list(by_key.values())

    def quantized(self, nodes, int8_io: bool = False) -> bytes:
        """The int8 model with ``nodes`` kept in float (same calibration, no new pass).

        Args:
            nodes: output tensor names of the ops to keep in float (:meth:`nodes_for`).
            int8_io: int8 input and output tensors instead of float32.
        """
        tf = self._tf
        try:
            with self._quiet():
                self._debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                    denylisted_nodes=list(nodes), fully_quantize=bool(int8_io))
                return bytes(self._debugger.get_nondebug_quantized_model())
        except Exception as error:  # noqa: BLE001  (ConverterError, RuntimeError...)
            raise ModelError(f"TFLite int8 quantization of model {self.model_name!r} with "
                             f"{len(nodes)} op(s) in float failed: {short_reason(error)}; "
                             f"expected a model the int8 converter takes; {self._how_to_fix}"
                             ) from error


def convert_keeping_float(model, layers, calibration: np.ndarray,
                          int8_io: bool = False) -> tuple[bytes, list[str]]:
    """Full-integer int8 TFLite bytes of ``model`` with the ops of ``layers`` kept in float.

    Args:
        model: a single-input tf-keras (or Keras 3) float model.
        layers: Keras layer names (:func:`check_layer_names` checks them).
        calibration: model-ready samples that calibrate the activation ranges.
        int8_io: int8 input and output tensors instead of float32.

    Returns:
        ``(content, nodes)``: the .tflite bytes and the ops (output tensors) kept in float.

    Raises:
        ModelError: for a name the model has no layer of, a layer with no op, or a converter
            failure.
        OptionError: for a quantization-aware model.

    Example:
        >>> content, nodes = convert_keeping_float(model, ["wide_range"], x_calibration)
    """
    check_layer_names(model, layers)
    converter = TfliteLayers(model, calibration)
    nodes = converter.nodes_for(layers)
    return converter.quantized(nodes, int8_io=int8_io), nodes


def _output_layer(model, layer_names: list[str]) -> str | None:
    """The layer that produces the model's output (tf-keras names it in ``output_names``)."""
    for name in getattr(model, "output_names", None) or []:
        if name in layer_names:
            return name
    return layer_names[-1] if layer_names else None


def _op_layers(content: bytes, layer_names: set, output_layer: str | None,
               model_name: str) -> dict:
    """Output tensor name -> Keras layer of every op of a .tflite model, in graph order."""
    # lazy: LiteRT is a heavy library; only a conversion with layers in float needs it here
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    graph_outputs = {detail["index"] for detail in interpreter.get_output_details()}
    # _get_ops_details is what TFLite's own QuantizationDebugger reads ops with.
    ops = interpreter._get_ops_details()  # noqa: SLF001
    layer_of_tensor: dict[int, str | None] = {}
    found: dict[str, str | None] = {}
    for op in ops:
        outputs = [index for index in op["outputs"] if index >= 0]
        if not outputs:
            continue
        name = interpreter._get_tensor_details(outputs[0], 0)["name"]  # noqa: SLF001
        layer = keras_layer_of(name, layer_names, model_name)
        if layer is None and graph_outputs.intersection(outputs):
            layer = output_layer
        if layer is None:
            layer = next((layer_of_tensor[index] for index in op["inputs"]
                          if layer_of_tensor.get(index)), None)
        for index in outputs:
            layer_of_tensor[index] = layer
        found[name] = layer
    return found
