"""Every zoo model builds for every sample shape, predicts probabilities and trains a step."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.models import build_model, describe_model, model_names

NUM_CLASSES = 5

# Sample shapes every zoo model is built for: digits, Fashion-MNIST, small RGB, a sequence.
SAMPLE_SHAPES = {
    "digits_8x8x1": (8, 8, 1),
    "fashion_28x28x1": (28, 28, 1),
    "rgb_12x12x3": (12, 12, 3),
    "sequence_16x20": (16, 20),
}

# Every combination makes sense: conv models read a (T, F) sequence as a one-channel image,
# the LSTM reads an image row by row, mobilenet_v2 resizes inputs under 32x32 inside the model.
COMBINATIONS = [
    pytest.param(name, shape, id=f"{name}-{shape_id}")
    for name in model_names()
    for shape_id, shape in SAMPLE_SHAPES.items()
]

_built: dict = {}


def built_model(name, shape, small_options):
    """Build each combination once per session; the tests below only read or train it."""
    key = (name, shape)
    if key not in _built:
        _built[key] = build_model(name, shape, NUM_CLASSES, small_options[name])
    return _built[key]


def test_every_registered_model_has_small_test_options(small_options):
    assert sorted(small_options) == model_names()


@pytest.mark.parametrize(("name", "shape"), COMBINATIONS)
def test_model_is_tf_keras_with_float32_input_and_probability_output(
    name, shape, tf_keras, small_options
):
    model = built_model(name, shape, small_options)

    assert isinstance(model, tf_keras.Model)
    assert model.name == name
    assert model.input_names == ["input"]
    assert model.input.dtype.name == "float32"
    assert model.input_shape == (None, *shape)
    assert model.output_names == ["probabilities"]
    assert model.output_shape == (None, NUM_CLASSES)
    assert model.get_layer("logits").units == NUM_CLASSES

    batch = np.random.default_rng(1).standard_normal((3, *shape)).astype(np.float32)
    probabilities = model(batch, training=False).numpy()
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (3, NUM_CLASSES)
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("name", "shape"), COMBINATIONS)
def test_model_trains_one_step_on_random_data(name, shape, tf_keras, small_options):
    model = built_model(name, shape, small_options)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, *shape)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=4)
    # Eager: one step does not pay for tracing a graph (11 s for mobilenet_v2); the graph-mode
    # fit is covered once below.
    model.compile(
        tf_keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", run_eagerly=True
    )
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)

    assert np.isfinite(history.history["loss"][0])


def test_default_cnn_trains_in_graph_mode_and_loss_falls_on_a_learnable_task(tf_keras):
    tf_keras.utils.set_random_seed(0)
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=64)
    x = rng.standard_normal((64, 8, 8, 1)).astype(np.float32) + y[:, None, None, None] * 2.0
    model = build_model("cnn", (8, 8, 1), 2, {"filters": 4, "dense_units": 8})
    model.compile(tf_keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")

    losses = model.fit(x, y, batch_size=16, epochs=5, verbose=0).history["loss"]

    assert losses[-1] < losses[0]


def test_describe_model_counts_parameters_and_names_input_and_output():
    model = build_model("mlp", (8, 8, 1), 10, {"hidden_units": 16, "dropout": 0.0})

    description = describe_model(model)

    # Flatten 64 -> Dense 16 (64*16 + 16) -> logits 10 (16*10 + 10).
    assert description["parameters"] == {"total": 1210, "trainable": 1210, "non_trainable": 0}
    assert description["input"] == {"name": "input", "shape": [None, 8, 8, 1], "dtype": "float32"}
    assert description["output"] == {
        "name": "probabilities",
        "shape": [None, 10],
        "dtype": "float32",
        "activation": "softmax",
    }
    assert description["layers"] == 5  # flatten, hidden, dropout, logits, probabilities
    assert description["name"] == "mlp"


def test_describe_model_counts_batch_norm_statistics_as_non_trainable():
    description = describe_model(build_model("cnn", (8, 8, 1), 10, {"filters": 4}))

    # Four batch norms (4, 4, 8, 8 channels), each with a moving mean and variance.
    assert description["parameters"]["non_trainable"] == 2 * (4 + 4 + 8 + 8)
    parameters = description["parameters"]
    assert parameters["total"] == parameters["trainable"] + parameters["non_trainable"]


def test_mobilenet_v2_resizes_small_inputs_inside_the_model():
    model = build_model("mobilenet_v2", (28, 28, 1), 10)

    assert model.input_shape == (None, 28, 28, 1)
    assert model.get_layer("resize").output_shape == (None, 32, 32, 1)


def test_mobilenet_v2_runs_at_native_size_without_resizing_when_large_enough():
    model = build_model("mobilenet_v2", (40, 40, 3), 10)

    assert "resize" not in [layer.name for layer in model.layers]


def test_mobilenet_v2_layers_are_flat_so_tfmot_can_wrap_them(tf_keras):
    model = build_model("mobilenet_v2", (32, 32, 1), 10)

    assert not any(isinstance(layer, tf_keras.Model) for layer in model.layers)


def test_conv_models_read_a_sequence_as_a_one_channel_image():
    model = build_model("ds_cnn", (49, 10), 12)

    assert model.get_layer("add_channel_axis").output_shape == (None, 49, 10, 1)
    # MLPerf Tiny's first layer for 49x10 MFCCs: 10x4 kernel, stride 2.
    stem = model.get_layer("stem_conv")
    assert (stem.kernel_size, stem.strides) == ((10, 4), (2, 2))


def test_ds_cnn_shrinks_its_first_kernel_for_small_inputs():
    stem = build_model("ds_cnn", (8, 3, 1), 10).get_layer("stem_conv")

    assert (stem.kernel_size, stem.strides) == ((8, 3), (2, 1))


def test_resnet8_matches_mlperf_tiny_parameter_count_on_cifar10_shape():
    # MLPerf Tiny's ResNet-8 on 32x32x3 with 10 classes has 78,666 parameters.
    model = build_model("resnet8", (32, 32, 3), 10)

    assert model.count_params() == 78_666


def test_lstm_reads_image_rows_as_time_steps():
    model = build_model("lstm", (28, 28, 1), 10, {"units": 8, "layers": 2})

    assert model.get_layer("rows_as_time_steps").output_shape == (None, 28, 28)
    assert model.get_layer("lstm1").output_shape == (None, 28, 8)
    assert model.get_layer("lstm2").output_shape == (None, 8)
