"""Keras 3 models rebuilt as tf-keras: same outputs, real tf-keras, clear errors for what cannot be.

Every Keras 3 model here is tiny and built inside a fixture or test, never at import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import edgekit  # noqa: F401  (selects Keras 2 for tf.keras before TensorFlow loads)
from edgekit._compat import tensorflow
from edgekit.errors import ModelError
from edgekit.models.keras3_rebuild import (
    UNSUPPORTED_HINT,
    RebuildError,
    is_keras3_model,
    max_abs_difference,
    rebuild_as_tf_keras,
)

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def k3():
    """Keras 3, imported after TensorFlow (so tf.keras stays tf-keras)."""
    tensorflow()
    import keras

    return keras


@pytest.fixture
def rng():
    """Test data, fixed by seed (the module-scoped models draw from their own seeds)."""
    return np.random.default_rng(0)


def _randomize(model, rng) -> None:
    """Non-trivial weights everywhere (biases, BatchNormalization moving stats), variances > 0."""
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "variance" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, shape).astype(variable.dtype))
        elif "count" not in variable.path:
            variable.assign(rng.normal(0.0, 0.3, shape).astype(variable.dtype))


def _calibrate_batch_norm(model, k3, x) -> None:
    """Set every BatchNormalization's moving statistics to the batch statistics of ``x``.

    With random weights the moving stats (0 and 1) do not fit the activations, which then shrink
    to nearly the same output for every input; a test on such a model would barely check anything.
    Momentum 0 and one training-mode pass copy each layer's batch mean and variance.
    """

    def batch_norms(layer):
        for inner in getattr(layer, "layers", []):
            yield from batch_norms(inner)
        if isinstance(layer, k3.layers.BatchNormalization):
            yield layer

    layers = list(batch_norms(model))
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def _layer_classes(model) -> set[str]:
    """Class names of every layer of a tf-keras model, nested models and wrapped layers included."""
    names = set()
    for layer in model.layers:
        names.add(type(layer).__name__)
        if hasattr(layer, "layers"):
            names |= _layer_classes(layer)
        if hasattr(layer, "forward_layer"):
            names.add(type(layer.forward_layer).__name__)
    return names


@pytest.fixture(scope="module")
def image_model(k3):
    """Functional 2-D CNN touching every image layer edgekit must rebuild, with random weights."""
    rng = np.random.default_rng(1)
    layers = k3.layers
    inputs = k3.Input((8, 8, 3), name="image")
    x = layers.Rescaling(0.5, offset=-0.25, name="rescale")(inputs)
    x = layers.ZeroPadding2D(1, name="pad")(x)
    x = layers.Conv2D(4, 3, name="conv")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(max_value=6.0, name="relu6")(x)
    depthwise = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    separable = layers.SeparableConv2D(4, 3, padding="same", activation="relu", name="separable")(x)
    added = layers.Add(name="add")([depthwise, separable])
    multiplied = layers.Multiply(name="multiply")([added, x])
    x = layers.Concatenate(name="concat")([added, multiplied])
    x = layers.Activation("tanh", name="tanh")(x)
    x = layers.MaxPooling2D(2, name="max_pool")(x)
    x = layers.AveragePooling2D(2, name="avg_pool")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    pooled = layers.Concatenate(name="pools")(
        [layers.GlobalAveragePooling2D(name="gap")(x), layers.GlobalMaxPooling2D(name="gmp")(x)]
    )
    flat = layers.Flatten(name="flatten")(layers.Reshape((2, 8), name="reshape")(pooled))
    outputs = layers.Dense(3, name="logits")(flat)
    model = k3.Model(inputs, outputs, name="image_model")
    _randomize(model, rng)
    _calibrate_batch_norm(model, k3, _images(rng, 16))
    return model


@pytest.fixture(scope="module")
def sequence_model(k3):
    """Functional 1-D model: adapted Normalization, Conv1D, pooling and the recurrent layers."""
    rng = np.random.default_rng(2)
    layers = k3.layers
    normalization = layers.Normalization(name="norm")
    inputs = k3.Input((12, 3), name="sequence")
    x = normalization(inputs)
    x = layers.Conv1D(4, 3, padding="same", activation="relu", name="conv1d")(x)
    x = layers.MaxPooling1D(2, name="max_pool1d")(x)
    x = layers.LSTM(4, return_sequences=True, name="lstm")(x)
    x = layers.GRU(4, return_sequences=True, name="gru")(x)
    summary = layers.GlobalAveragePooling1D(name="gap1d")(x)
    last = layers.Bidirectional(layers.LSTM(3), name="bilstm")(x)
    x = layers.Concatenate(name="concat")([summary, last])
    outputs = layers.Dense(2, name="logits")(x)
    model = k3.Model(inputs, outputs, name="sequence_model")
    _randomize(model, rng)
    # Adapted after randomizing, so mean/variance are real data statistics, far from 0 and 1.
    normalization.adapt(rng.normal(3.0, 2.0, (32, 12, 3)).astype("float32"))
    return model


@pytest.fixture(scope="module")
def embedding_model(k3):
    """Sequential Embedding classifier on integer token ids."""
    rng = np.random.default_rng(3)
    model = k3.Sequential(
        [
            k3.Input((6,), dtype="int32", name="tokens"),
            k3.layers.Embedding(20, 4, name="embedding"),
            k3.layers.GlobalAveragePooling1D(name="pool"),
            k3.layers.Dense(3, name="logits"),
        ],
        name="embedding_model",
    )
    _randomize(model, rng)
    return model


@pytest.fixture(scope="module")
def nested_model(k3):
    """MobileNetV2 (alpha 0.35, random weights) used as one layer of a functional classifier.

    BatchNormalization statistics are calibrated so that the output depends on the input. tf-keras
    runs BatchNormalization as one fused kernel where Keras 3 runs tf.nn.batch_normalization: about
    one float32 ulp apart per layer, about 2e-5 relative after MobileNetV2's 52. A small head keeps
    the softmax out of saturation, where such a difference would be magnified (seen: 2-5e-6).
    """
    rng = np.random.default_rng(4)
    backbone = k3.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, include_top=False
    )
    inputs = k3.Input((32, 32, 3), name="image")
    x = k3.layers.GlobalAveragePooling2D(name="gap")(backbone(inputs))
    small = k3.initializers.RandomNormal(stddev=0.01, seed=1)
    outputs = k3.layers.Dense(4, activation="softmax", kernel_initializer=small, name="probabilities")(x)
    model = k3.Model(inputs, outputs, name="nested")
    _calibrate_batch_norm(model, k3, _images(rng, 16, 32))
    return model


@pytest.fixture(scope="module")
def flat_nested_rebuild(nested_model):
    return rebuild_as_tf_keras(nested_model, flatten=True)


def _images(rng, count=8, size=8):
    return rng.uniform(0.0, 2.0, (count, size, size, 3)).astype("float32")


def test_image_layers_match(image_model, rng, tf_keras):
    rebuilt = rebuild_as_tf_keras(image_model)

    assert isinstance(rebuilt, tf_keras.Model)
    assert rebuilt.name == "image_model"
    assert {
        "Rescaling", "ZeroPadding2D", "Conv2D", "BatchNormalization", "ReLU", "DepthwiseConv2D",
        "SeparableConv2D", "Add", "Multiply", "Concatenate", "Activation", "MaxPooling2D",
        "AveragePooling2D", "Dropout", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Reshape",
        "Flatten", "Dense",
    } <= _layer_classes(rebuilt)
    assert max_abs_difference(image_model, rebuilt, _images(rng), batch_size=3) <= TOLERANCE


def test_batch_normalization_statistics_are_copied(image_model):
    rebuilt = rebuild_as_tf_keras(image_model)
    moving_mean, moving_variance = rebuilt.get_layer("bn").get_weights()[2:]

    np.testing.assert_array_equal(moving_mean, image_model.get_layer("bn").get_weights()[2])
    np.testing.assert_array_equal(moving_variance, image_model.get_layer("bn").get_weights()[3])
    assert np.abs(moving_mean).max() > 0.01 and np.abs(moving_variance - 1.0).max() > 0.01


def test_sequence_layers_match(sequence_model, rng, tf_keras):
    rebuilt = rebuild_as_tf_keras(sequence_model)

    assert isinstance(rebuilt, tf_keras.Model)
    assert {
        "Normalization", "Conv1D", "MaxPooling1D", "LSTM", "GRU", "GlobalAveragePooling1D",
        "Bidirectional", "Concatenate", "Dense",
    } <= _layer_classes(rebuilt)
    x = rng.normal(3.0, 2.0, (6, 12, 3)).astype("float32")
    assert max_abs_difference(sequence_model, rebuilt, x) <= TOLERANCE


def test_adapted_normalization_matches_numerically(sequence_model, rng):
    rebuilt = rebuild_as_tf_keras(sequence_model)
    x = rng.normal(3.0, 2.0, (4, 12, 3)).astype("float32")
    original = np.asarray(sequence_model.get_layer("norm")(x))

    np.testing.assert_allclose(np.asarray(rebuilt.get_layer("norm")(x)), original, atol=TOLERANCE)
    assert abs(float(original.mean())) < 0.5  # really standardised: input mean was 3


def test_normalization_and_rescaling_from_config_match(k3, rng):
    inputs = k3.Input((4,), name="raw")
    x = k3.layers.Normalization(mean=[1.0, 2.0, 3.0, 4.0], variance=[1.0, 4.0, 9.0, 0.25], name="norm")(inputs)
    outputs = k3.layers.Rescaling([2.0, 1.0, 0.5, 1.0], offset=1.0, name="rescale")(x)
    model = k3.Model(inputs, outputs, name="preprocessing")

    rebuilt = rebuild_as_tf_keras(model)

    assert max_abs_difference(model, rebuilt, rng.normal(2.0, 3.0, (5, 4)).astype("float32")) <= TOLERANCE


def test_embedding_sequential_with_integer_inputs_matches(embedding_model, rng, tf_keras):
    rebuilt = rebuild_as_tf_keras(embedding_model)

    assert isinstance(rebuilt, tf_keras.Model)
    assert rebuilt.name == "embedding_model"
    assert rebuilt.inputs[0].dtype.name == "int32"
    tokens = rng.integers(0, 20, (7, 6)).astype("int32")
    assert max_abs_difference(embedding_model, rebuilt, tokens) <= TOLERANCE


def test_sequential_without_input_layer_is_rebuilt_after_build(k3, rng):
    model = k3.Sequential([k3.layers.Dense(5, activation="relu"), k3.layers.Dense(2)], name="mlp")
    model.build((None, 3))

    rebuilt = rebuild_as_tf_keras(model)

    assert rebuilt.name == "mlp"
    assert max_abs_difference(model, rebuilt, rng.normal(size=(4, 3)).astype("float32")) <= TOLERANCE


def test_nested_model_output_depends_on_input(nested_model, rng):
    outputs = np.asarray(nested_model(_images(rng, 4, 32)))

    assert outputs.std(axis=0).mean() > 0.01  # else the comparisons below would prove little


def test_nested_model_rebuilds_nested(nested_model, rng, tf_keras):
    rebuilt = rebuild_as_tf_keras(nested_model)

    nested = [layer for layer in rebuilt.layers if isinstance(layer, tf_keras.Model)]
    assert [layer.name for layer in nested] == [nested_model.layers[1].name]
    assert rebuilt.count_params() == nested_model.count_params()
    assert max_abs_difference(nested_model, rebuilt, _images(rng, 4, 32)) <= TOLERANCE


def test_nested_model_flattens_into_one_graph(nested_model, flat_nested_rebuild, rng, tf_keras):
    rebuilt = flat_nested_rebuild

    assert isinstance(rebuilt, tf_keras.Model)
    assert not any(isinstance(layer, tf_keras.Model) for layer in rebuilt.layers)
    names = [layer.name for layer in rebuilt.layers]
    assert len(names) == len(set(names))
    assert {"Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Add", "ZeroPadding2D"} <= _layer_classes(rebuilt)
    assert rebuilt.count_params() == nested_model.count_params()
    assert max_abs_difference(nested_model, rebuilt, _images(rng, 4, 32)) <= TOLERANCE


def test_flatten_keeps_clashing_layer_names_unique(k3, rng):
    inner_inputs = k3.Input((3,), name="inner_in")
    inner = k3.Model(inner_inputs, k3.layers.Dense(3, name="dense")(inner_inputs), name="block")
    inputs = k3.Input((3,), name="x")
    outputs = k3.layers.Dense(2, name="dense")(inner(inputs))  # same name as the inner Dense
    model = k3.Model(inputs, outputs, name="outer")
    rebuilt = rebuild_as_tf_keras(model, flatten=True)

    assert sorted(layer.name for layer in rebuilt.layers) == ["block_dense", "dense", "x"]
    assert rebuilt.get_layer("dense").get_weights()[0].shape == (3, 2)
    assert max_abs_difference(model, rebuilt, rng.normal(size=(4, 3)).astype("float32")) <= TOLERANCE


@pytest.mark.parametrize("flatten", [False, True])
@pytest.mark.parametrize("frozen", [False, True])
def test_training_mode_follows_keras3(k3, rng, flatten, frozen):
    """``backbone(x, training=False)`` is a default that fit's training=True overrides in Keras 3;
    ``backbone.trainable = False`` is what keeps BatchNormalization in inference mode."""
    inner_inputs = k3.Input((3,), name="inner_in")
    backbone = k3.Model(inner_inputs, k3.layers.BatchNormalization(name="bn")(inner_inputs), name="backbone")
    backbone.get_layer("bn").set_weights([np.ones(3), np.zeros(3), np.full(3, 2.0), np.full(3, 4.0)])
    backbone.trainable = not frozen
    inputs = k3.Input((3,), name="x")
    model = k3.Model(inputs, k3.layers.Dense(2, name="head")(backbone(inputs, training=False)))
    rebuilt = rebuild_as_tf_keras(model, flatten=flatten)
    x = rng.normal(size=(6, 3)).astype("float32")

    for training in (True, False):
        expected = np.asarray(model(x, training=training))
        np.testing.assert_allclose(np.asarray(rebuilt(x, training=training)), expected, atol=TOLERANCE)
    batch_stats_used = np.abs(np.asarray(model(x, training=True)) - np.asarray(model(x, training=False))).max()
    assert (batch_stats_used < TOLERANCE) == frozen


def test_shared_layer_stays_shared(k3, rng):
    shared = k3.layers.Dense(3, name="shared")
    first, second = k3.Input((3,), name="a"), k3.Input((3,), name="b")
    outputs = k3.layers.Add(name="add")([shared(first), shared(second)])
    model = k3.Model([first, second], outputs, name="siamese")

    rebuilt = rebuild_as_tf_keras(model)

    assert len(rebuilt.trainable_weights) == 2
    x = [rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")]
    assert max_abs_difference(model, rebuilt, x) <= TOLERANCE


def test_rebuilt_flat_model_accepts_tfmot_pruning(flat_nested_rebuild, tf_keras):
    import tensorflow_model_optimization as tfmot

    prune = tfmot.sparsity.keras.prune_low_magnitude

    def prune_dense_and_conv(layer):
        if isinstance(layer, (tf_keras.layers.Dense, tf_keras.layers.Conv2D)):
            return prune(layer)
        return layer

    pruned = tf_keras.models.clone_model(flat_nested_rebuild, clone_function=prune_dense_and_conv)

    wrapped = [layer for layer in pruned.layers if type(layer).__name__ == "PruneLowMagnitude"]
    assert len(wrapped) > 10
    assert pruned(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 4)


def test_custom_layer_is_refused_by_name(k3):
    class Scale(k3.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    inputs = k3.Input((3,), name="x")
    model = k3.Model(inputs, k3.layers.Dense(2)(Scale(name="my_scale")(inputs)))

    with pytest.raises(RebuildError) as raised:
        rebuild_as_tf_keras(model, source="custom.keras")

    message = str(raised.value)
    assert "'my_scale'" in message and "Scale" in message and "custom.keras" in message
    assert "functional graph of built-in" in message and UNSUPPORTED_HINT in message
    assert "\n" not in message
    assert isinstance(raised.value, ModelError)


def test_keras_ops_in_the_graph_are_refused(k3):
    inputs = k3.Input((3,), name="x")
    model = k3.Model(inputs, k3.layers.Dense(2, name="head")(k3.ops.relu(inputs)))

    with pytest.raises(RebuildError, match="not a layer"):
        rebuild_as_tf_keras(model)


def test_subclassed_model_is_refused(k3):
    class Net(k3.Model):
        def __init__(self):
            super().__init__(name="net")
            self.dense = k3.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    model = Net()
    model(np.zeros((1, 3), np.float32))

    with pytest.raises(RebuildError) as raised:
        rebuild_as_tf_keras(model)

    message = str(raised.value)
    assert "Net" in message and "subclassed" in message
    assert "rebuild it functionally, or use post-training quantization" in message


def test_tf_keras_model_is_refused(tiny_classifier):
    with pytest.raises(RebuildError, match="expected a Keras 3"):
        rebuild_as_tf_keras(tiny_classifier)


def test_is_keras3_model(k3, image_model, tiny_classifier):
    assert is_keras3_model(image_model)
    assert is_keras3_model(k3.Sequential([k3.Input((2,)), k3.layers.Dense(1)]))
    assert not is_keras3_model(tiny_classifier)
    assert not is_keras3_model(k3.layers.Dense(1))
    assert not is_keras3_model(object())
    assert not is_keras3_model("model.keras")


def test_is_keras3_model_does_not_import_keras_for_other_objects():
    code = """
        import sys
        from edgekit.models.keras3_rebuild import is_keras3_model
        assert not is_keras3_model(object()) and not is_keras3_model({"a": 1})
        print(sorted(m for m in ("keras", "tensorflow", "tf_keras") if m in sys.modules))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60,
        env={**os.environ},
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
