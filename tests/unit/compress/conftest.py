"""Fixtures for the compression unit tests: tiny tf-keras models, built on demand."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from edgekit._compat import keras


@pytest.fixture
def tf_keras():
    return keras()


@pytest.fixture
def small_cnn(tf_keras):
    """8x8x1 -> 3 classes: conv, batch norm, relu, pooling, dense, softmax; random weights."""
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((8, 8, 1), name="input")
    x = tf_keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = tf_keras.layers.BatchNormalization(name="batch_norm")(x)
    x = tf_keras.layers.ReLU(name="relu")(x)
    x = tf_keras.layers.MaxPooling2D(2, name="pool")(x)
    x = tf_keras.layers.Flatten(name="flatten")(x)
    x = tf_keras.layers.Dense(16, activation="relu", name="dense")(x)
    x = tf_keras.layers.Dense(3, name="logits")(x)
    outputs = tf_keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return tf_keras.Model(inputs, outputs, name="small_cnn")


@pytest.fixture
def samples():
    """32 random 8x8x1 model-ready samples, fixed by seed."""
    return np.random.default_rng(0).normal(size=(32, 8, 8, 1)).astype(np.float32)
