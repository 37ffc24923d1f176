"""LiteRTModel: clean errors for bad files and bad inputs; int8 tensors quantized both ways;
XNNPACK on or off; the prepared call a benchmark times; models with several tensors described."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import DataError, ModelError, OptionError
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


def _converted(inputs, outputs) -> bytes:
    from edgekit._compat import keras

    return convert_to_tflite(keras().Model(inputs, outputs), "fp32")


def test_xnnpack_off_runs_the_builtin_kernels_to_the_same_outputs(fp32_file, samples):
    with_xnnpack = LiteRTModel.load(fp32_file, num_threads=1)
    builtin = RUNTIMES.get("litert").open(fp32_file, {"num_threads": 1, "xnnpack": False,
                                                      "ort_optimization": "basic"})
    assert with_xnnpack.describe()["xnnpack"] is True and builtin.describe()["xnnpack"] is False
    np.testing.assert_allclose(builtin.run(samples), with_xnnpack.run(samples), atol=1e-5)


def test_the_prepared_call_invokes_on_the_batch_it_was_given(fp32_file, samples):
    runtime = LiteRTModel.load(fp32_file, num_threads=1)
    call, timed = runtime.prepared_call(samples[:4])
    call()
    assert timed == "interpreter.invoke() with inputs set once"
    np.testing.assert_allclose(runtime.run(samples[:4], batch_size=4),
                               LiteRTModel.load(fp32_file).run(samples[:4]), atol=1e-6)


def test_a_fixed_batch_model_refuses_another_batch_for_its_prepared_call(tmp_path, samples):
    from edgekit._compat import keras

    tf_keras = keras()
    inputs = tf_keras.Input((8, 8, 1), batch_size=1, name="input")
    outputs = tf_keras.layers.Dense(3, activation="softmax")(tf_keras.layers.Flatten()(inputs))
    path = tmp_path / "fixed.tflite"
    path.write_bytes(_converted(inputs, outputs))
    runtime = LiteRTModel.load(path)
    with pytest.raises(OptionError, match="fixed batch of 1; received --batch 4; use --batch 1"):
        runtime.prepared_call(samples[:4])
    assert runtime.run(samples[:5]).shape == (5, 3)  # run() goes one sample at a time


def test_a_model_with_two_inputs_is_described_but_not_run(tmp_path, samples):
    from edgekit._compat import keras

    tf_keras = keras()
    first, second = tf_keras.Input((4,), name="first"), tf_keras.Input((4,), name="second")
    outputs = tf_keras.layers.Dense(3)(tf_keras.layers.Concatenate()([first, second]))
    path = tmp_path / "two.tflite"
    path.write_bytes(_converted([first, second], outputs))
    runtime = LiteRTModel.load(path)
    assert len(runtime.describe()["inputs"]) == 2 and len(runtime.describe()["outputs"]) == 1
    with pytest.raises(ModelError, match="has 2 inputs and 1 outputs; edgekit runs single-input"):
        runtime.run(np.zeros((1, 4), np.float32))
