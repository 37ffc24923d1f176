"""``resnet8``: the ResNet-8 of the MLPerf Tiny image-classification benchmark (CIFAR-10).

A 3x3 convolution, then three residual stacks of ``base_filters``, ``2 * base_filters``
(stride 2) and ``4 * base_filters`` (stride 2) filters, each of two 3x3 convolutions with batch
normalization; a 1x1 convolution carries the shortcut where the shape changes. Every kernel has
an L2 penalty of ``weight_decay``. Global average pooling replaces the reference's
``AveragePooling2D(pool_size=feature_map_size)``, which computes the same thing for any input size.
Reference: github.com/mlcommons/tiny, ``benchmark/training/image_classification/keras_model.py``.
"""

from __future__ import annotations

from edgekit._compat import keras
from edgekit.models.base import (
    MODELS,
    as_image,
    batch_normalization,
    check_at_least,
    check_non_negative,
    classifier_head,
    functional_model,
    model_input,
)


@MODELS.register("resnet8")
def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    base_filters: int = 16,
    weight_decay: float = 1e-4,
):
    """Build ResNet-8.

    Args:
        input_shape: (H, W, C) image, or (T, F) sequence read as a one-channel image.
        num_classes: number of classes.
        base_filters: filters of the first convolution and first stack (16 in MLPerf Tiny).
        weight_decay: L2 penalty on every convolution kernel, >= 0 (1e-4 in MLPerf Tiny).

    Returns:
        A functional tf-keras model named ``"resnet8"``.

    Raises:
        OptionError: if an option is out of range.
    """
    check_at_least("base_filters", base_filters, 1)
    check_non_negative("weight_decay", weight_decay)
    tf_keras = keras()
    layers = tf_keras.layers

    def convolution(filters, kernel_size, strides, name):
        return layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            kernel_initializer="he_normal",
            kernel_regularizer=tf_keras.regularizers.l2(weight_decay) if weight_decay else None,
            name=name,
        )

    inputs = model_input(input_shape)
    x, _ = as_image(inputs, input_shape)
    x = convolution(base_filters, 3, 1, "stem_conv")(x)
    x = batch_normalization(name="stem_batch_norm")(x)
    x = layers.ReLU(name="stem_relu")(x)

    stacks = ((base_filters, 1), (2 * base_filters, 2), (4 * base_filters, 2))
    for stack, (filters, strides) in enumerate(stacks, start=1):
        prefix = f"stack{stack}"
        y = convolution(filters, 3, strides, f"{prefix}_conv1")(x)
        y = batch_normalization(name=f"{prefix}_batch_norm1")(y)
        y = layers.ReLU(name=f"{prefix}_relu1")(y)
        y = convolution(filters, 3, 1, f"{prefix}_conv2")(y)
        y = batch_normalization(name=f"{prefix}_batch_norm2")(y)
        if strides != 1 or x.shape[-1] != filters:
            x = convolution(filters, 1, strides, f"{prefix}_shortcut_conv")(x)
        x = layers.Add(name=f"{prefix}_add")([x, y])
        x = layers.ReLU(name=f"{prefix}_relu2")(x)

    x = layers.GlobalAveragePooling2D(name="global_average_pool")(x)
    return functional_model(inputs, classifier_head(x, num_classes), name="resnet8")
