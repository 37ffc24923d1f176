"""Int8 ONNX: static QDQ quantization of an fp32 graph, and int8 weights for a QAT graph.

- :func:`quantize_static_int8`: ONNX Runtime's ``quant_pre_process`` (shape inference and basic
  graph fusions such as Conv + BatchNormalization), then ``quantize_static`` in the QDQ format
  with per-channel int8 weights. The activation type is the host's fast one: on x86-64 ONNX
  Runtime's int8 kernels take uint8 activations (U8S8; int8 activations there were measured
  slower than fp32), on Arm int8 activations (S8S8).
- :func:`fold_qat_weights`: a quantization-aware model converted by tf2onnx keeps its weights in
  float32, so its file is as large as the fp32 one. This stores them as int8 behind a
  DequantizeLinear, with the values unchanged.
- :func:`int8_weight_summary` / :func:`qat_int8_summary`: what a file holds, for tests and reports.

Example:
    >>> options = quantize_static_int8("model_fp32.onnx", "model_int8.onnx", samples)
    >>> options["scheme"], options["activation_type"]
    ('u8s8', 'uint8')
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import platform
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgekit._compat import quiet_native_logs
from edgekit.errors import DataError, ModelError, OptionError

SCHEMES = ("u8s8", "s8s8")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
_SCHEME_CHOICES = ("auto", *SCHEMES)
_ACTIVATION_TYPES = {"u8s8": "uint8", "s8s8": "int8"}
_X86_MACHINES = {"x86_64", "amd64", "x64", "i386", "i486", "i586", "i686", "x86"}
_CALIBRATION_BATCH = 64
# The input index that holds the weight of each op whose weights are quantized.
_WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "MatMul": 1, "Gemm": 1}
# A tf2onnx weight is on an int8 grid when every value is within this fraction of a step.
_GRID_TOLERANCE = 1e-3
_ONNX_INT8, _ONNX_UINT8 = 3, 2
_FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}


def host_scheme(machine: str | None = None) -> str:
    """The int8 scheme ONNX Runtime runs fastest on ``machine`` (default: this one).

    Returns:
        ``"u8s8"`` (uint8 activations, int8 weights) on x86, ``"s8s8"`` on Arm and others.

    Example:
        >>> host_scheme("x86_64"), host_scheme("aarch64")
        ('u8s8', 's8s8')
    """
    name = (machine if machine is not None else platform.machine()).lower()
    return "u8s8" if name in _X86_MACHINES else "s8s8"


def resolve_scheme(scheme: str) -> str:
    """``"u8s8"`` or ``"s8s8"`` for ``scheme``; ``"auto"`` picks :func:`host_scheme`.

    Raises:
        OptionError: for any other value.
    """
    if scheme not in _SCHEME_CHOICES:
        raise OptionError(f"unknown int8 scheme {scheme!r}; expected one of: "
                          f"{', '.join(_SCHEME_CHOICES)} (auto picks {host_scheme()} here)")
    return host_scheme() if scheme == "auto" else scheme


def check_calibration_method(method: str) -> str:
    """``method`` if ONNX Runtime calibration knows it, else OptionError naming the choices."""
    if method not in CALIBRATION_METHODS:
        raise OptionError(f"unknown calibration method {method!r}; expected one of: "
                          f"{', '.join(CALIBRATION_METHODS)} (minmax is the default)")
    return method


def quantize_static_int8(fp32_path: str | os.PathLike, int8_path: str | os.PathLike,
                         calibration: np.ndarray, scheme: str = "auto", method: str = "minmax",
                         nodes_to_exclude=(), preprocess: bool = True) -> dict:
    """Write a QDQ int8 model of the fp32 file, calibrated on ``calibration`` samples.

    Args:
        fp32_path: the fp32 .onnx file (one float input).
        int8_path: where to write the int8 file (overwritten).
        calibration: model-ready float32 samples ``(N, *input_shape)``.
        scheme: ``"u8s8"``, ``"s8s8"`` or ``"auto"`` (the host's, see :func:`host_scheme`).
        method: ``"minmax"``, ``"entropy"`` or ``"percentile"``.
        nodes_to_exclude: names of nodes (after pre-processing) to keep in float.
        preprocess: run ``quant_pre_process`` first (recommended by ONNX Runtime).

    Returns:
        The options used, JSON-ready for the manifest.

    Raises:
        OptionError: for an unknown scheme or method, or a node name not in the graph.
        DataError: for calibration samples that are empty or do not fit the model's input.
        ModelError: when the file is not an ONNX model, or pre-processing or quantization fails.

    Example:
        >>> quantize_static_int8("fp32.onnx", "int8.onnx", samples, method="entropy")["scheme"]
        'u8s8'
    """
    concrete = resolve_scheme(scheme)
    check_calibration_method(method)
    # lazy: onnxruntime.quantization takes about 0.25 s to import; only int8 export needs it
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    fp32_path = Path(fp32_path)
    input_name, input_shape = _graph_input(_load(fp32_path))
    samples = _calibration_samples(calibration, input_name, input_shape)
    excluded = [str(name) for name in nodes_to_exclude]
    activation = QuantType.QUInt8 if concrete == "u8s8" else QuantType.QInt8
    options = {"scheme": concrete, "scheme_requested": scheme,
               "activation_type": _ACTIVATION_TYPES[concrete], "weight_type": "int8",
               "per_channel": True, "reduce_range": False, "quant_format": "QDQ",
               "calibrate_method": method, "calibration_samples": int(len(samples)),
               "preprocessed": bool(preprocess), "symbolic_shape_inference": False,
               "nodes_to_exclude": excluded, "machine": platform.machine()}
    with _quiet_ort(), tempfile.TemporaryDirectory(prefix="edgekit-int8-") as scratch:
        # Work on a scratch copy: ORT versions differ in where they write their augmented
        # calibration model, and nothing may land beside the caller's input or output.
        source = Path(scratch) / "model_fp32.onnx"
        shutil.copyfile(fp32_path, source)
        if preprocess:
            source = _preprocess(source, Path(scratch) / "model_pre.onnx", fp32_path.name)
        _check_nodes(source, excluded, fp32_path if preprocess else None)
        quantized = Path(scratch) / "model_int8.onnx"
        try:
            quantize_static(str(source), str(quantized), _reader(input_name, samples, input_shape),
                            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                            activation_type=activation, weight_type=QuantType.QInt8,
                            calibrate_method=_ort_method(method),
                            nodes_to_exclude=excluded or None,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        except Exception as error:  # noqa: BLE001  (ORT raises anything from ValueError up)
            raise ModelError(f"ONNX Runtime int8 quantization of {fp32_path.name} failed: "
                             f"{_first_line(error)}; expected an fp32 graph whose ops ONNX Runtime "
                             "runs; keep the failing node in float with nodes_to_exclude"
                             ) from error
        shutil.copyfile(quantized, int8_path)
    return options


def fold_qat_weights(proto):
    """A copy of a QDQ model whose float weights are stored as int8 initializers.

    Two layouts are folded; the values the weights' consumers read are unchanged:

    - a weight initializer (or Constant, possibly behind Identity / Transpose) feeding a
      QuantizeLinear: the QuantizeLinear is computed here, exactly as ONNX does it, and its
      DequantizeLinear reads the int8 initializer;
    - a float weight of a Conv / MatMul / Gemm whose values already lie on a symmetric int8 grid
      (per tensor or per channel). tf2onnx writes tfmot's weights this way: it constant-folds the
      weight fake-quant, so the file holds the dequantized values. They become int8 values
      behind a new DequantizeLinear (zero point 0, scale max|w| / 127). Exact, except for a
      kernel with a BatchNormalization multiplied in by tf2onnx: within float32 rounding there.

    Activations' QuantizeLinear / DequantizeLinear pairs are kept. Float weights that are not on
    a grid (layers left out of QAT) stay float.

    Args:
        proto: an ``onnx.ModelProto``, e.g. tf2onnx's conversion of a tfmot QAT model.

    Returns:
        A new ``ModelProto``; ``proto`` is not modified.

    Raises:
        ModelError: if the folded graph fails ``onnx.checker``.

    Example:
        >>> folded = fold_qat_weights(convert_to_onnx(qat_model))
        >>> qat_int8_summary(folded)["float_weight_initializers"]
        0
    """
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    bypassed = _fold_quantize_nodes(graph)
    _remove_unused(graph, bypassed)
    _fold_grid_weights(graph)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise ModelError(f"folding QAT weights gave an invalid graph: {_first_line(error)}; "
                         "expected a tf2onnx QDQ model; export the QAT model again") from error
    return model


def int8_weight_summary(path_or_proto) -> dict:
    """What an ONNX model holds: int8 / uint8 initializers, activation zero-point types, floats.

    Returns:
        ``{"int8_initializers", "uint8_initializers", "activation_zero_point_dtypes",
        "weight_dtypes", "float_weight_initializers", "float_initializers", "bytes"}``: weight
        dtypes are those of the constants behind each DequantizeLinear (int8 weights, int32
        biases); float weight initializers are those a Conv / MatMul / Gemm reads directly.

    Raises:
        ModelError: for a path that is not a readable ONNX file.

    Example:
        >>> int8_weight_summary("model_int8.onnx")["activation_zero_point_dtypes"]
        ['uint8']
    """
    proto = (path_or_proto if hasattr(path_or_proto, "graph")
             else _load(Path(path_or_proto), "an .onnx file"))
    graph = proto.graph
    constants = _constants(graph)
    by_type = [tensor.data_type for tensor in graph.initializer]
    activation_dtypes, weight_dtypes = set(), set()
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in constants:
            zero_point = constants.get(node.input[2]) if len(node.input) > 2 else None
            activation_dtypes.add("uint8" if zero_point is None else str(zero_point.dtype))
        if node.op_type == "DequantizeLinear" and node.input[0] in constants:
            weight_dtypes.add(str(constants[node.input[0]].dtype))
    return {"int8_initializers": by_type.count(_ONNX_INT8),
            "uint8_initializers": by_type.count(_ONNX_UINT8),
            "activation_zero_point_dtypes": sorted(activation_dtypes),
            "weight_dtypes": sorted(weight_dtypes),
            "float_weight_initializers": len(_float_weights(graph)),
            "float_initializers": sum(kind in _FLOAT_TYPES for kind in by_type),
            "bytes": proto.ByteSize()}


def qat_int8_summary(proto) -> dict:
    """``{"int8_initializers", "float_weight_initializers", "bytes"}`` of a (folded) QAT model."""
    summary = int8_weight_summary(proto)
    return {key: summary[key] for key in ("int8_initializers", "float_weight_initializers",
                                          "bytes")}


# --- quantize_static helpers ----------------------------------------------------------------


def _load(path: Path, expected: str = "an fp32 .onnx file (edgekit export --to onnx)"):
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    import onnx

    if not path.is_file():
        raise ModelError(f"ONNX file {str(path)!r} does not exist; expected {expected}; "
                         "check the path")
    try:
        return onnx.load(str(path))
    except Exception as error:  # noqa: BLE001  (DecodeError, OSError, ValueError alike)
        raise ModelError(f"cannot read {str(path)!r} as an ONNX model: {_first_line(error)}; "
                         f"expected {expected}; export it again") from error


def _graph_input(proto) -> tuple[str, list]:
    initializers = {tensor.name for tensor in proto.graph.initializer}
    inputs = [value for value in proto.graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise ModelError(f"the model has {len(inputs)} inputs; expected exactly one float input "
                         "to calibrate on; export a single-input model")
    dims = inputs[0].type.tensor_type.shape.dim
    return inputs[0].name, [dim.dim_value if dim.HasField("dim_value") else None for dim in dims]


def _calibration_samples(calibration, input_name: str, input_shape: list) -> np.ndarray:
    wanted = ["N", *["?" if size is None else size for size in input_shape[1:]]]
    try:
        samples = np.asarray(calibration, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise DataError(f"calibration samples of type {type(calibration).__name__} are not a "
                        f"float array: {_first_line(error)}; expected float32 samples shaped "
                        f"{wanted}; pass a numpy array") from error
    fits = samples.ndim == len(input_shape) and samples.ndim > 0 and all(
        size is None or size == got for size, got in zip(input_shape[1:], samples.shape[1:]))
    if not fits or not samples.shape[0]:
        raise DataError(f"calibration samples of shape {list(samples.shape)} do not fit input "
                        f"{input_name!r}; expected a non-empty array shaped {wanted}; pass "
                        "model-ready samples, preprocessed as for training")
    return samples


def _reader(input_name: str, samples: np.ndarray, input_shape: list):
    # lazy: onnxruntime.quantization takes about 0.25 s to import; only int8 export needs it
    from onnxruntime.quantization import CalibrationDataReader

    # Equal batches: ORT's histogram calibrators (entropy, percentile) stack every batch's
    # outputs, so a shorter last batch would break them; the largest divisor of N up to 64.
    step = input_shape[0] if input_shape and input_shape[0] else max(
        size for size in range(1, _CALIBRATION_BATCH + 1) if len(samples) % size == 0)

    class SampleReader(CalibrationDataReader):
        def __init__(self):
            self._starts = iter(range(0, len(samples), step))

        def get_next(self):
            start = next(self._starts, None)
            return None if start is None else {input_name: samples[start:start + step]}

    return SampleReader()


def _preprocess(source: Path, target: Path, shown_name: str) -> Path:
    """``quant_pre_process`` without symbolic shape inference (it needs sympy, which edgekit
    does not depend on; it serves transformer-style dynamic shapes, not the zoo's CNNs)."""
    # lazy: onnxruntime.quantization takes about 0.25 s to import; only int8 export needs it
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # quant_pre_process logs an ORT optimization failure and carries on without it; catch it.
    errors = _ErrorRecords()
    logger = logging.getLogger("onnxruntime.quantization.shape_inference")
    logger.addHandler(errors)
    propagate, logger.propagate = logger.propagate, False
    try:
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
    except Exception as error:  # noqa: BLE001  (onnx shape inference and ORT raise their own)
        raise ModelError(_preprocess_failure(shown_name, _first_line(error))) from error
    finally:
        logger.removeHandler(errors)
        logger.propagate = propagate
    if errors.messages or not target.is_file():
        # Only the log holds the cause; keep it as the chained error for --verbose.
        logged = RuntimeError("\n".join(errors.messages) or "quant_pre_process wrote no model")
        raise ModelError(_preprocess_failure(shown_name, _last_line(logged))) from logged
    return target


def _preprocess_failure(name: str, reason: str) -> str:
    return (f"ONNX Runtime pre-processing (quant_pre_process) of {name} failed: {reason}; "
            "expected an fp32 graph ONNX Runtime can optimize; pass preprocess=False to "
            "quantize without it")


class _ErrorRecords(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage().strip())


def _check_nodes(source: Path, excluded: list[str], original: Path | None) -> None:
    if not excluded:
        return
    names = [node.name for node in _load(source).graph.node]
    unknown = [name for name in excluded if name not in names]
    if not unknown:
        return
    fused = original is not None and unknown[0] in [n.name for n in _load(original).graph.node]
    where = ("pre-processing fused it into another node" if fused
             else "it is not a node of the graph")
    candidates = [name for name in names if unknown[0] in name] or names
    shown = ", ".join(repr(name) for name in candidates[:6]) + (", ..." * (len(candidates) > 6))
    raise OptionError(f"cannot keep node {unknown[0]!r} in float: {where}; expected a node of the "
                      f"graph being quantized, e.g. {shown}")


def _ort_method(method: str):
    # lazy: onnxruntime.quantization takes about 0.25 s to import; only int8 export needs it
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[method]


@contextlib.contextmanager
def _quiet_ort():
    """ORT's quantizer warns on the root logger and its histogram calibrators print to stdout."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with quiet_native_logs(), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


# --- fold_qat_weights helpers ---------------------------------------------------------------


def _constants(graph) -> dict:
    """name -> numpy value of every initializer and Constant node output."""
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import numpy_helper

    values = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _fold_quantize_nodes(graph) -> list:
    """Replace each QuantizeLinear of a constant by the int8 initializer it would produce.

    Returns the nodes and values it bypassed (Identity, Transpose, Constant, float weights).
    """
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import helper, numpy_helper

    constants = _constants(graph)
    producers = {name: node for node in graph.node for name in node.output}
    outputs = {value.name for value in graph.output}
    bypassed = []
    for node in list(graph.node):
        if (node.op_type != "QuantizeLinear" or node.domain not in ("", "ai.onnx")
                or node.output[0] in outputs):
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        zero_point_name = node.input[2] if len(node.input) > 2 else ""
        if (node.input[1] not in constants or (zero_point_name and zero_point_name not in constants)
                or attributes.get("block_size", 0) or "output_dtype" in attributes):
            continue
        steps, value = _trace_constant(node.input[0], producers, constants)
        if value is None or value.dtype != np.float32:
            continue
        zero_point = constants.get(zero_point_name, np.zeros((), np.uint8))
        if zero_point.dtype not in (np.int8, np.uint8):
            continue
        quantized = _quantize_linear(value, constants[node.input[1]], zero_point,
                                     attributes.get("axis", 1))
        graph.initializer.append(numpy_helper.from_array(quantized, node.output[0]))
        graph.node.remove(node)
        bypassed += steps
    return bypassed


def _trace_constant(name: str, producers: dict, constants: dict):
    """(bypassed nodes and source name, value) of a constant reached through Identity /
    Transpose nodes, or ([], None) when ``name`` is not a constant."""
    steps = []
    while (node := producers.get(name)) is not None and node.op_type != "Constant":
        if node.op_type not in ("Identity", "Transpose"):
            return [], None
        steps.append(node)
        name = node.input[0]
    if name not in constants:
        return [], None  # a graph input, or a Constant holding something else than a tensor
    value = constants[name]
    for node in reversed(steps):
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        value = np.transpose(value, perm) if node.op_type == "Transpose" else value
    constant = [producers[name]] if name in producers else []
    return [*steps, *constant, name], value


def _quantize_linear(value, scale, zero_point, axis: int) -> np.ndarray:
    """ONNX QuantizeLinear: saturate(round_half_to_even(x / scale) + zero_point)."""
    scale = np.asarray(scale, dtype=np.float32)
    offset = np.asarray(zero_point).astype(np.int32)
    if scale.ndim == 1 and value.ndim:
        shape = [1] * value.ndim
        shape[axis % value.ndim] = -1
        scale, offset = scale.reshape(shape), offset.reshape(shape)
    levels = np.rint(value.astype(np.float32) / scale).astype(np.int64) + offset
    limits = np.iinfo(zero_point.dtype)
    return np.clip(levels, limits.min, limits.max).astype(zero_point.dtype)


def _fold_grid_weights(graph) -> None:
    """Store float weights that lie on a symmetric int8 grid as int8 behind a DequantizeLinear."""
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import helper, numpy_helper

    initializers = {tensor.name: tensor for tensor in graph.initializer}
    for name in _float_weights(graph):
        weight = numpy_helper.to_array(initializers[name])
        found = _on_int8_grid(weight) if weight.dtype == np.float32 else None
        if found is None:
            continue
        levels, scale, axis = found
        graph.initializer.remove(initializers[name])
        for value in [value for value in graph.input if value.name == name]:
            graph.input.remove(value)  # IR < 4 lists initializers as inputs too
        graph.initializer.extend([
            numpy_helper.from_array(levels, f"{name}_int8"),
            numpy_helper.from_array(scale, f"{name}_int8_scale"),
            numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{name}_int8_zero_point")])
        extra = {} if axis is None else {"axis": axis}
        # The DequantizeLinear outputs the weight's old name: every consumer reads the same values.
        graph.node.insert(0, helper.make_node(
            "DequantizeLinear", [f"{name}_int8", f"{name}_int8_scale", f"{name}_int8_zero_point"],
            [name], name=f"{name}_DequantizeLinear", **extra))


def _on_int8_grid(weight: np.ndarray):
    """(int8 levels, scale, axis or None) when every value is level * scale, |level| <= 127."""
    for axis in (None, *range(weight.ndim)):
        reduced = tuple(i for i in range(weight.ndim) if i != axis)
        largest = np.abs(weight).max(axis=reduced, keepdims=True)
        scale = np.where(largest > 0, largest / 127, 1).astype(np.float32)
        ratio = weight / scale
        levels = np.rint(ratio)
        if np.abs(ratio - levels).max() <= _GRID_TOLERANCE:
            return levels.astype(np.int8), scale.reshape(() if axis is None else -1), axis
    return None


def _float_weights(graph) -> list[str]:
    """Float initializers used directly as the weight input of a Conv / MatMul / Gemm."""
    floats = {tensor.name for tensor in graph.initializer if tensor.data_type in _FLOAT_TYPES
              and len(tensor.dims) >= 2}
    names = {}
    for node in graph.node:
        index = _WEIGHT_INPUT.get(node.op_type)
        if index is not None and len(node.input) > index and node.input[index] in floats:
            names[node.input[index]] = None
    return list(names)


def _remove_unused(graph, bypassed: list) -> None:
    """Drop the bypassed nodes and float initializers that nothing reads any more."""
    nodes = [item for item in bypassed if not isinstance(item, str)]
    names = {item for item in bypassed if isinstance(item, str)}
    while True:
        used = {name for node in graph.node for name in node.input}
        used |= {value.name for value in graph.output}
        dead = [node for node in nodes if node in graph.node
                and not any(name in used for name in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    for tensor in [t for t in graph.initializer if t.name in names and t.name not in used]:
        graph.initializer.remove(tensor)
    for value in [v for v in graph.input if v.name in names and v.name not in used]:
        graph.input.remove(value)


def _last_line(error: BaseException) -> str:
    """The last line of a logged traceback: the exception that ended it."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return _first_line(RuntimeError(lines[-1] if lines else type(error).__name__))


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = lines[0] if lines else type(error).__name__
    # ORT names the scratch copy it loaded, a path gone by the time the user reads it.
    message = re.sub(r"Load model from \S+ failed: ?", "", message)
    message = message.replace("onnxruntime.capi.onnxruntime_pybind11_state.", "")
    return message if len(message) <= 200 else message[:197] + "..."
