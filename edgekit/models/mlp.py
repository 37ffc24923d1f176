"""``mlp``: a one-hidden-layer perceptron, the smallest baseline in the zoo."""

from __future__ import annotations

from edgekit._compat import keras
from edgekit.models.base import (
    MODELS,
    check_at_least,
    check_fraction,
    classifier_head,
    functional_model,
    model_input,
)


@MODELS.register("mlp")
def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    hidden_units: int = 128,
    dropout: float = 0.2,
):
    """Flatten, ``Dense(hidden_units, relu)``, Dropout, then the classifier head.

    Args:
        input_shape: one sample's shape, (H, W, C) or (T, F); it is flattened.
        num_classes: number of classes.
        hidden_units: width of the hidden layer, at least 1.
        dropout: dropout rate after the hidden layer, in [0, 1).

    Returns:
        A functional tf-keras model named ``"mlp"``.

    Raises:
        OptionError: if an option is out of range.
    """
    check_at_least("hidden_units", hidden_units, 1)
    check_fraction("dropout", dropout)
    layers = keras().layers
    inputs = model_input(input_shape)
    x = layers.Flatten(name="flatten")(inputs)
    x = layers.Dense(hidden_units, activation="relu", name="hidden")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return functional_model(inputs, classifier_head(x, num_classes), name="mlp")
