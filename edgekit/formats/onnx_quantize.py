"""Int8 ONNX: static QDQ quantization of an fp32 graph, and int8 weights for a QAT graph.

- :func:`quantize_static_int8`: the float graph is first rewritten so that ONNX Runtime fuses
  every quantized op into an integer kernel (:func:`edgekit.formats.onnx_graph.
  prepare_float_graph`: Reshapes to the same shape dropped, BatchNormalization folded into its
  Conv, global pools over 1 x 1 dropped), then ONNX Runtime's ``quant_pre_process`` (shape
  inference, basic fusions) and ``quantize_static`` in the QDQ format with per-channel int8
  weights. The activation type is the host's fast one: on x86-64 ONNX Runtime's int8 kernels
  take uint8 activations (U8S8; int8 activations there were measured slower than fp32), on Arm
  int8 activations (S8S8).
- :func:`fold_qat_weights` (:mod:`edgekit.formats.onnx_qat`): a quantization-aware model
  converted by tf2onnx keeps its weights in float32, and a Relu before each QuantizeLinear
  that kept ONNX Runtime from fusing its integer kernels. This stores the weights as int8
  behind a DequantizeLinear and takes the Relus out, the values unchanged.
- :func:`int8_weight_summary` / :func:`qat_int8_summary`: what a file holds, for tests and reports.
- :func:`integer_kernel_summary`: which kernels ONNX Runtime actually runs for a file (its
  optimized graph): an int8 file should run QLinearConv / QGemm and no float Conv.

Example:
    >>> options = quantize_static_int8("model_fp32.onnx", "model_int8.onnx", samples)
    >>> options["scheme"], options["activation_type"]
    ('u8s8', 'uint8')
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import platform
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from edgekit._compat import quiet_native_logs
from edgekit.errors import DataError, ModelError, OptionError
from edgekit.formats.onnx_graph import constants as _constants
from edgekit.formats.onnx_graph import narrow_input_convs, prepare_float_graph
from edgekit.formats.onnx_qat import FLOAT_TYPES, REWRITES_KEY, fold_qat_weights, float_weights

__all__ = ["CALIBRATION_METHODS", "SCHEMES", "check_calibration_method", "fold_qat_weights",
           "host_scheme", "int8_weight_summary", "integer_kernel_summary", "qat_int8_summary",
           "quantize_static_int8", "resolve_scheme"]

SCHEMES = ("u8s8", "s8s8")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
_SCHEME_CHOICES = ("auto", *SCHEMES)
_ACTIVATION_TYPES = {"u8s8": "uint8", "s8s8": "int8"}
_X86_MACHINES = {"x86_64", "amd64", "x64", "i386", "i486", "i586", "i686", "x86"}
_CALIBRATION_BATCH = 64
_ONNX_INT8, _ONNX_UINT8 = 3, 2
# ONNX Runtime's integer kernels (CPU), and the float ops an int8 graph should not run.
INTEGER_OPS = ("QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger",
               "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool", "QLinearAveragePool",
               "QLinearSoftmax", "QLinearLeakyRelu", "QLinearSigmoid", "QLinearConcat",
               "NhwcMaxPool", "DynamicQuantizeMatMul", "MatMulIntegerToFloat")
FLOAT_COMPUTE_OPS = ("Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "BatchNormalization",
                     "ConvTranspose")


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
                         nodes_to_exclude=(), preprocess: bool = True,
                         float_narrow_convs: bool = False) -> dict:
    """Write a QDQ int8 model of the fp32 file, calibrated on ``calibration`` samples.

    The float graph is rewritten first (:func:`edgekit.formats.onnx_graph.prepare_float_graph`)
    so ONNX Runtime runs every quantized op with an integer kernel; the counts are recorded
    under ``graph_rewrites``.

    Args:
        fp32_path: the fp32 .onnx file (one float input).
        int8_path: where to write the int8 file (overwritten).
        calibration: model-ready float32 samples ``(N, *input_shape)``.
        scheme: ``"u8s8"``, ``"s8s8"`` or ``"auto"`` (the host's, see :func:`host_scheme`).
        method: ``"minmax"``, ``"entropy"`` or ``"percentile"``.
        nodes_to_exclude: names of nodes (after pre-processing) to keep in float.
        preprocess: run ``quant_pre_process`` first (recommended by ONNX Runtime).
        float_narrow_convs: also keep in float the Convs with fewer than 4 input channels (the
            first one over a greyscale or RGB image): ONNX Runtime's int8 kernel is 2-3x slower
            than its fp32 one there (measured on x86-64, ONNX Runtime 1.32: the whole cnn /
            resnet8 / ds_cnn int8 model 4-15% faster). Off by default, so every weight is int8.

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
        options["graph_rewrites"], narrow = _prepare(source, float_narrow_convs)
        if preprocess:
            source = _preprocess(source, Path(scratch) / "model_pre.onnx", fp32_path.name)
        _check_nodes(source, excluded, fp32_path if preprocess else None)
        names = {node.name for node in _load(source).graph.node}
        options["float_narrow_convs"] = [name for name in narrow
                                         if name in names and name not in excluded]
        excluded = [*excluded, *options["float_narrow_convs"]]
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
            "float_weight_initializers": len(float_weights(graph)),
            "float_initializers": sum(kind in FLOAT_TYPES for kind in by_type),
            "bytes": proto.ByteSize()}


