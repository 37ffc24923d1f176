"""A tf-keras model to TFLite flatbuffer bytes, in one of the registered conversion modes.

Modes (see :data:`TFLITE_MODES`): ``fp32`` (no optimization), ``dynamic`` (int8 weights, float
activations), ``fp16`` (float16 weights), ``int8`` (full integer, calibrated on representative
samples; optionally int8 input and output tensors) and ``int16x8`` (16-bit activations, 8-bit
weights). A quantization-aware (tfmot QAT) model converts with ``int8``; its fake-quant ranges
are used and representative samples are optional. Full int8 with some Keras layers kept in
float is :mod:`edgekit.formats.tflite_layers`.

``tf.lite.Optimize.EXPERIMENTAL_SPARSITY`` is deliberately never set: LiteRT's XNNPACK delegate
refuses the files it produces (seen with a pruned int8 model), while plain files keep the zeros
of a pruned model in their weight buffers, where gzip and the measurement find them.

Example:
    >>> from edgekit.formats.tflite import convert_to_tflite
    >>> data = convert_to_tflite(model, "int8", representative_data=x_calibration)
    >>> Path("model.tflite").write_bytes(data)
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgekit._compat import os_error_from_tensorflow, quiet_native_logs, tensorflow
from edgekit.errors import DataError, ModelError, OptionError
from edgekit.registry import Registry


@dataclass(frozen=True)
class ConversionMode:
    """How one mode sets up ``tf.lite.TFLiteConverter``.

    Attributes:
        name: the mode's name, also the ``--flag`` that selects it in ``edgekit compress``.
        summary: one line for help texts and manifests.
        weights: the dtype the weights are stored in ("float32", "float16", "int8").
        representative_data: "required", "optional" or "unused".
        configure: ``configure(converter, tf)`` sets optimizations, types and op sets.
    """

    name: str
    summary: str
    weights: str
    representative_data: str
    configure: Callable


TFLITE_MODES: Registry[ConversionMode] = Registry("TFLite conversion mode")


def _register(mode: ConversionMode) -> ConversionMode:
    return TFLITE_MODES.register(mode.name)(mode)


def _no_optimization(converter, tf) -> None:
    return None


def _dynamic_range(converter, tf) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def _float16(converter, tf) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def _full_integer(converter, tf) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]


def _int16_activations(converter, tf) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
    ]


_register(ConversionMode("fp32", "float32 weights and activations", "float32", "unused",
                         _no_optimization))
_register(ConversionMode("dynamic", "dynamic range: int8 weights, float activations", "int8",
                         "unused", _dynamic_range))
_register(ConversionMode("fp16", "float16 weights, float32 activations", "float16", "unused",
                         _float16))
_register(ConversionMode("int8", "full integer: int8 weights and activations", "int8",
                         "required", _full_integer))
_register(ConversionMode("int16x8", "16-bit activations, 8-bit weights", "int8", "required",
                         _int16_activations))

# Layers whose TFLite kernels need a static batch: the converter fails on a dynamic one
# ("'tf.TensorListReserve' op requires element_shape to be static"), so these models are
# converted from a concrete function with batch 1 (STACK.md). Can go when the converter
# handles dynamic-batch RNNs.
FIXED_BATCH_LAYERS = frozenset({"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional"})

# tfmot's quantization-aware layers: a model holding them converts with the ``int8`` mode only.
QUANTIZATION_AWARE_LAYERS = frozenset({"QuantizeLayer", "QuantizeWrapper", "QuantizeWrapperV2"})


def is_quantization_aware(model) -> bool:
    """True when ``model`` carries tfmot fake-quantization layers (a QAT model)."""
    return any(type(layer).__name__ in QUANTIZATION_AWARE_LAYERS for layer in model.layers)


def convert_to_tflite(model, mode: str = "fp32", representative_data: np.ndarray | None = None,
                      int8_io: bool = False) -> bytes:
    """Convert a single-input tf-keras model to TFLite flatbuffer bytes.

    Args:
        model: a functional or Sequential tf-keras model (a QAT model for mode ``int8``).
        mode: a name in :data:`TFLITE_MODES`: fp32, dynamic, fp16, int8 or int16x8.
        representative_data: model-ready samples ``(N, *input_shape)`` that calibrate the
            activation ranges; required by int8 and int16x8 (optional for a QAT model).
        int8_io: int8 input and output tensors instead of float32 (``int8`` mode only); the
            caller then quantizes inputs with the input tensor's scale and zero point.

    Returns:
        The .tflite file's bytes.

    Raises:
        UnknownNameError: for an unknown mode.
        OptionError: for ``int8_io`` outside ``int8``, a QAT model in another mode, or a
            missing representative dataset.
        DataError: for representative samples whose shape does not match the model's input.
        ModelError: when the converter fails; the message names the op or layer it reports.

    Example:
        >>> data = convert_to_tflite(model, "fp16")
    """
    chosen = TFLITE_MODES.get(mode)
    quantization_aware = is_quantization_aware(model)
    if int8_io and chosen.name != "int8":
        raise OptionError(
            f"int8 input/output tensors need the int8 mode; received mode {chosen.name!r}. Use "
            "--int8 with --int8-io, or drop --int8-io"
        )
    if quantization_aware and chosen.name != "int8":
        raise OptionError(
            f"a quantization-aware (QAT) model converts to int8 only; received mode "
            f"{chosen.name!r}. Drop --{chosen.name}, or drop --qat"
        )
    needs_data = chosen.representative_data == "required" and not quantization_aware
    if representative_data is None and needs_data:
        raise OptionError(
            f"TFLite mode {chosen.name!r} calibrates activation ranges on representative "
            "samples; received none. Pass representative_data (the CLI takes them from the "
            "dataset's training split)"
        )
    if chosen.representative_data == "unused":
        representative_data = None
    if representative_data is not None:
        representative_data = check_representative_data(model, representative_data)
    tf = tensorflow()
    with contextlib.redirect_stdout(io.StringIO()):
        converter = make_converter(model, tf)
    if quantization_aware and representative_data is None:
        # Every range is learned: int8 without restricting the op set (which would demand a
        # representative dataset).
        _dynamic_range(converter, tf)
    else:
        chosen.configure(converter, tf)
    if representative_data is not None:
        converter.representative_dataset = _representative_dataset(representative_data)
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    logs = []
    try:
        # Keras 3's converter path saves the model first and prints "Saved artifact at ..." and
        # its endpoints to stdout; that is not for the user (kept in the logs instead).
        printed = io.StringIO()
        with quiet_native_logs(logs), contextlib.redirect_stdout(printed):
            return bytes(converter.convert())
    except Exception as error:  # noqa: BLE001  (ConverterError, ValueError, RuntimeError...)
        os_error = os_error_from_tensorflow(error)
        if os_error is not None:  # the disk or the OS, not the model: say so
            raise os_error from error
        # The one line summarises; the converter's whole output stays on the error (--verbose
        # prints it, the CLI otherwise keeps it in a log file it names).
        raise ModelError(converter_failure(error, model.name, chosen.name, "".join(logs)),
                         details=_whole_output(error, logs, printed.getvalue())) from error


def _whole_output(error: BaseException, logs: list, printed: str) -> str:
    """What the converter said, in full: its exception, then its native log and its stdout."""
    parts = [f"{type(error).__name__}: {error}", "".join(logs).strip(), printed.strip()]
    return "\n\n".join(part for part in parts if part)


def check_representative_data(model, samples) -> np.ndarray:
    """``samples`` as float32, or DataError when they do not fit the model's input shape."""
    samples = np.asarray(samples, dtype=np.float32)
    expected = tuple(model.input_shape[1:])
    if samples.ndim != len(expected) + 1 or len(samples) == 0 or any(
        size is not None and size != got for size, got in zip(expected, samples.shape[1:])
    ):
        raise DataError(
            f"calibration samples have shape {tuple(samples.shape)}; model {model.name!r} takes "
            f"(N, {', '.join(str(size) for size in expected)}). Calibrate with samples of the "
            "dataset the model was trained on"
        )
    return samples


