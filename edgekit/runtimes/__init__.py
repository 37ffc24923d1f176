"""Runtimes that run an exported model on float batches: one interface (load, run, describe).

Each runtime is a class registered in :data:`RUNTIMES`; ``load(path, num_threads=None)`` opens a
file, ``run(x)`` returns float32 outputs for float32 model-ready inputs, ``describe()`` gives its
input and output tensors. Importing this package loads no runtime library.
"""

from __future__ import annotations

from edgekit.registry import Registry
from edgekit.runtimes.litert import LiteRTModel

RUNTIMES: Registry[type] = Registry("runtime")
RUNTIMES.register(LiteRTModel.name)(LiteRTModel)

__all__ = ["RUNTIMES", "LiteRTModel"]

# Registered by name only: each module imports its runtime library inside its functions.
from edgekit.runtimes.keras import KerasModel  # noqa: E402
from edgekit.runtimes.keras3 import Keras3Model  # noqa: E402
from edgekit.runtimes.onnxruntime import OnnxRuntimeModel  # noqa: E402
from edgekit.runtimes.triton import TritonModel  # noqa: E402

for _runtime in (KerasModel, Keras3Model, OnnxRuntimeModel, TritonModel):
    if _runtime.name not in RUNTIMES:
        RUNTIMES.register(_runtime.name)(_runtime)
__all__ += ["Keras3Model", "KerasModel", "OnnxRuntimeModel", "TritonModel"]
