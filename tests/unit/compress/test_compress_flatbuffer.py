"""weight_sparsity reads the zeros a .tflite really ships, for float32, float16 and int8 weights."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.compress.flatbuffer import read_weight_tensors, weight_sparsity
from edgekit.errors import ModelError
from edgekit.formats.tflite import convert_to_tflite


@pytest.fixture
def half_zero_dense(tf_keras):
    """Dense(16 -> 8) whose kernel has exactly 64 of 128 entries zero, then Dense(8 -> 3)."""
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((16,), name="input")
    x = tf_keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    model = tf_keras.Model(inputs, outputs, name="half_zero")
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel = np.where(np.arange(kernel.size).reshape(kernel.shape) % 2 == 0, 0.0, kernel + 0.5)
    model.get_layer("hidden").set_weights([kernel.astype(np.float32), bias])
    return model


@pytest.mark.parametrize("mode, dtype", [("fp32", "float32"), ("fp16", "float16"),
                                         ("int8", "int8")])
def test_zeros_are_counted_in_the_files_weight_buffers(mode, dtype, half_zero_dense):
    samples = np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32)
    content = convert_to_tflite(half_zero_dense, mode, representative_data=samples)
    stats = weight_sparsity(content)
    assert stats["tensors"] == 2 and set(stats["by_dtype"]) == {dtype}
    hidden = next(t for t in stats["per_tensor"] if t["shape"] == [8, 16])  # TFLite: [out, in]
    assert hidden["op"] == "FULLY_CONNECTED" and hidden["values"] == 128
    assert hidden["zeros"] == 64 and hidden["sparsity"] == 0.5
    assert stats["values"] == 128 + 24


def test_weight_tensors_keep_the_tflite_layout(small_cnn):
    tensors = {t.op: t for t in read_weight_tensors(convert_to_tflite(small_cnn, "fp32"))}
    assert tensors["CONV_2D"].values.shape == (8, 3, 3, 1)  # [out, h, w, in]
    kernel = small_cnn.get_layer("conv").get_weights()[0]  # Keras: [h, w, in, out]
    # The batch norm is folded into the convolution, so compare where the zeros are, not values.
    assert tensors["CONV_2D"].values.size == kernel.size


def test_bytes_that_are_not_a_flatbuffer_are_a_model_error():
    with pytest.raises(ModelError, match="cannot parse the TFLite flatbuffer"):
        read_weight_tensors(b"\x00\x01 definitely not a model")
