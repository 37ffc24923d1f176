"""The compression stages' shared shape: a registry, what a stage gets and what it returns.

A stage is a small class registered in :data:`TECHNIQUES` with

- ``order``: its place in the sound order (prune 10 -> cluster 20 -> QAT 30 -> conversion 90):
  sparsity first, clustering (sparsity-preserving) on the pruned weights, fake quantization
  (preserving both) last, then the TFLite conversion with its post-training quantization;
- ``wanted(config)``: whether the config asks for it;
- ``check(model, config)``: raises before any work when the model has a layer it cannot handle;
- ``apply(model, context)``: returns a :class:`StageResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.compress.config import CompressConfig
from edgekit.registry import Registry

TECHNIQUES: Registry[type] = Registry("compression technique")


@dataclass
class StageContext:
    """What every stage may read: the run's config, its data and the stages already applied."""

    config: CompressConfig
    dataset: Any  # edgekit.data.Dataset
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    batch_size: int
    seed: int
    policy: str  # Keras dtype policy of pruning fine-tuning
    from_logits: bool
    calibration: np.ndarray | None = None
    progress: bool = False
    applied: dict[str, dict] = field(default_factory=dict)  # stage name -> its record


@dataclass
class StageResult:
    """A stage's output.

    Attributes:
        model: what the next stage works on (a QAT model keeps its fake-quant wrappers).
        record: what the manifest keeps about the stage (options, layers, fine-tuning history).
        keras_model: the plain tf-keras model to save as model.keras, when it differs from
            ``model`` (QAT: the float model holding the fine-tuned weights).
        tflite: the .tflite bytes, from the conversion stage.
    """

    model: Any
    record: dict
    keras_model: Any = None
    tflite: bytes | None = None


def wanted_stages(config: CompressConfig) -> list:
    """Instances of the stages ``config`` asks for, in their order."""
    stages = [TECHNIQUES.get(name)() for name in TECHNIQUES.names()]
    return sorted((stage for stage in stages if stage.wanted(config)), key=lambda s: s.order)
