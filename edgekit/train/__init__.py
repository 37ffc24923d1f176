"""The training stage: ``edgekit.train(...)`` and ``edgekit train``."""

from edgekit.train.run import TrainingInterrupted, TrainResult, default_output_dir, train

__all__ = ["TrainResult", "TrainingInterrupted", "default_output_dir", "train"]