def converter_failure(error: BaseException, model_name: str, mode: str, logs: str = "") -> str:
    """One line from a converter failure, naming the op and the layer when the converter says them.

    The op is in the exception's text; the layer only in the converter's log, whose MLIR
    locations read ``"<model>/<layer>/<op>@<function>"``.
    """
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reported = next((line for line in lines if "error:" in line), lines[0] if lines else "")
    reported = reported.split("error:", 1)[-1].strip()
    op = re.search(r"'((?:tf|tfl)\.\w+)' op", text + logs)
    layer = re.search(rf'"{re.escape(model_name)}/([\w.-]+)/[^"]*@', text + logs)
    where = []
    if op:
        where.append(f"op {op.group(1)}")
    if layer:
        where.append(f"layer {layer.group(1)!r}")
    located = f" at {' in '.join(where)}" if where else ""
    if len(reported) > 200:
        reported = reported[:197] + "..."
    return (
        f"TFLite conversion ({mode}) of model {model_name!r} failed{located}: "
        f"{type(error).__name__}: {reported or 'no message'}. Replace that layer with a "
        "TFLite-supported one, or try another mode"
    )


def make_converter(model, tf):
    """The ``tf.lite.TFLiteConverter`` of ``model``: from the Keras model, or from a batch-1
    concrete function for the layers in :data:`FIXED_BATCH_LAYERS`.

    :mod:`edgekit.formats.tflite_layers` calibrates through the same converter, so a model
    with layers kept in float is converted exactly as its full-int8 sibling.
    """
    if not any(type(layer).__name__ in FIXED_BATCH_LAYERS for layer in model.layers):
        return tf.lite.TFLiteConverter.from_keras_model(model)
    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return tf.lite.TFLiteConverter.from_concrete_functions([function], model)


def _representative_dataset(samples: np.ndarray):
    def generate():
        for index in range(len(samples)):
            yield [samples[index : index + 1]]

    return generate
