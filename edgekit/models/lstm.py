"""``lstm``: a recurrent classifier that reads an image row by row, or a sequence step by step.

An (H, W, C) image becomes H time steps of W*C features; a (T, F) sequence goes in as is.
``layers`` LSTMs of ``units`` are stacked (all but the last return sequences), then optional
dropout and the classifier head. With the defaults it reaches about 88% on Fashion-MNIST.

For TFLite, convert it with a fixed batch of 1 (a concrete function): an LSTM with a dynamic
batch dimension does not convert (see STACK.md).
"""

from __future__ import annotations

from edgekit._compat import keras
from edgekit.models.base import (
    MODELS,
    check_at_least,
    check_fraction,
    classifier_head,
    functional_model,
    model_input,
    sample_kind,
)


@MODELS.register("lstm")
def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    units: int = 128,
    layers: int = 1,
    dropout: float = 0.2,
):
    """Build the LSTM classifier.

    Args:
        input_shape: (T, F) sequence, or (H, W, C) image read as H steps of W*C features.
        num_classes: number of classes.
        units: units of each LSTM layer, at least 1.
        layers: number of stacked LSTM layers, at least 1.
        dropout: dropout rate after the last LSTM, in [0, 1); 0 adds no dropout layer.

    Returns:
        A functional tf-keras model named ``"lstm"``.

    Raises:
        OptionError: if an option is out of range.
    """
    check_at_least("units", units, 1)
    check_at_least("layers", layers, 1)
    check_fraction("dropout", dropout)
    keras_layers = keras().layers
    inputs = model_input(input_shape)
    x = inputs
    if sample_kind(input_shape) == "image":
        height, width, channels = input_shape
        x = keras_layers.Reshape((height, width * channels), name="rows_as_time_steps")(x)
    for index in range(1, layers + 1):
        x = keras_layers.LSTM(units, return_sequences=index < layers, name=f"lstm{index}")(x)
    if dropout > 0:
        x = keras_layers.Dropout(dropout, name="dropout")(x)
    return functional_model(inputs, classifier_head(x, num_classes), name="lstm")
