"""Float-graph rewrites before int8 quantization: SpaceToDepth for strided narrow Convs."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from edgekit.formats.onnx_graph import prepare_float_graph, space_to_depth_convs
from edgekit.formats.onnx_quantize import integer_kernel_summary, quantize_static_int8


def _run(model, samples):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {"x": samples})[0]


def _conv_model(channels, kernel, stride, pads, size, filters=8, seed=0):
    """x (N, channels, size, size) -> Conv -> Relu -> 1x1 Conv: a stem and the layer after it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (filters, channels, *kernel))
                                     .astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.1, filters).astype(np.float32), "b"),
             numpy_helper.from_array(rng.normal(0, 0.3, (filters, filters, 1, 1))
                                     .astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="stem", kernel_shape=kernel,
                              strides=[stride, stride], pads=pads),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="next", kernel_shape=[1, 1])]
    graph = helper.make_graph(
        nodes, "stem", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                      ["N", channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", filters, "H", "W"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("channels, kernel, stride, pads, size", [
    (1, [10, 4], 2, [4, 1, 4, 1], 28),  # ds_cnn's first layer ("same", stride 2)
    (3, [3, 3], 2, [0, 0, 1, 1], 32),   # MobileNetV2's on RGB ("same", stride 2)
    (1, [3, 3], 2, [1, 1, 1, 1], 28),
    (2, [5, 3], 4, [0, 2, 3, 0], 16),   # uneven pads, stride 4
    (1, [2, 2], 2, [0, 0, 0, 0], 8),    # "valid": the kernel is one block
])
def test_strided_narrow_conv_becomes_space_to_depth_with_the_same_outputs(
        channels, kernel, stride, pads, size):
    from edgekit.formats.onnx_graph import attribute

    model = _conv_model(channels, kernel, stride, pads, size)
    rewritten, counts = prepare_float_graph(model)
    assert counts["space_to_depth_convs"] == 1
    ops = [node.op_type for node in rewritten.graph.node]
    assert ops == ["SpaceToDepth", "Conv", "Relu", "Conv"]
    stem = rewritten.graph.node[1]
    assert stem.name == "stem" and list(attribute(stem, "strides")) == [1, 1]
    weight = next(t for t in rewritten.graph.initializer if t.name == stem.input[1])
    assert weight.dims[1] == stride * stride * channels
    samples = np.random.default_rng(1).normal(size=(5, channels, size, size)).astype(np.float32)
    expected = _run(model, samples)
    assert np.abs(_run(rewritten, samples) - expected).max() <= 1e-5 * np.abs(expected).max()
    assert model.graph.node[0].op_type == "Conv"  # the caller's model is not modified


@pytest.mark.parametrize("channels, stride, size, why", [
    (4, 2, 28, "4 channels: ONNX Runtime's int8 kernel takes them whole"),
    (1, 1, 28, "stride 1: nothing to fold"),
    (1, 2, 27, "27 is not divisible by the stride"),
])
def test_other_convs_are_left_alone(channels, stride, size, why):
    model = _conv_model(channels, [3, 3], stride, [1, 1, 1, 1], size)
    assert space_to_depth_convs(model) == 0, why
    assert [node.op_type for node in model.graph.node] == ["Conv", "Relu", "Conv"]


def test_int8_stem_runs_as_an_integer_kernel_over_blocks(tmp_path):
    """In the int8 file the rewritten stem is a QLinearConv; kept in float with
    float_narrow_convs, it is not rewritten (a float Conv gains nothing from it)."""
    import onnx

    model = _conv_model(1, [10, 4], 2, [4, 1, 4, 1], 28, filters=16)
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(model, str(fp32))
    samples = np.random.default_rng(2).normal(size=(64, 1, 28, 28)).astype(np.float32)
    options = quantize_static_int8(fp32, tmp_path / "int8.onnx", samples)
    assert options["graph_rewrites"]["space_to_depth_convs"] == 1
    ran = integer_kernel_summary(tmp_path / "int8.onnx")
    assert ran["integer_ops"]["QLinearConv"] == 2 and ran["float_compute_ops"] == {}
    int8 = onnx.load(str(tmp_path / "int8.onnx"))
    expected = _run(model, samples)
    agreement = (_run(int8, samples).argmax(1) == expected.argmax(1)).mean()
    assert agreement > 0.9

    narrow = quantize_static_int8(fp32, tmp_path / "narrow.onnx", samples,
                                  float_narrow_convs=True)
    assert narrow["graph_rewrites"]["space_to_depth_convs"] == 0
    assert narrow["float_narrow_convs"] == ["stem"]


def test_a_conv_over_an_input_of_unknown_size_is_left_alone():
    model = _conv_model(1, [3, 3], 2, [1, 1, 1, 1], 28)
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_param = "side"  # height and width unknown until run time
    assert space_to_depth_convs(model) == 0


def test_short_tensor_names_never_take_a_graph_input_or_output_name():
    import onnx
    from onnx import TensorProto, helper

    from edgekit.formats.onnx_graph import shorten_tensor_names

    nodes = [helper.make_node("Relu", ["t0"], ["a_long_keras_path/relu:0"], name="relu"),
             helper.make_node("Neg", ["a_long_keras_path/relu:0"], ["t2"], name="neg"),
             helper.make_node("Abs", ["t2"], ["t1"], name="abs")]
    graph = helper.make_graph(nodes, "names",
                              [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("t1", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert shorten_tensor_names(model.graph) == 2
    onnx.checker.check_model(model, full_check=True)
    outputs = [name for node in model.graph.node for name in node.output]
    assert outputs[-1] == "t1" and len(set(outputs)) == 3 and "t0" not in outputs
    assert [node.name for node in model.graph.node] == ["relu", "neg", "abs"]
    samples = np.array([-2.0, 3.0], np.float32)
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(None, {"t0": samples})[0], [0.0, 3.0])
