"""``mobilenet_v2``: Keras' MobileNetV2 (random weights), sized for small images.

The model takes the dataset's native sample shape; when that differs from the square
``input_size`` MobileNetV2 runs at, a ``Resizing`` layer inside the model scales the image
(bilinear), so the caller never resizes data. MobileNetV2 halves the image five times, so it
needs at least 32x32. Weights are always random (``weights=None``): nothing is downloaded, and
any number of channels works.

The application is built on our tensor (``input_tensor=``) so its layers join this model's
graph directly instead of nesting a model inside a model, which tfmot's pruning and
quantization wrappers cannot walk into.
"""

from __future__ import annotations

from edgekit._compat import keras
from edgekit.errors import OptionError
from edgekit.models.base import (
    BATCH_NORM_MOMENTUM,
    MODELS,
    as_image,
    check_fraction,
    check_positive,
    classifier_head,
    functional_model,
    model_input,
)

MINIMUM_INPUT_SIZE = 32


@MODELS.register("mobilenet_v2")
def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    alpha: float = 0.35,
    input_size: int | None = None,
    dropout: float = 0.2,
):
    """Build MobileNetV2 without its ImageNet top, then dropout and the classifier head.

    Args:
        input_shape: (H, W, C) image, or (T, F) sequence read as a one-channel image.
        num_classes: number of classes.
        alpha: width multiplier, > 0 (0.35 is the smallest ImageNet MobileNetV2).
        input_size: side of the square image MobileNetV2 runs at, >= 32. None: the input's
            height if it is at least 32, else 32.
        dropout: dropout rate after global average pooling, in [0, 1).

    Returns:
        A functional tf-keras model named ``"mobilenet_v2"``.

    Raises:
        OptionError: if an option is out of range.
    """
    check_positive("alpha", alpha)
    check_fraction("dropout", dropout)
    tf_keras = keras()
    layers = tf_keras.layers
    inputs = model_input(input_shape)
    x, (height, width, channels) = as_image(inputs, input_shape)
    if input_size is None:
        input_size = max(height, MINIMUM_INPUT_SIZE)
    if input_size < MINIMUM_INPUT_SIZE:
        raise OptionError(
            f"option input_size={input_size} is too small; expected input_size >= "
            f"{MINIMUM_INPUT_SIZE} (MobileNetV2 halves the image 5 times); pass input_size=32 or "
            f"leave it unset"
        )
    if (height, width) != (input_size, input_size):
        x = layers.Resizing(input_size, input_size, interpolation="bilinear", name="resize")(x)
    backbone = tf_keras.applications.MobileNetV2(
        input_shape=(input_size, input_size, channels),
        input_tensor=x,
        alpha=alpha,
        include_top=False,
        weights=None,
        pooling="avg",
    )
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            # MobileNetV2's 0.999 suits ImageNet-sized runs only. Setting the attribute before the
            # first fit is enough: call() reads it when training is traced, get_config saves it.
            layer.momentum = BATCH_NORM_MOMENTUM
    features = layers.Dropout(dropout, name="dropout")(backbone.output)
    return functional_model(inputs, classifier_head(features, num_classes), name="mobilenet_v2")
