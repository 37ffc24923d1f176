"""LiteRT (the TFLite interpreter, ``ai_edge_litert``): load a .tflite, run float batches through it.

Inputs are always float32, model-ready samples; a model with int8 (or int16) input and output
tensors gets them quantized with the input tensor's scale and zero point, and its outputs are
dequantized, so a caller compares any .tflite with its Keras parent on the same arrays.

Example:
    >>> from edgekit.runtimes.litert import LiteRTModel
    >>> runtime = LiteRTModel.load("models/cnn-digits-int8/model.tflite", num_threads=1)
    >>> probabilities = runtime.run(x_test)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgekit._compat import quiet_native_logs
from edgekit.errors import DataError, ModelError, OptionError, first_line
from edgekit.options import Option
from edgekit.runtimes.base import NUM_THREADS, Runtime

EXPECTED = "a .tflite flatbuffer written by the TFLite converter (edgekit compress / export)"
XNNPACK = Option("xnnpack", bool, True, "LiteRT with its XNNPACK delegate (the default) or with "
                 "its builtin kernels only (--no-xnnpack)")


class LiteRTModel(Runtime):
    """One .tflite model in a LiteRT interpreter (XNNPACK on, as LiteRT ships it, unless turned off).

    Args:
        content: the flatbuffer's bytes.
        num_threads: interpreter threads; None lets LiteRT choose.
        source: how messages name the model (its path).
        xnnpack: False runs LiteRT's builtin kernels only (no default delegate).

    Raises:
        ModelError: for bytes that are not a valid, loadable TFLite model.
    """

    name = "litert"
    format = "tflite"
    suffixes = (".tflite",)
    options = (NUM_THREADS, XNNPACK)
    libraries = ("ai-edge-litert",)
    modules = ("ai_edge_litert.interpreter",)

    def __init__(self, content: bytes, num_threads: int | None = None, source: str = "model",
                 xnnpack: bool = True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType  # lazy: a heavy library

        self.source = source
        self.num_threads = num_threads
        self.xnnpack = bool(xnnpack)
        if not content:
            raise ModelError(f"TFLite model {source} is empty; expected {EXPECTED}; export it again")
        resolver = OpResolverType.AUTO if self.xnnpack else \
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with quiet_native_logs():
                self._interpreter = Interpreter(model_content=bytes(content),
                                                num_threads=num_threads,
                                                experimental_op_resolver_type=resolver)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelError(
                f"cannot load TFLite model {source}: {first_line(error)}; expected {EXPECTED}; "
                "the file may be truncated or corrupt, export it again"
            ) from error
        self._inputs = self._interpreter.get_input_details()
        self._outputs = self._interpreter.get_output_details()
        self._input, self._output = self._inputs[0], self._outputs[0]
        self._batch = None if self._input["shape_signature"][0] == -1 else int(self._input["shape"][0])
        self._resized_to = int(self._input["shape"][0])

    @classmethod
    def load(cls, path: str | os.PathLike, num_threads: int | None = None,
             xnnpack: bool = True) -> "LiteRTModel":
        """Load a .tflite file; ModelError for a missing, empty, truncated or corrupt one."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"TFLite model {str(path)!r} does not exist; expected {EXPECTED}")
        return cls(path.read_bytes(), num_threads=num_threads, source=repr(str(path)),
                   xnnpack=xnnpack)

    @property
    def input_shape(self) -> tuple:
        """One sample's shape (without the batch axis)."""
        return tuple(int(size) for size in self._input["shape"][1:])

    @property
    def input_dtype(self) -> str:
        return np.dtype(self._input["dtype"]).name

    @property
    def output_dtype(self) -> str:
        return np.dtype(self._output["dtype"]).name

    def describe(self) -> dict:
        """Input and output tensors: name, shape (-1 = any batch), dtype and quantization.

        ``input`` / ``output`` are the first ones; ``inputs`` / ``outputs`` list every tensor
        (a model with several loads and describes; only running it needs one of each).
        """
        return {"runtime": self.name, "num_threads": self.num_threads, "xnnpack": self.xnnpack,
                "input": _tensor_summary(self._input), "output": _tensor_summary(self._output),
                "inputs": [_tensor_summary(tensor) for tensor in self._inputs],
                "outputs": [_tensor_summary(tensor) for tensor in self._outputs]}

    def run(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Float32 outputs for float32 model-ready inputs ``(N, *input_shape)``.

        Models with a dynamic batch run ``batch_size`` samples per invocation; models with a fixed
        batch (e.g. LSTMs converted with batch 1) run their own batch size.

        Raises:
            DataError: when the samples' shape does not match the model's input.
            ModelError: for a model with more than one input or output.
        """
        self._check_single_input_output()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != len(self._input["shape"]) or tuple(x.shape[1:]) != self.input_shape:
            raise DataError(
                f"samples of shape {tuple(x.shape)} do not fit TFLite model {self.source}, which "
                f"takes (N, {', '.join(str(size) for size in self.input_shape)}); pass samples "
                "of the dataset the model was trained on"
            )
        step = self._batch or max(1, int(batch_size))
        outputs = [self._invoke(x[start : start + step]) for start in range(0, len(x), step)]
        if not outputs:
            return np.zeros((0, *self._output["shape"][1:]), dtype=np.float32)
        return np.concatenate(outputs)

    def prepared_call(self, batch: np.ndarray):
        """``interpreter.invoke()`` with ``batch`` set as the input once (as benchmark_model times).

        Raises:
            OptionError: for a model with a fixed batch other than ``len(batch)``.
        """
        self._check_single_input_output()
        if self._batch is not None and len(batch) != self._batch:
            raise OptionError(f"this TFLite model has a fixed batch of {self._batch}; received "
                              f"--batch {len(batch)}; use --batch {self._batch}")
        self._resize(len(batch))
        self._interpreter.set_tensor(self._input["index"],
                                     quantize(np.asarray(batch, np.float32), self._input))
        return self._interpreter.invoke, "interpreter.invoke() with inputs set once"

    def _check_single_input_output(self) -> None:
        if len(self._inputs) != 1 or len(self._outputs) != 1:
            raise ModelError(
                f"TFLite model {self.source} has {len(self._inputs)} inputs and "
                f"{len(self._outputs)} outputs; edgekit runs single-input single-output classifiers"
            )

    def _resize(self, count: int) -> None:
        if self._batch is None and count != self._resized_to:
            self._interpreter.resize_tensor_input(self._input["index"], [count, *self.input_shape])
            self._interpreter.allocate_tensors()
            self._resized_to = count

    def _invoke(self, chunk: np.ndarray) -> np.ndarray:
        count = len(chunk)
        if self._batch is None:
            self._resize(count)
        elif count < self._batch:
            padding = np.zeros((self._batch - count, *chunk.shape[1:]), dtype=np.float32)
            chunk = np.concatenate([chunk, padding])
        # Stateful kernels (UNIDIRECTIONAL_SEQUENCE_LSTM) keep their state in variable tensors
        # from one invoke to the next; a classifier's samples are independent.
        self._interpreter.reset_all_variables()
        self._interpreter.set_tensor(self._input["index"], quantize(chunk, self._input))
        self._interpreter.invoke()
        output = self._interpreter.get_tensor(self._output["index"])
        return dequantize(output, self._output)[:count]


def quantize(x: np.ndarray, tensor: dict) -> np.ndarray:
    """Float samples to the tensor's dtype with its scale and zero point (float: unchanged)."""
    dtype = np.dtype(tensor["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero_point = tensor["quantization"]
    if not scale:
        raise ModelError(f"input tensor {tensor['name']!r} is {dtype.name} without a scale; "
                         "expected a quantized tensor with scale and zero point")
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, tensor: dict) -> np.ndarray:
    """The tensor's values as float32 (quantized ones through their scale and zero point)."""
    if np.dtype(tensor["dtype"]).kind == "f":
        return values.astype(np.float32)
    scale, zero_point = tensor["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _tensor_summary(tensor: dict) -> dict:
    scale, zero_point = tensor["quantization"]
    return {
        "name": tensor["name"],
        "shape": [int(size) for size in tensor["shape_signature"]],
        "dtype": np.dtype(tensor["dtype"]).name,
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if scale else None,
    }
