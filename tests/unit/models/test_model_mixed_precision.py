"""Under a mixed-precision global policy the model computes in 16 bits but outputs float32."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.models import build_model, model_names

# Layers whose kernels do the arithmetic; each must compute in the policy's 16-bit type.
_COMPUTE_LAYER_TYPES = ("Conv2D", "DepthwiseConv2D", "Dense", "LSTM")


@pytest.mark.parametrize("name", model_names())
def test_mixed_float16_model_computes_in_float16_and_outputs_float32_probabilities(
    name, small_options, mixed_float16_policy
):
    model = build_model(name, (8, 8, 1), 4, small_options[name])

    compute_layers = [
        layer for layer in model.layers if type(layer).__name__ in _COMPUTE_LAYER_TYPES
    ]
    assert compute_layers
    for layer in compute_layers:
        assert layer.compute_dtype == "float16", layer.name
        assert layer.variable_dtype == "float32", layer.name  # weights stay float32
    assert model.input.dtype.name == "float32"
    assert model.get_layer("logits").compute_dtype == "float16"
    assert model.get_layer("probabilities").compute_dtype == "float32"
    assert model.output.dtype.name == "float32"

    probabilities = model(np.ones((2, 8, 8, 1), np.float32), training=False).numpy()
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)


def test_mixed_float16_cnn_trains_a_step(mixed_float16_policy, tf_keras):
    model = build_model("cnn", (8, 8, 1), 3, {"filters": 4, "dense_units": 8})
    model.compile(
        tf_keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", run_eagerly=True
    )
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)

    history = model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)

    assert np.isfinite(history.history["loss"][0])


def test_policy_fixture_restores_float32(tf_keras):
    assert tf_keras.mixed_precision.global_policy().name == "float32"
