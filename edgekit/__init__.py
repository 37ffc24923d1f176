"""edgekit: train, compress, convert, check and deploy Keras models for the edge and for Triton."""

from edgekit import _compat  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from edgekit.errors import EdgekitError

__version__ = "0.1.0"

__all__ = ["EdgekitError", "__version__", "build_model", "load_dataset", "pipeline", "train"]

_SUBPACKAGES = ("config", "data", "manifest", "models", "train")


def __getattr__(name):
    # The public API is imported lazily so `edgekit --help` does not pay for TensorFlow.
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"edgekit.{name}")
    if name == "pipeline":
        from edgekit.pipeline import pipeline

        return pipeline
    if name == "load_dataset":
        from edgekit.data import load_dataset

        return load_dataset
    if name == "build_model":
        from edgekit.models import build_model

        return build_model
    if name == "train":
        from edgekit.train import train

        return train
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
