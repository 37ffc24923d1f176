"""The main job: every stage in order on one model (today: train and evaluate)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PipelineResult:
    """What the pipeline produced, stage by stage."""

    model_dir: Path
    stages: dict = field(default_factory=dict)


def pipeline(model: str = "cnn", dataset: str = "digits", epochs: int | None = None,
             output_root: str | os.PathLike = "models", force: bool = False,
             progress: bool = True) -> PipelineResult:
    """Train ``model`` on ``dataset`` and evaluate it; later stages join here as they land.

    Example:
        >>> edgekit.pipeline()  # cnn on the bundled digits, into models/cnn-digits
    """
    from edgekit.config import TrainConfig
    from edgekit.train import default_output_dir, train

    options = {"model": model, "dataset": dataset}
    if epochs is not None:
        options["epochs"] = epochs
    output_dir = default_output_dir(TrainConfig(**options), root=output_root)
    trained = train(output_dir=output_dir, force=force, progress=progress, **options)
    return PipelineResult(model_dir=trained.output_dir, stages={"train": trained})
