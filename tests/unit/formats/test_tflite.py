"""convert_to_tflite: every mode gives a file LiteRT runs, with the weights its mode promises."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.compress.flatbuffer import weight_sparsity
from edgekit.errors import DataError, ModelError, OptionError, UnknownNameError
from edgekit.formats.tflite import TFLITE_MODES, convert_to_tflite
from edgekit.runtimes.litert import LiteRTModel

# mode -> (dtype of the weights in the file, max |LiteRT - Keras| on softmax outputs)
MODES = {
    "fp32": ("float32", 1e-5),
    "dynamic": ("int8", 0.05),
    "fp16": ("float16", 0.01),
    "int8": ("int8", 0.05),
    "int16x8": ("int8", 0.05),
}


def test_the_registry_holds_the_documented_modes():
    assert TFLITE_MODES.names() == sorted(MODES)


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_converts_to_a_file_litert_runs_with_its_weight_dtype(mode, small_cnn, samples):
    weights_dtype, tolerance = MODES[mode]
    content = convert_to_tflite(small_cnn, mode, representative_data=samples)
    outputs = LiteRTModel(content, num_threads=1).run(samples)
    assert outputs.shape == (32, 3) and outputs.dtype == np.float32
    assert np.abs(outputs - small_cnn.predict(samples, verbose=0)).max() < tolerance
    stored = weight_sparsity(content)["by_dtype"]
    if mode == "dynamic":  # TFLite leaves weight tensors under 1024 values in float32
        assert stored["int8"]["values"] > stored["float32"]["values"]
    else:
        assert set(stored) == {weights_dtype}


def test_int8_io_gives_int8_tensors_that_the_runtime_quantizes(small_cnn, samples):
    content = convert_to_tflite(small_cnn, "int8", representative_data=samples, int8_io=True)
    runtime = LiteRTModel(content)
    assert runtime.input_dtype == "int8" and runtime.output_dtype == "int8"
    assert runtime.describe()["input"]["quantization"]["scale"] > 0
    outputs = runtime.run(samples, batch_size=5)  # several resized invocations
    assert np.abs(outputs - small_cnn.predict(samples, verbose=0)).max() < 0.05


def test_full_integer_modes_need_representative_samples(small_cnn):
    with pytest.raises(OptionError, match="TFLite mode 'int8' calibrates activation ranges on "
                       "representative samples; received none"):
        convert_to_tflite(small_cnn, "int8")


def test_calibration_samples_of_the_wrong_shape_are_a_data_error(small_cnn):
    wrong = np.zeros((4, 5, 5, 1), np.float32)
    with pytest.raises(DataError, match=r"calibration samples have shape \(4, 5, 5, 1\); model "
                       r"'small_cnn' takes \(N, 8, 8, 1\)"):
        convert_to_tflite(small_cnn, "int16x8", representative_data=wrong)


def test_int8_io_outside_the_int8_mode_is_refused(small_cnn):
    with pytest.raises(OptionError, match="int8 input/output tensors need the int8 mode; "
                       "received mode 'fp16'"):
        convert_to_tflite(small_cnn, "fp16", int8_io=True)


def test_an_unknown_mode_lists_the_known_ones(small_cnn):
    with pytest.raises(UnknownNameError, match="unknown TFLite conversion mode 'int4'; expected "
                       "one of: dynamic, fp16, fp32, int16x8, int8"):
        convert_to_tflite(small_cnn, "int4")


def test_a_qat_model_converts_to_int8_only_and_needs_no_samples(small_cnn, samples):
    import tensorflow_model_optimization as tfmot

    qat_model = tfmot.quantization.keras.quantize_model(small_cnn)
    with pytest.raises(OptionError, match="a quantization-aware \\(QAT\\) model converts to "
                       "int8 only; received mode 'fp16'"):
        convert_to_tflite(qat_model, "fp16")
    content = convert_to_tflite(qat_model, "int8")
    assert set(weight_sparsity(content)["by_dtype"]) == {"int8"}
    assert LiteRTModel(content).run(samples).shape == (32, 3)


def test_a_converter_failure_is_one_line_naming_the_op_and_the_layer(tf_keras):
    from edgekit._compat import tensorflow

    tf = tensorflow()

    def python_step(tensor):
        doubled = tf.numpy_function(lambda array: array * 2, [tensor], tf.float32)
        doubled.set_shape(tensor.shape)
        return doubled

    inputs = tf_keras.Input((4,), name="input")
    x = tf_keras.layers.Lambda(python_step, name="numpy_step")(inputs)
    outputs = tf_keras.layers.Dense(3, activation="softmax")(x)
    model = tf_keras.Model(inputs, outputs, name="odd")
    with pytest.raises(ModelError, match=r"TFLite conversion \(fp32\) of model 'odd' failed at op "
                       r"tf.PyFunc in layer 'numpy_step': ") as caught:
        convert_to_tflite(model, "fp32")
    assert "\n" not in str(caught.value)


def test_an_lstm_converts_with_a_fixed_batch_and_each_sample_starts_from_a_fresh_state(tf_keras):
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((5, 3), name="input")
    x = tf_keras.layers.LSTM(4, name="lstm")(inputs)
    outputs = tf_keras.layers.Dense(2, activation="softmax", name="probabilities")(x)
    model = tf_keras.Model(inputs, outputs, name="tiny_lstm")
    x_batch = np.random.default_rng(1).normal(size=(7, 5, 3)).astype(np.float32)
    runtime = LiteRTModel(convert_to_tflite(model, "fp32"))
    assert runtime.describe()["input"]["shape"][0] == 1
    assert np.abs(runtime.run(x_batch) - model.predict(x_batch, verbose=0)).max() < 1e-5
