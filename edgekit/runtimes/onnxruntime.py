"""ONNX Runtime: load an .onnx file, run a float batch, describe its inputs, outputs and ops.

Whatever is wrong with the file (missing, truncated, random bytes, a graph ONNX Runtime refuses)
becomes one :class:`ModelError` line, never a traceback.

It follows the interface of :mod:`edgekit.runtimes` (``load``, ``run``, ``describe``).

Example:
    >>> from edgekit.runtimes.onnxruntime import OnnxRuntimeModel
    >>> runtime = OnnxRuntimeModel.load("models/cnn-digits/export/model_fp32.onnx", num_threads=1)
    >>> probabilities = runtime.run(x_test)   # float32 (N, 10)
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from edgekit.errors import DataError, ModelError, OptionError, first_line
from edgekit.options import Option
from edgekit.runtimes.base import NUM_THREADS, Runtime

EXPECTED = "an .onnx file written by tf2onnx or edgekit export"
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
CPU_PROVIDER = "CPUExecutionProvider"
ORT_OPTIMIZATION = Option("ort_optimization", str, "all", "ONNX Runtime graph optimization level",
                          choices=OPTIMIZATION_LEVELS)
ORT_PROVIDER = Option("ort_provider", str, CPU_PROVIDER, "ONNX Runtime execution provider",
                      example=CPU_PROVIDER)

# ONNX TensorProto element types -> numpy dtype names (the ones a classifier can use).
ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
               9: "bool", 10: "float16", 11: "float64", 16: "bfloat16"}


class OnnxRuntimeModel(Runtime):
    """An .onnx file loaded into an ONNX Runtime session (CPU unless another provider is chosen).

    Args:
        path: the .onnx file.
        num_threads: intra-op threads (None lets ONNX Runtime choose).
        optimization: graph optimization level: "disable", "basic", "extended" or "all".
        providers: execution providers, in order of preference (default CPU only).

    Raises:
        ModelError: if the file is missing or ONNX Runtime cannot load it.
    """

    name = "onnxruntime"
    format = "onnx"
    suffixes = (".onnx",)
    options = (NUM_THREADS, ORT_OPTIMIZATION, ORT_PROVIDER)
    libraries = ("onnxruntime",)
    modules = ("onnxruntime",)

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None,
                 optimization: str = "all", providers: tuple[str, ...] = (CPU_PROVIDER,)):
        import onnxruntime  # lazy: a heavy library

        self.num_threads = num_threads
        self.path = Path(path)
        self.providers = tuple(providers)
        if not self.path.is_file():
            raise ModelError(f"ONNX file {str(path)!r} does not exist; expected {EXPECTED}")
        levels = {"disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL}
        if optimization not in levels:
            raise ModelError(f"unknown optimization level {optimization!r}; expected one of: "
                             f"{', '.join(levels)}")
        self.optimization = optimization
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = levels[optimization]
        options.log_severity_level = 3  # errors only: warnings about unused initializers are noise
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), sess_options=options,
                                                        providers=list(providers))
        except Exception as error:  # noqa: BLE001  (protobuf, graph and kernel errors alike)
            raise ModelError(
                f"ONNX Runtime cannot load {str(path)!r}: {first_line(error)}; expected "
                f"{EXPECTED}; export it again"
            ) from error
        self.input = self.session.get_inputs()[0]
        self.outputs = self.session.get_outputs()

    @classmethod
    def load(cls, path: str | os.PathLike, num_threads: int | None = None,
             ort_optimization: str = "all", ort_provider: str = CPU_PROVIDER) -> "OnnxRuntimeModel":
        """Load an .onnx file; ModelError for a missing, truncated or corrupt one.

        Raises:
            OptionError: for an execution provider this ONNX Runtime does not have.
        """
        return cls(path, num_threads=num_threads, optimization=ort_optimization,
                   providers=_providers(ort_provider))

    def run(self, batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The first output for float32 model-ready samples, as float32 (fp16 is widened).

        Raises:
            DataError: when the samples' shape does not match the model's input.
        """
        batch = np.asarray(batch)
        expected = _dtype_of(self.input.type)
        if expected in ("float32", "float16"):
            batch = batch.astype(expected, copy=False)
        fixed = [d for d in self.input.shape[1:]]
        if len(fixed) != batch.ndim - 1 or any(
                isinstance(d, int) and d != s for d, s in zip(fixed, batch.shape[1:])):
            raise DataError(
                f"{self.path.name} takes input {self.input.name!r} of shape {self.input.shape}; "
                f"received a batch of shape {list(batch.shape)}. Preprocess the data the way the "
                f"model was trained"
            )
        step = max(1, int(batch_size))
        results = []
        for start in range(0, len(batch), step):
            try:
                results.append(self.session.run([self.outputs[0].name],
                                                {self.input.name: batch[start:start + step]})[0])
            except Exception as error:  # noqa: BLE001
                raise ModelError(f"ONNX Runtime failed to run {self.path.name}: "
                                 f"{first_line(error)}") from error
        if not results:
            return np.zeros((0, *[d if isinstance(d, int) else 0 for d in self.outputs[0].shape[1:]]),
                            dtype=np.float32)
        return np.concatenate(results).astype(np.float32, copy=False)

    def prepared_call(self, batch: np.ndarray):
        """``session.run`` on a feed prepared once (the input converted to the model's dtype)."""
        dtype = np.float16 if _dtype_of(self.input.type) == "float16" else np.float32
        feed = {self.input.name: np.ascontiguousarray(batch, dtype=dtype)}
        names, session = [self.outputs[0].name], self.session
        return (lambda: session.run(names, feed)), "session.run() with a prepared feed"

    def describe(self) -> dict:
        """Input and output tensors (name, shape with -1 for a dynamic axis, dtype)."""
        return {"runtime": self.name, "num_threads": self.num_threads,
                "optimization": self.optimization, "providers": list(self.providers),
                "input": _session_tensor(self.input), "output": _session_tensor(self.outputs[0])}


