"""tf-keras to ONNX: names, dynamic batch, fp16 / int8 from fp32, QAT keeps its QDQ, clean errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest

from edgekit.errors import ModelError, OptionError
from edgekit.formats.onnx import check_onnx_file, convert_to_onnx, to_float16
from edgekit.formats.onnx_quantize import quantize_static_int8
from edgekit.runtimes.onnxruntime import OnnxRuntimeModel


@pytest.fixture
def samples():
    return np.random.default_rng(1).normal(size=(64, 8, 8, 1)).astype(np.float32)


def test_fp32_keeps_keras_names_a_dynamic_batch_and_keras_outputs(tmp_path, tiny_keras_classifier,
                                                                   samples):
    proto = convert_to_onnx(tiny_keras_classifier, opset=15)
    assert [value.name for value in proto.graph.input] == ["input"]
    assert [value.name for value in proto.graph.output] == ["probabilities"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {entry.domain or "": entry.version for entry in proto.opset_import}[""] == 15
    path = tmp_path / "model.onnx"
    onnx.save(proto, str(path))
    check_onnx_file(path)
    outputs = OnnxRuntimeModel.load(path).run(samples)
    expected = tiny_keras_classifier.predict(samples, verbose=0)
    assert np.abs(outputs - expected).max() < 1e-5


def test_fp16_keeps_float32_io_and_int8_is_per_channel_qdq(tmp_path, tiny_keras_classifier,
                                                           samples):
    fp32 = convert_to_onnx(tiny_keras_classifier)
    fp16 = to_float16(fp32)
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    fp32_path, int8_path = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(fp32, str(fp32_path))
    options = quantize_static_int8(fp32_path, int8_path, samples)
    assert options["per_channel"] and options["quant_format"] == "QDQ"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32.onnx", "int8.onnx"]
    check_onnx_file(int8_path)
    int8 = onnx.load(str(int8_path))
    ops = Counter(node.op_type for node in int8.graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    conv_weight_scales = [t for t in int8.graph.initializer if t.name.endswith("_scale")
                          and len(t.dims) == 1 and t.dims[0] == 2]  # one scale per conv filter
    assert conv_weight_scales
    expected = tiny_keras_classifier.predict(samples, verbose=0).argmax(1)
    agreement = (OnnxRuntimeModel.load(int8_path).run(samples).argmax(1) == expected).mean()
    assert agreement > 0.9


def test_qat_model_keeps_its_learned_quantization_as_qdq(tiny_keras_classifier, samples):
    import tensorflow_model_optimization as tfmot

    qat = tfmot.quantization.keras.quantize_model(tiny_keras_classifier)
    with pytest.raises(ModelError, match=r"FakeQuantWithMinMaxVars in layer 'quantize_layer(_\d+)?'.*"
                                         "never fine-tuned"):
        convert_to_onnx(qat)  # its ranges are still unset
    qat(samples, training=True)  # one training-mode pass sets the ranges, as fine-tuning does
    proto = convert_to_onnx(qat)
    ops = Counter(node.op_type for node in proto.graph.node)
    assert ops["QuantizeLinear"] >= 2 and ops["DequantizeLinear"] >= 2
    # The wrapper's "quant_" prefix is dropped: every precision has the same output name.
    assert [value.name for value in proto.graph.output] == ["probabilities"]
    onnx.checker.check_model(proto)


@pytest.mark.parametrize("opset", [12, 19, 99])
def test_unsupported_opset_is_refused_with_the_range(tiny_keras_classifier, opset):
    with pytest.raises(OptionError, match=rf"unsupported ONNX opset {opset}; expected 13\.\.18"):
        convert_to_onnx(tiny_keras_classifier, opset=opset)


def test_an_op_tf2onnx_cannot_convert_is_named_with_its_layer():
    from edgekit._compat import keras, tensorflow

    tf, tf_keras = tensorflow(), keras()
    inputs = tf_keras.Input((4,), name="input")
    x = tf_keras.layers.Lambda(tf.math.digamma, name="special_function")(inputs)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    model = tf_keras.Model(inputs, outputs, name="odd")
    with pytest.raises(ModelError, match=r"cannot convert op Digamma in layer 'special_function' "
                                         r"of model 'odd'"):
        convert_to_onnx(model)


def test_a_failed_conversion_keeps_tf2onnxs_whole_output_on_the_error():
    from edgekit._compat import keras, tensorflow

    tf, tf_keras = tensorflow(), keras()
    inputs = tf_keras.Input((4,), name="input")
    x = tf_keras.layers.Lambda(tf.math.digamma, name="special_function")(inputs)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(3, name="logits")(x), name="odd")
    with pytest.raises(ModelError) as caught:
        convert_to_onnx(model)
    assert "\n" not in str(caught.value)  # the one line the CLI prints
    assert caught.value.details and "Digamma" in caught.value.details  # what --verbose shows
