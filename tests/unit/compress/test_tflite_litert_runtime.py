"""LiteRTModel: clean errors for bad files and bad inputs; int8 tensors quantized both ways."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import DataError, ModelError
from edgekit.formats.tflite import convert_to_tflite
from edgekit.runtimes import RUNTIMES
from edgekit.runtimes.litert import LiteRTModel, dequantize, quantize


@pytest.fixture(scope="module")
def fp32_content():
    """A converted 8x8x1 -> 3 classifier, converted once for the module."""
    from edgekit._compat import keras

    tf_keras = keras()
    inputs = tf_keras.Input((8, 8, 1), name="input")
    x = tf_keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = tf_keras.layers.Flatten()(x)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    return convert_to_tflite(tf_keras.Model(inputs, outputs), "fp32")


@pytest.fixture
def fp32_file(fp32_content, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(fp32_content)
    return path


def test_litert_is_the_registered_tflite_runtime():
    assert RUNTIMES.get("litert") is LiteRTModel


def test_a_file_runs_and_describes_its_tensors(fp32_file, samples):
    runtime = LiteRTModel.load(fp32_file, num_threads=2)
    described = runtime.describe()
    assert described["num_threads"] == 2
    assert described["input"]["shape"] == [-1, 8, 8, 1] and described["input"]["dtype"] == "float32"
    assert described["input"]["quantization"] is None
    assert runtime.run(samples[:3]).shape == (3, 3)
    assert runtime.run(samples[:0]).shape == (0, 3)


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "flipped"])
def test_damaged_files_are_one_clean_model_error(damage, fp32_file):
    content = fp32_file.read_bytes()
    damaged = {
        "truncated": content[: len(content) // 3],
        "empty": b"",
        "garbage": b"not a flatbuffer at all" * 10,
        "flipped": bytes(byte ^ 0xFF if index < 64 else byte for index, byte in enumerate(content)),
    }[damage]
    fp32_file.write_bytes(damaged)
    with pytest.raises(ModelError, match=r"TFLite model .*model.tflite.* (is empty|cannot load|"
                       r"truncated or corrupt)|cannot load TFLite model") as caught:
        LiteRTModel.load(fp32_file)
    assert "\n" not in str(caught.value)


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(ModelError, match="nothing.tflite' does not exist"):
        LiteRTModel.load(tmp_path / "nothing.tflite")


def test_samples_of_the_wrong_shape_are_a_data_error(fp32_file):
    with pytest.raises(DataError, match=r"samples of shape \(2, 5, 5, 1\) do not fit TFLite "
                       r"model .* which takes \(N, 8, 8, 1\)"):
        LiteRTModel.load(fp32_file).run(np.zeros((2, 5, 5, 1), np.float32))


def test_quantize_and_dequantize_round_trip_within_half_a_step():
    tensor = {"name": "x", "dtype": np.int8, "quantization": (0.05, -3)}
    values = np.linspace(-8, 8, 161, dtype=np.float32)
    quantized = quantize(values, tensor)
    assert quantized.dtype == np.int8
    restored = dequantize(quantized, tensor)
    inside = (values > (-128 + 3) * 0.05) & (values < (127 + 3) * 0.05)
    assert np.abs(restored - values)[inside].max() <= 0.025 + 1e-6
    assert quantized.min() == -128 and quantized.max() == 127  # clipped, not wrapped