def qat_int8_summary(proto) -> dict:
    """``{"int8_initializers", "float_weight_initializers", "bytes", "rewrites"}`` of a (folded)
    QAT model; ``rewrites`` counts the integer-kernel rewrites :func:`fold_qat_weights` made."""
    summary = int8_weight_summary(proto)
    recorded = [entry.value for entry in proto.metadata_props if entry.key == REWRITES_KEY]
    return {**{key: summary[key] for key in ("int8_initializers", "float_weight_initializers",
                                             "bytes")},
            "rewrites": json.loads(recorded[0]) if recorded else {}}


def integer_kernel_summary(path_or_proto) -> dict:
    """Which kernels ONNX Runtime (CPU, all graph optimizations) runs for a model.

    Returns:
        ``{"ops", "integer_ops", "float_compute_ops", "standalone_qdq"}``: op type -> count in
        the optimized graph ONNX Runtime builds; integer ops are QLinearConv, QGemm, ...; float
        compute ops are Conv / FusedConv / Gemm / MatMul / BatchNormalization left in float;
        standalone QDQ are the QuantizeLinear / DequantizeLinear nodes left unfused.

    Raises:
        ModelError: when ONNX Runtime cannot load the model.

    Example:
        >>> integer_kernel_summary("model_int8.onnx")["float_compute_ops"]
        {}
    """
    # lazy: onnxruntime takes about 0.3 s to import; only int8 checks need it
    import onnxruntime

    proto = (path_or_proto if hasattr(path_or_proto, "graph")
             else _load(Path(path_or_proto), "an .onnx file"))
    with tempfile.TemporaryDirectory(prefix="edgekit-optimized-") as scratch:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(scratch) / "optimized.onnx")
        try:
            with quiet_native_logs():
                onnxruntime.InferenceSession(proto.SerializeToString(), options,
                                             providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001  (ORT raises its own types)
            raise ModelError(f"ONNX Runtime cannot load the model: {_first_line(error)}; "
                             "expected a model ONNX Runtime runs; export it again") from error
        ops = Counter(node.op_type for node in _load(Path(options.optimized_model_filepath),
                                                     "ONNX Runtime's optimized model").graph.node)
    return {"ops": dict(ops),
            "integer_ops": {op: n for op, n in ops.items() if op in INTEGER_OPS},
            "float_compute_ops": {op: n for op, n in ops.items() if op in FLOAT_COMPUTE_OPS},
            "standalone_qdq": {op: n for op, n in ops.items()
                               if op in ("QuantizeLinear", "DequantizeLinear")}}


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


def _prepare(source: Path, float_narrow: bool) -> tuple[dict, list[str]]:
    """Rewrite the float graph at ``source`` (in place) for integer kernels.

    Returns the rewrite counts and, with ``float_narrow``, the Convs to keep in float.
    """
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    import onnx

    # A narrow Conv kept in float is left as it is (no SpaceToDepth in front of a float Conv).
    proto, counts = prepare_float_graph(_load(source), space_to_depth=not float_narrow)
    onnx.save(proto, str(source))
    return counts, narrow_input_convs(proto.graph) if float_narrow else []


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
