"""What a .tflite file really ships: its weight tensors, read from the flatbuffer itself.

Sparsity and clustering are claims about the weights; the proof is in the file a device loads,
not in the Keras model. This module parses the flatbuffer with the schema that ships with LiteRT
(``ai_edge_litert.schema_py_generated``, no TensorFlow needed) and reads the constant buffers
that feed each op's weight inputs (:data:`WEIGHT_INPUTS`), following a DEQUANTIZE op back to its
float16 or int8 constant.

Example:
    >>> stats = weight_sparsity(Path("model.tflite").read_bytes())
    >>> stats["sparsity"], stats["by_dtype"]["int8"]["zeros"]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.errors import ModelError

# Op -> the input positions that hold weights (TFLite layouts: CONV_2D [out, h, w, in],
# DEPTHWISE_CONV_2D [1, h, w, out], FULLY_CONNECTED [out, in]). Biases are left out: pruning and
# clustering never touch them.
WEIGHT_INPUTS = {
    "CONV_2D": (1,),
    "CONV_3D": (1,),
    "DEPTHWISE_CONV_2D": (1,),
    "TRANSPOSE_CONV": (1,),
    "FULLY_CONNECTED": (1,),
    "BATCH_MATMUL": (1,),
    "EMBEDDING_LOOKUP": (1,),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (1, 2, 3, 4, 5, 6, 7, 8),
}

_DTYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT8": np.int8, "UINT8": np.uint8,
           "INT16": np.int16, "INT32": np.int32, "FLOAT64": np.float64}


@dataclass
class WeightTensor:
    """One constant weight tensor of a .tflite file, in its TFLite layout."""

    name: str
    op: str
    dtype: str
    values: np.ndarray
    zero_points: np.ndarray | None = None
    quantized_dimension: int = 0

    @property
    def zeros(self) -> int:
        """Entries that mean 0.0 (the zero point, for quantized weights)."""
        if self.zero_points is None or not self.zero_points.size or not self.zero_points.any():
            return int(np.count_nonzero(self.values == 0))
        shape = [1] * self.values.ndim
        shape[self.quantized_dimension] = -1
        zero_points = self.zero_points.reshape(shape) if self.zero_points.size > 1 else self.zero_points
        return int(np.count_nonzero(self.values == zero_points))

    def summary(self) -> dict:
        return {"name": self.name, "op": self.op, "dtype": self.dtype,
                "shape": list(self.values.shape), "values": int(self.values.size),
                "zeros": self.zeros, "sparsity": round(self.zeros / max(1, self.values.size), 6),
                "distinct_values": int(len(np.unique(self.values)))}


def read_weight_tensors(content: bytes) -> list[WeightTensor]:
    """The weight tensors of every op in :data:`WEIGHT_INPUTS`, each buffer once.

    Raises:
        ModelError: if ``content`` is not a TFLite flatbuffer.
    """
    from ai_edge_litert import schema_py_generated as schema  # lazy: LiteRT is heavy to load

    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0))
    except Exception as error:  # noqa: BLE001  (flatbuffers raises struct/index errors)
        raise ModelError(f"cannot parse the TFLite flatbuffer ({type(error).__name__}: {error}); "
                         "expected a .tflite file written by the TFLite converter") from error
    op_names = {value: key for key, value in vars(schema.BuiltinOperator).items()
                if not key.startswith("_")}
    type_names = {value: key for key, value in vars(schema.TensorType).items()
                  if not key.startswith("_")}
    found, seen = [], set()
    for subgraph in model.subgraphs or []:
        dequantized_from = {}
        for operator in subgraph.operators or []:
            if _op_name(model, operator, op_names) == "DEQUANTIZE":
                dequantized_from[int(operator.outputs[0])] = int(operator.inputs[0])
        for operator in subgraph.operators or []:
            op = _op_name(model, operator, op_names)
            for position in WEIGHT_INPUTS.get(op, ()):
                if position >= len(operator.inputs) or operator.inputs[position] < 0:
                    continue
                index = dequantized_from.get(int(operator.inputs[position]),
                                             int(operator.inputs[position]))
                tensor = subgraph.tensors[index]
                if tensor.buffer in seen:
                    continue
                values = _buffer_values(model, tensor, content, type_names)
                if values is None:
                    continue
                seen.add(tensor.buffer)
                quantization = tensor.quantization
                zero_points = None
                if quantization is not None and quantization.zeroPoint is not None:
                    zero_points = np.asarray(quantization.zeroPoint, dtype=np.int64)
                found.append(WeightTensor(
                    name=tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name),
                    op=op, dtype=np.dtype(values.dtype).name, values=values,
                    zero_points=zero_points,
                    quantized_dimension=int(getattr(quantization, "quantizedDimension", 0) or 0),
                ))
    return found


def weight_sparsity(content: bytes) -> dict:
    """Zeros among the weights a .tflite file ships, overall and per stored dtype.

    Returns:
        ``{"tensors", "values", "zeros", "sparsity", "by_dtype": {dtype: {"tensors", "values",
        "zeros", "sparsity"}}, "per_tensor": [WeightTensor.summary(), ...]}``.
    """
    tensors = read_weight_tensors(content)
    by_dtype: dict[str, dict] = {}
    for tensor in tensors:
        entry = by_dtype.setdefault(tensor.dtype, {"tensors": 0, "values": 0, "zeros": 0})
        entry["tensors"] += 1
        entry["values"] += int(tensor.values.size)
        entry["zeros"] += tensor.zeros
    for entry in by_dtype.values():
        entry["sparsity"] = round(entry["zeros"] / max(1, entry["values"]), 6)
    values = sum(entry["values"] for entry in by_dtype.values())
    zeros = sum(entry["zeros"] for entry in by_dtype.values())
    return {"tensors": len(tensors), "values": values, "zeros": zeros,
            "sparsity": round(zeros / max(1, values), 6), "by_dtype": by_dtype,
            "per_tensor": [tensor.summary() for tensor in tensors]}


def _op_name(model, operator, op_names: dict) -> str:
    code = model.operatorCodes[operator.opcodeIndex]
    # Ops numbered above 127 live in builtinCode; the deprecated byte field caps at 127.
    return op_names.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)), "CUSTOM")


def _buffer_values(model, tensor, content: bytes, type_names: dict) -> np.ndarray | None:
    dtype = _DTYPES.get(type_names.get(tensor.type, ""))
    if dtype is None or tensor.buffer <= 0 or tensor.buffer >= len(model.buffers):
        return None
    buffer = model.buffers[tensor.buffer]
    if buffer.data is not None and len(buffer.data):
        raw = np.asarray(buffer.data, dtype=np.uint8).tobytes()
    elif getattr(buffer, "offset", 0) and buffer.offset > 1:
        # Files over 2 GB keep buffers after the flatbuffer, addressed by offset and size.
        raw = content[buffer.offset : buffer.offset + buffer.size]
    else:
        return None
    values = np.frombuffer(raw, dtype=dtype)
    shape = [int(size) for size in (tensor.shape if tensor.shape is not None else [])]
    return values.reshape(shape) if shape and int(np.prod(shape)) == values.size else values
