"""Fixtures for the model tests: tiny tf-keras models, built on demand, never at import time."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from edgekit._compat import keras

# The smallest options each model allows, so building and one training step stay fast.
_SMALL_OPTIONS = {
    "mlp": {"hidden_units": 8},
    "cnn": {"filters": 4, "dense_units": 8},
    "mobilenet_v2": {"alpha": 0.35},
    "resnet8": {"base_filters": 4},
    "ds_cnn": {"filters": 8, "blocks": 1},
    "lstm": {"units": 8},
}


@pytest.fixture
def small_options():
    """Zoo model name -> options that make it tiny (a fresh copy per test)."""
    return {name: dict(options) for name, options in _SMALL_OPTIONS.items()}


@pytest.fixture
def tf_keras():
    return keras()


@pytest.fixture
def mixed_float16_policy(tf_keras):
    """Set the mixed_float16 global policy for one test and always restore float32."""
    tf_keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def tiny_classifier(tf_keras):
    """An 8x8x1 -> 3-class functional classifier with random weights."""
    inputs = tf_keras.Input((8, 8, 1), name="input")
    x = tf_keras.layers.Conv2D(2, 3, name="conv")(inputs)
    x = tf_keras.layers.Flatten(name="flatten")(x)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    return tf_keras.Model(inputs, outputs, name="tiny_classifier")


@pytest.fixture
def two_output_model(tf_keras):
    """A model with two heads, which edgekit does not handle."""
    inputs = tf_keras.Input((4,), name="input")
    first = tf_keras.layers.Dense(2, name="first")(inputs)
    second = tf_keras.layers.Dense(3, name="second")(inputs)
    return tf_keras.Model(inputs, [first, second], name="two_heads")


@pytest.fixture
def sample_batch():
    """Four random 8x8x1 samples, fixed by seed."""
    return np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
