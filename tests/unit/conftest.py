"""Fixtures shared by the unit tests: tiny ONNX graphs (onnx.helper) and tiny tf-keras models."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from edgekit._compat import keras


def _onnx_classifier(batch, features: int = 4, classes: int = 3, seed: int = 0):
    """``probabilities = softmax(input @ W + b)`` as an ONNX ModelProto (opset 17)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(rng.normal(size=(features, classes)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.normal(size=(classes,)).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["logits_raw"]),
         helper.make_node("Add", ["logits_raw", "b"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, classes])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture
def onnx_classifier():
    """A dynamic-batch 4 -> 3 ONNX classifier (no TensorFlow involved)."""
    return _onnx_classifier("batch")


@pytest.fixture
def fixed_batch_onnx_classifier():
    return _onnx_classifier(1)


@pytest.fixture
def onnx_file(tmp_path, onnx_classifier):
    import onnx

    path = tmp_path / "tiny.onnx"
    onnx.save(onnx_classifier, str(path))
    return path


@pytest.fixture
def tiny_keras_classifier():
    """An 8x8x1 -> 3-class functional tf-keras classifier with fixed random weights."""
    from edgekit._compat import keras

    tf_keras = keras()
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((8, 8, 1), name="input")
    x = tf_keras.layers.Conv2D(2, 3, activation="relu", name="conv")(inputs)
    x = tf_keras.layers.Flatten(name="flatten")(x)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    return tf_keras.Model(inputs, outputs, name="tiny_classifier")


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