def _providers(provider: str) -> tuple[str, ...]:
    """``provider`` first, then the CPU (OptionError when this ONNX Runtime lacks it)."""
    import onnxruntime  # lazy: a heavy library

    available = onnxruntime.get_available_providers()
    if provider not in available:
        raise OptionError(f"ONNX Runtime execution provider {provider!r} is not available here; "
                          f"expected one of: {', '.join(available)}")
    return (provider,) if provider == CPU_PROVIDER else (provider, CPU_PROVIDER)


def describe_onnx_model(proto, path: str | os.PathLike | None = None) -> dict:
    """A JSON-ready summary of an ONNX ``ModelProto``.

    Returns:
        ``{"format", "opset", "producer", "inputs", "outputs", "ops", "quantization"}``:
        inputs / outputs as ``{"name", "shape", "dtype"}`` (``None`` for a dynamic axis), ``ops``
        as op type -> count, ``quantization`` the QuantizeLinear scales and zero points
        applied to the graph's inputs, if any.
    """
    graph = proto.graph
    initializers = {tensor.name for tensor in graph.initializer}
    opsets = {entry.domain or "ai.onnx": int(entry.version) for entry in proto.opset_import}
    summary = {
        "format": "onnx",
        "opset": opsets.get("ai.onnx"),
        "opsets": opsets,
        "ir_version": int(proto.ir_version),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "inputs": [_value_info(value) for value in graph.input if value.name not in initializers],
        "outputs": [_value_info(value) for value in graph.output],
        "ops": dict(sorted(Counter(node.op_type for node in graph.node).items())),
        "metadata": {entry.key: entry.value for entry in proto.metadata_props},
    }
    summary["quantization"] = _io_quantization(graph, summary)
    if path is not None:
        summary["bytes"] = Path(path).stat().st_size
    return summary


def _io_quantization(graph, summary: dict) -> dict:
    """Scale / zero point of the QuantizeLinear fed by each graph input (QDQ models)."""
    from onnx import numpy_helper  # lazy: a heavy library

    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    consumers, producers = {}, {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producers[name] = node
    found = {}
    for value in summary["inputs"]:
        node = _follow(value["name"], lambda name: (consumers.get(name) or [None])[0], "input")
        if node is not None and node.op_type == "QuantizeLinear":
            found[value["name"]] = _scale_zero_point(node, constants)
    for value in summary["outputs"]:
        node = _follow(value["name"], producers.get, "output")
        if node is not None and node.op_type == "DequantizeLinear":
            found[value["name"]] = _scale_zero_point(node, constants)
    return found


# Ops that only move values around: a graph input's QuantizeLinear often sits behind a layout
# Transpose that tf2onnx inserts (NHWC -> NCHW).
_LAYOUT_OPS = {"Transpose", "Reshape", "Identity", "Flatten", "Squeeze", "Unsqueeze"}


def _follow(name: str, step, direction: str):
    """The first non-layout node after an input (or before an output), at most a few hops."""
    for _ in range(4):
        node = step(name)
        if node is None or node.op_type not in _LAYOUT_OPS:
            return node
        name = node.output[0] if direction == "input" else node.input[0]
    return None


def _scale_zero_point(node, constants: dict) -> dict:
    scale = constants.get(node.input[1])
    zero_point = constants.get(node.input[2]) if len(node.input) > 2 else None
    return {"scale": None if scale is None else scale.ravel().tolist(),
            "zero_point": None if zero_point is None else zero_point.ravel().tolist(),
            "dtype": None if zero_point is None else str(zero_point.dtype)}


def _value_info(value) -> dict:
    tensor_type = value.type.tensor_type
    shape = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim]
    return {"name": value.name, "shape": shape,
            "dtype": ONNX_DTYPES.get(tensor_type.elem_type, str(tensor_type.elem_type))}


def _session_tensor(value) -> dict:
    return {"name": value.name,
            "shape": [size if isinstance(size, int) else -1 for size in value.shape],
            "dtype": _dtype_of(value.type), "quantization": None}


def _dtype_of(type_string: str) -> str:
    """``"tensor(float)"`` -> ``"float32"``."""
    names = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
             "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int32)": "int32",
             "tensor(int64)": "int64"}
    return names.get(type_string, type_string)
