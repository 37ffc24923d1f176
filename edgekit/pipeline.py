"""The main job: every stage in order on one model.

train -> compress (full-integer post-training quantization) -> export (TFLite, ONNX, Triton
repository, mobile bundle, each checked against the Keras model) -> bench (every artifact
side by side) -> one HTML report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgekit.bench import bench
from edgekit.bench.html import write_report
from edgekit.compress import compress
from edgekit.config import TrainConfig
from edgekit.data.contract import preprocess_text
from edgekit.export import export
from edgekit.train import default_output_dir, train


@dataclass
class PipelineResult:
    """What the pipeline produced, stage by stage (each value is that stage's result)."""

    model_dir: Path
    compressed_dir: Path
    stages: dict = field(default_factory=dict)


def pipeline(model: str = "cnn", dataset: str = "digits", epochs: int | None = None,
             output_root: str | os.PathLike = "models",
             triton_repository: str | os.PathLike = "triton_repo", force: bool = False,
             progress: bool = True, preprocess=None,
             on_stage: Callable[[str, object], None] | None = None,
             bench_progress: Callable[[int, int, str], None] | None = None) -> PipelineResult:
    """Train, compress to int8, export and benchmark one model.

    Args:
        model: zoo model name.
        dataset: dataset name or ``npz:`` / ``images:`` spec.
        epochs: training epochs (default: train's).
        output_root: where the model folders go (``<root>/<model>-<dataset>`` and ``...-int8``).
        triton_repository: the Triton model repository export adds a version to.
        force: replace the outputs of an earlier run.
        progress: show progress bars.
        preprocess: the input contract to train under (``"scale=S,mean=M,std=D"``, ``"none"``
            or a dict); default: standardised on the training split. Later stages inherit it.
        on_stage: called as ``on_stage(name, result)`` after each stage, e.g. to print it.
        bench_progress: the benchmark's progress callback ``(done, total, label)``.

    Example:
        >>> edgekit.pipeline(force=True)  # cnn on the bundled digits, into models/
    """
    report = on_stage or (lambda name, result: None)
    options = {"model": model, "dataset": dataset}
    if epochs is not None:
        options["epochs"] = epochs
    if preprocess is not None:
        options["preprocess"] = preprocess_text(preprocess)
    model_dir = default_output_dir(TrainConfig(**options), root=output_root)
    stages = {}
    stages["train"] = train(output_dir=model_dir, force=force, progress=progress, **options)
    report("train", stages["train"])
    stages["compress"] = compress(model_dir, output_dir=Path(output_root) / f"{model_dir.name}-int8",
                                  force=force, progress=progress, int8=True)
    compressed_dir = stages["compress"].output_dir
    report("compress", stages["compress"])
    stages["export"] = export(compressed_dir, force=force, progress=progress,
                              triton_repository=str(triton_repository))
    report("export", stages["export"])
    stages["bench"] = bench(compressed_dir, progress=bench_progress)
    report("bench", stages["bench"])
    stages["report"] = write_report(compressed_dir)
    report("report", stages["report"])
    return PipelineResult(model_dir=model_dir, compressed_dir=compressed_dir, stages=stages)
