"""Fixtures for the export tests: tiny ONNX graphs built with onnx.helper, tiny tf-keras models."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit  # noqa: F401  (selects Keras 2 before TensorFlow loads)


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


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory):
    """A model folder from ``edgekit train``: a 32-unit mlp, 3 epochs on digits (a few seconds)."""
    folder = tmp_path_factory.mktemp("models") / "mlp-digits"
    edgekit.train(model="mlp", epochs=3, model_options={"hidden_units": 32}, output_dir=folder,
                  progress=False)
    return folder
