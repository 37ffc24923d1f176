"""What every zoo model shares: the registry, the input, the classifier head and option checks.

A zoo model is a function ``build(input_shape, num_classes, *, option=default, ...)`` registered
in :data:`MODELS`. Its keyword-only arguments, with plain-typed defaults, are its whole config;
:func:`edgekit.models.build_model` checks names and types against them before calling it, and
the builder checks ranges with the ``check_*`` helpers below.

TensorFlow is imported inside functions only, so ``import edgekit.models`` stays fast.
"""

from __future__ import annotations

from typing import Callable

from edgekit._compat import keras
from edgekit.errors import ModelError, OptionError
from edgekit.registry import Registry

MODELS: Registry[Callable] = Registry("model")

INPUT_NAME = "input"
LOGITS_NAME = "logits"
OUTPUT_NAME = "probabilities"

# Batch normalization's moving statistics follow the batches at this rate. Keras' 0.99 (0.999 in
# MobileNetV2) needs thousands of steps to forget its initial mean 0 / variance 1; on small
# datasets (sklearn digits: ~18 steps an epoch) the model then scores far worse in inference mode
# than in training for most of the run. 0.9 (PyTorch's default) converges within ~50 steps.
BATCH_NORM_MOMENTUM = 0.9


def sample_kind(input_shape: tuple[int, ...]) -> str:
    """Return ``"image"`` for an (H, W, C) sample shape and ``"sequence"`` for (T, F).

    Raises:
        ModelError: if the shape is not 2-D or 3-D, or holds anything but positive integers.
    """
    if len(input_shape) == 3:
        return "image"
    if len(input_shape) == 2:
        return "sequence"
    raise ModelError(
        f"sample shape {tuple(input_shape)} has {len(input_shape)} dimension(s); expected an image "
        f"(height, width, channels) or a sequence (time_steps, features), without the batch axis"
    )


def model_input(input_shape: tuple[int, ...]):
    """Return the float32 ``Input`` layer named ``"input"`` for one sample shape.

    The dtype is pinned to float32 so that the model's signature does not change when a
    mixed-precision global policy is set (the trainer feeds float32 either way).
    """
    sample_kind(input_shape)
    return keras().Input(shape=tuple(input_shape), dtype="float32", name=INPUT_NAME)


def as_image(inputs, input_shape: tuple[int, ...]):
    """Give a (T, F) sequence a channel axis, (T, F, 1), so 2-D convolutions can read it.

    Images pass through unchanged. Returns the (possibly reshaped) tensor and its (H, W, C) shape.
    """
    if sample_kind(input_shape) == "image":
        return inputs, tuple(input_shape)
    image_shape = (*input_shape, 1)
    reshaped = keras().layers.Reshape(image_shape, name="add_channel_axis")(inputs)
    return reshaped, image_shape


def classifier_head(features, num_classes: int):
    """End a model with ``Dense(logits)`` then a float32 softmax named ``"probabilities"``.

    The softmax is pinned to float32: under a mixed_float16 / mixed_bfloat16 global policy the
    rest of the model computes in 16 bits, but the probabilities (and the loss computed from
    them) stay in float32, as the TensorFlow mixed-precision guide recommends.
    """
    layers = keras().layers
    logits = layers.Dense(num_classes, name=LOGITS_NAME)(features)
    return layers.Activation("softmax", dtype="float32", name=OUTPUT_NAME)(logits)


def batch_normalization(name: str):
    """A ``BatchNormalization`` layer with edgekit's momentum (see ``BATCH_NORM_MOMENTUM``)."""
    return keras().layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=name)


def functional_model(inputs, outputs, name: str):
    """Wrap inputs and outputs in a functional tf-keras model named after the zoo entry."""
    return keras().Model(inputs=inputs, outputs=outputs, name=name)


def pool_size_for(height: int, width: int, pool: int = 2) -> tuple[int, int]:
    """A pooling window that halves each spatial axis that is at least ``pool`` long.

    An axis shorter than the window keeps size 1 in that direction, so tiny inputs
    (8x8 digits, 1-wide sequences) still build.
    """
    return (pool if height >= pool else 1, pool if width >= pool else 1)


def check_at_least(option: str, value, minimum) -> None:
    """Raise :class:`OptionError` unless ``value >= minimum``."""
    if value < minimum:
        raise OptionError(
            f"option {option}={value!r} is too small; expected {option} >= {minimum}; "
            f"pass a larger value, e.g. {option}={minimum}"
        )


def check_positive(option: str, value) -> None:
    """Raise :class:`OptionError` unless ``value > 0``."""
    if value <= 0:
        raise OptionError(
            f"option {option}={value!r} must be positive; expected {option} > 0; "
            f"pass e.g. {option}=1.0"
        )


def check_non_negative(option: str, value) -> None:
    """Raise :class:`OptionError` unless ``value >= 0``."""
    if value < 0:
        raise OptionError(
            f"option {option}={value!r} is negative; expected {option} >= 0; pass 0 to turn it off"
        )


def check_fraction(option: str, value) -> None:
    """Raise :class:`OptionError` unless ``0 <= value < 1`` (a dropout rate)."""
    if not 0 <= value < 1:
        raise OptionError(
            f"option {option}={value!r} is out of range; expected 0 <= {option} < 1; "
            f"pass e.g. {option}=0.2, or 0 to turn it off"
        )
