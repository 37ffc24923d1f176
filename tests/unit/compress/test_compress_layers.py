"""The layer-support table agrees with tfmot's registries, and unsupported layers fail clearly."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.compress.layers import (COMPRESS, KEEP, LAYER_SUPPORT, check_layers,
                                    custom_layers_left_alone, layers_to_compress)
from edgekit.errors import ModelError

IMAGE, SEQUENCE, VECTOR, TOKENS = (8, 8, 4), (8, 4), (4,), (8,)


def _built_layer(tf_keras, name: str):
    """An instance of a table entry, built on a suitable input."""
    layers = tf_keras.layers
    makers = {
        "Conv1D": (lambda: layers.Conv1D(2, 3), SEQUENCE),
        "Conv2D": (lambda: layers.Conv2D(2, 3), IMAGE),
        "Conv2DTranspose": (lambda: layers.Conv2DTranspose(2, 3), IMAGE),
        "DepthwiseConv2D": (lambda: layers.DepthwiseConv2D(3), IMAGE),
        "SeparableConv2D": (lambda: layers.SeparableConv2D(2, 3), IMAGE),
        "Dense": (lambda: layers.Dense(2), VECTOR),
        "Embedding": (lambda: layers.Embedding(10, 2), TOKENS),
        "LSTM": (lambda: layers.LSTM(2), SEQUENCE),
        "GRU": (lambda: layers.GRU(2), SEQUENCE),
        "SimpleRNN": (lambda: layers.SimpleRNN(2), SEQUENCE),
        "BatchNormalization": (layers.BatchNormalization, IMAGE),
        "LayerNormalization": (layers.LayerNormalization, IMAGE),
        "ReLU": (layers.ReLU, IMAGE),
        "LeakyReLU": (layers.LeakyReLU, IMAGE),
        "Activation": (lambda: layers.Activation("relu"), IMAGE),
        "Softmax": (layers.Softmax, VECTOR),
        "Add": (layers.Add, "pair"),
        "Concatenate": (layers.Concatenate, "pair"),
        "Multiply": (layers.Multiply, "pair"),
        "MaxPooling2D": (layers.MaxPooling2D, IMAGE),
        "AveragePooling2D": (layers.AveragePooling2D, IMAGE),
        "GlobalAveragePooling1D": (layers.GlobalAveragePooling1D, SEQUENCE),
        "GlobalAveragePooling2D": (layers.GlobalAveragePooling2D, IMAGE),
        "GlobalMaxPooling2D": (layers.GlobalMaxPooling2D, IMAGE),
        "ZeroPadding2D": (layers.ZeroPadding2D, IMAGE),
        "UpSampling2D": (layers.UpSampling2D, IMAGE),
        "Flatten": (layers.Flatten, IMAGE),
        "Reshape": (lambda: layers.Reshape((-1,)), IMAGE),
        "Permute": (lambda: layers.Permute((2, 1)), SEQUENCE),
        "Dropout": (lambda: layers.Dropout(0.1), IMAGE),
        "SpatialDropout2D": (lambda: layers.SpatialDropout2D(0.1), IMAGE),
        "Resizing": (lambda: layers.Resizing(4, 4), IMAGE),
        "Rescaling": (lambda: layers.Rescaling(1.0), IMAGE),
    }
    make, shape = makers[name]
    layer = make()
    if shape == "pair":
        layer([tf_keras.Input(VECTOR), tf_keras.Input(VECTOR)])
    else:
        layer(tf_keras.Input(shape, dtype="int32" if shape == TOKENS else "float32"))
    return layer


def _table_entries():
    return [name for name in LAYER_SUPPORT if name != "InputLayer"]


@pytest.mark.parametrize("name", _table_entries())
def test_table_agrees_with_tfmot_registries(name, tf_keras):
    from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import (
        ClusteringRegistry,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import (
        PruneRegistry,
    )

    layer = _built_layer(tf_keras, name)
    roles = LAYER_SUPPORT[name]
    rnn = isinstance(layer, tf_keras.layers.RNN)
    # KEEP layers are never wrapped, so only COMPRESS ones need tfmot's support.
    if roles["prune"] == COMPRESS:
        assert PruneRegistry.supports(layer), f"tfmot cannot prune {name}"
        assert rnn or PruneRegistry._LAYERS_WEIGHTS_MAP[type(layer)], name
    if roles["prune"] == KEEP and layer.weights:
        assert not PruneRegistry._LAYERS_WEIGHTS_MAP.get(type(layer)), name
    if roles["cluster"] == COMPRESS:
        assert ClusteringRegistry.supports(layer), f"tfmot cannot cluster {name}"
        assert rnn or ClusteringRegistry._LAYERS_WEIGHTS_MAP[type(layer)], name
    if roles["cluster"] == KEEP and layer.trainable_weights:
        assert not ClusteringRegistry._LAYERS_WEIGHTS_MAP.get(type(layer)), name
    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    # BatchNormalization is quantized through tfmot's Conv2D + BatchNormalization transforms.
    if roles["qat"] == COMPRESS and name != "BatchNormalization":
        assert registry.supports(layer), f"tfmot has no QAT for {name}"
    if roles["qat"] is None:
        assert not registry.supports(layer) or name == "SeparableConv2D", name


def _lstm_model(tf_keras):
    inputs = tf_keras.Input((8, 8), name="input")
    x = tf_keras.layers.LSTM(4, name="lstm1")(inputs)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    return tf_keras.Model(inputs, outputs)


def test_lstm_for_qat_names_the_layer_and_says_post_training_quantization_applies(tf_keras):
    with pytest.raises(ModelError, match=r"--qat cannot handle layer 'lstm1' \(a LSTM layer\): "
                       r".*post-training quantization \(--int8.*\) still applies"):
        check_layers(_lstm_model(tf_keras), "qat")
    check_layers(_lstm_model(tf_keras), "prune")  # pruning LSTMs is supported


def test_a_custom_layer_without_a_tfmot_interface_is_left_alone_and_named(tf_keras):
    class Scale(tf_keras.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(), initializer="ones")

        def call(self, inputs):
            return inputs * self.scale

    inputs = tf_keras.Input((4,), name="input")
    x = Scale(name="my_scale")(inputs)
    x = Scale(name="my_other_scale")(x)
    outputs = tf_keras.layers.Dense(2, activation="softmax")(x)
    model = tf_keras.Model(inputs, outputs)
    for technique in ("prune", "cluster", "qat"):
        check_layers(model, technique)  # no error: the custom layers stay as they are
        assert custom_layers_left_alone(model, technique) == ["my_scale", "my_other_scale"]
        assert [layer.name for layer in layers_to_compress(model, technique)] == [model.layers[-1].name]


def test_a_custom_layer_that_implements_prunable_layer_is_pruned(tf_keras):
    import tensorflow_model_optimization as tfmot

    class PrunableDense(tf_keras.layers.Dense, tfmot.sparsity.keras.PrunableLayer):
        def get_prunable_weights(self):
            return [self.kernel]

    inputs = tf_keras.Input((4,), name="input")
    outputs = PrunableDense(2, activation="softmax", name="mine")(inputs)
    model = tf_keras.Model(inputs, outputs)
    assert [layer.name for layer in layers_to_compress(model, "prune")] == ["mine"]
    assert custom_layers_left_alone(model, "prune") == []
    assert custom_layers_left_alone(model, "cluster") == ["mine"]


def test_a_subclassed_model_is_refused_by_name(tf_keras):
    class Classifier(tf_keras.Model):
        def __init__(self):
            super().__init__(name="my_classifier")
            self.dense = tf_keras.layers.Dense(3, activation="softmax")

        def call(self, inputs):
            return self.dense(inputs)

    model = Classifier()
    model(np.zeros((1, 4), np.float32))
    with pytest.raises(ModelError, match=r"--prune cannot handle model 'my_classifier': it is a "
                       r"subclassed Classifier .*post-training quantization"):
        check_layers(model, "prune")


def test_a_nested_model_is_refused_as_such(tf_keras):
    inner_input = tf_keras.Input((4,))
    inner = tf_keras.Model(inner_input, tf_keras.layers.Dense(4)(inner_input), name="backbone")
    inputs = tf_keras.Input((4,))
    outputs = tf_keras.layers.Dense(2, activation="softmax")(inner(inputs))
    with pytest.raises(ModelError, match=r"layer 'backbone' \(a model nested inside the model\)"):
        check_layers(tf_keras.Model(inputs, outputs), "cluster")


def test_the_zoo_cnn_passes_every_technique(small_cnn):
    for technique in ("prune", "prune_m_by_n", "cluster", "qat"):
        check_layers(small_cnn, technique)
