"""``ds_cnn``: the depthwise-separable CNN of the MLPerf Tiny keyword-spotting benchmark.

Made for 49x10 MFCC features (49 time steps, 10 coefficients): a ``(10, 4)`` convolution with
stride 2, then ``blocks`` depthwise-separable blocks (3x3 depthwise convolution and 1x1
convolution, each with batch normalization and ReLU), dropout and global average pooling. The
first kernel shrinks to ``min(10, H) x min(4, W)`` and the stride to 1 along axes shorter than 4,
so 8x8 images and short sequences also work. The reference uses dropout 0.2 after the first
convolution and 0.4 before pooling; here one ``dropout`` option sets both.
Reference: github.com/mlcommons/tiny, ``benchmark/training/keyword_spotting/keras_model.py``.
"""

from __future__ import annotations

from edgekit._compat import keras
from edgekit.models.base import (
    MODELS,
    as_image,
    batch_normalization,
    check_at_least,
    check_fraction,
    check_non_negative,
    classifier_head,
    functional_model,
    model_input,
)


@MODELS.register("ds_cnn")
def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    filters: int = 64,
    blocks: int = 4,
    dropout: float = 0.2,
    weight_decay: float = 1e-4,
):
    """Build DS-CNN.

    Args:
        input_shape: (T, F) features (read as a one-channel image) or an (H, W, C) image.
        num_classes: number of classes.
        filters: filters of the first convolution and of every 1x1 convolution.
        blocks: number of depthwise-separable blocks, at least 1.
        dropout: dropout rate after the first convolution and before pooling, in [0, 1).
        weight_decay: L2 penalty on every kernel, >= 0.

    Returns:
        A functional tf-keras model named ``"ds_cnn"``.

    Raises:
        OptionError: if an option is out of range.
    """
    check_at_least("filters", filters, 1)
    check_at_least("blocks", blocks, 1)
    check_fraction("dropout", dropout)
    check_non_negative("weight_decay", weight_decay)
    tf_keras = keras()
    layers = tf_keras.layers

    def regularizer():
        return tf_keras.regularizers.l2(weight_decay) if weight_decay else None

    inputs = model_input(input_shape)
    x, (height, width, _) = as_image(inputs, input_shape)
    kernel_size = (min(10, height), min(4, width))
    strides = (2 if height >= 4 else 1, 2 if width >= 4 else 1)
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        kernel_regularizer=regularizer(),
        name="stem_conv",
    )(x)
    x = batch_normalization(name="stem_batch_norm")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.Dropout(dropout, name="stem_dropout")(x)

    for block in range(1, blocks + 1):
        prefix = f"block{block}"
        x = layers.DepthwiseConv2D(
            3, padding="same", depthwise_regularizer=regularizer(), name=f"{prefix}_depthwise_conv"
        )(x)
        x = batch_normalization(name=f"{prefix}_depthwise_batch_norm")(x)
        x = layers.ReLU(name=f"{prefix}_depthwise_relu")(x)
        x = layers.Conv2D(
            filters,
            1,
            padding="same",
            kernel_regularizer=regularizer(),
            name=f"{prefix}_pointwise_conv",
        )(x)
        x = batch_normalization(name=f"{prefix}_pointwise_batch_norm")(x)
        x = layers.ReLU(name=f"{prefix}_pointwise_relu")(x)

    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.GlobalAveragePooling2D(name="global_average_pool")(x)
    return functional_model(inputs, classifier_head(x, num_classes), name="ds_cnn")
