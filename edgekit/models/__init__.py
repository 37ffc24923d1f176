"""The model zoo, and loading users' model files.

Every zoo model is a functional tf-keras (Keras 2) classifier with one float32 input named
``"input"`` and one float32 softmax output named ``"probabilities"``. TensorFlow is imported
only when a model is built or loaded.

Example:
    >>> from edgekit.models import build_model, describe_model
    >>> model = build_model("cnn", (8, 8, 1), 10)
    >>> describe_model(model)["output"]["shape"]
    [None, 10]
"""

from __future__ import annotations

# Importing the model modules registers them; none of them imports TensorFlow at import time.
from edgekit.models import cnn, ds_cnn, lstm, mlp, mobilenet_v2, resnet8  # noqa: F401
from edgekit.models.base import INPUT_NAME, LOGITS_NAME, MODELS, OUTPUT_NAME
from edgekit.models.describe import check_single_input_output, describe_model
from edgekit.models.loading import load_model_file
from edgekit.models.zoo import build_model, model_names, model_options

DEFAULT_MODEL = "cnn"

__all__ = [
    "DEFAULT_MODEL",
    "INPUT_NAME",
    "LOGITS_NAME",
    "MODELS",
    "OUTPUT_NAME",
    "build_model",
    "check_single_input_output",
    "describe_model",
    "load_model_file",
    "model_names",
    "model_options",
]
