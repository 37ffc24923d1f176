"""Open an artifact in its runtime with the benchmark's options, and prepare the timed call.

The runtimes in :mod:`edgekit.runtimes` share ``load(path, num_threads)``, ``run(x)`` and
``describe()``. A benchmark needs two things more, kept here so the runtimes stay small:

* runtime options beyond threads (LiteRT's XNNPACK on / off; ONNX Runtime's graph optimization
  level and execution provider);
* a *prepared call*: one inference on a batch whose inputs are already set, so the timing covers
  what benchmark_model times (``invoke()``), not the copying of inputs in and out.

Example:
    >>> runtime = open_runtime("litert", "model.tflite", RuntimeOptions(num_threads=1))
    >>> call, timed = prepared_call(runtime, x[:1])
    >>> call()
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from edgekit.errors import ModelError, OptionError

ORT_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class RuntimeOptions:
    """Flat runtime options; each runtime reads the ones that apply to it."""

    num_threads: int | None = None
    xnnpack: bool = True
    ort_optimization: str = "all"
    ort_provider: str = "CPUExecutionProvider"
    custom_objects: str | None = None  # Keras: the module defining the model's custom layers
    unsafe_deserialization: bool = False  # Keras: let serialized code in the file run

    def __post_init__(self):
        if self.num_threads is not None and int(self.num_threads) < 1:
            raise OptionError(f"threads must be >= 1; received {self.num_threads}")
        if self.ort_optimization not in ORT_OPTIMIZATION_LEVELS:
            raise OptionError(f"ONNX Runtime optimization level must be one of "
                              f"{', '.join(ORT_OPTIMIZATION_LEVELS)}; received "
                              f"{self.ort_optimization!r}")

    def applied(self, runtime: str) -> dict:
        """The options that mean something to ``runtime`` (what a result row records)."""
        chosen = {"num_threads": self.num_threads}
        if runtime == "litert":
            chosen["xnnpack"] = self.xnnpack
        elif runtime == "onnxruntime":
            chosen.update(ort_optimization=self.ort_optimization, ort_provider=self.ort_provider)
        elif runtime == "triton":
            chosen = {}
        elif runtime in ("keras", "keras3") and self.custom_objects:
            chosen["custom_objects"] = self.custom_objects
        return chosen

    def to_dict(self) -> dict:
        return asdict(self)


def open_runtime(runtime: str, path: str, options: RuntimeOptions):
    """Load ``path`` in ``runtime`` ("keras", "litert", "onnxruntime", "triton") with ``options``."""
    from edgekit.runtimes import RUNTIMES

    if runtime == "litert" and not options.xnnpack:
        return _litert_without_xnnpack(path, options.num_threads)
    if runtime == "onnxruntime":
        from edgekit.runtimes.onnxruntime import OnnxRuntimeModel

        return OnnxRuntimeModel(path, num_threads=options.num_threads,
                                optimization=options.ort_optimization,
                                providers=_providers(options.ort_provider))
    if runtime in ("keras", "keras3"):
        return RUNTIMES.get(runtime).load(path, num_threads=options.num_threads,
                                          custom_objects=options.custom_objects,
                                          unsafe_deserialization=options.unsafe_deserialization)
    return RUNTIMES.get(runtime).load(path, num_threads=options.num_threads)


def _providers(provider: str) -> tuple[str, ...]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if provider not in available:
        raise OptionError(f"ONNX Runtime execution provider {provider!r} is not available here; "
                          f"expected one of: {', '.join(available)}")
    return (provider,) if provider == "CPUExecutionProvider" else (provider, "CPUExecutionProvider")


def _litert_without_xnnpack(path: str, num_threads: int | None):
    """A LiteRTModel whose interpreter uses the builtin kernels only (XNNPACK not applied).

    LiteRTModel always uses LiteRT's default delegates; until it takes an option for this, the
    interpreter it built is swapped for one made from the same bytes with
    ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (same tensors, so its input / output details hold).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgekit.runtimes.litert import LiteRTModel

    model = LiteRTModel.load(path, num_threads=num_threads)
    if not hasattr(model, "_interpreter"):
        raise OptionError("this LiteRT runtime cannot turn XNNPACK off; drop --no-xnnpack")
    with open(path, "rb") as handle:
        content = handle.read()
    interpreter = Interpreter(
        model_content=content, num_threads=num_threads,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    if model._resized_to != int(interpreter.get_input_details()[0]["shape"][0]):
        raise ModelError(f"LiteRT without XNNPACK sees a different input for {path}")
    model._interpreter = interpreter
    return model


def prepared_call(runtime, batch: np.ndarray) -> tuple[Callable[[], object], str]:
    """A zero-argument call running one inference on ``batch``, and what it times.

    LiteRT: ``invoke()`` with the inputs set once (as benchmark_model). ONNX Runtime:
    ``session.run`` with a prepared feed. Keras: the compiled function on a prepared tensor.
    Triton: one request, round trip. Another runtime: its ``run(batch)``.
    """
    from edgekit.runtimes.litert import LiteRTModel, quantize

    if isinstance(runtime, LiteRTModel) and hasattr(runtime, "_interpreter"):
        interpreter, tensor = runtime._interpreter, runtime._input
        fixed = runtime._batch
        if fixed is not None and len(batch) != fixed:
            raise OptionError(f"this TFLite model has a fixed batch of {fixed}; received "
                              f"--batch {len(batch)}; use --batch {fixed}")
        if fixed is None and len(batch) != runtime._resized_to:
            interpreter.resize_tensor_input(tensor["index"], [len(batch), *runtime.input_shape])
            interpreter.allocate_tensors()
            runtime._resized_to = len(batch)
        interpreter.set_tensor(tensor["index"], quantize(np.asarray(batch, np.float32), tensor))
        return interpreter.invoke, "interpreter.invoke() with inputs set once"
    if hasattr(runtime, "session") and hasattr(runtime, "input"):
        session = runtime.session
        dtype = {"tensor(float16)": np.float16}.get(runtime.input.type, np.float32)
        feed = {runtime.input.name: np.ascontiguousarray(batch, dtype=dtype)}
        names = [runtime.outputs[0].name]
        return (lambda: session.run(names, feed)), "session.run() with a prepared feed"
    if hasattr(runtime, "prepare"):
        what = {"keras": "tf.function call on a prepared tensor",
                "keras3": "tf.function call on a prepared tensor",
                "triton": "one request, client round trip"}.get(runtime.name, "prepared call")
        return runtime.prepare(batch), what
    return (lambda: runtime.run(batch)), "runtime.run(batch)"
