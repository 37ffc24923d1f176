"""Int8 ONNX: U8S8 / S8S8 static QDQ with pre-processing; int8 weights for tf2onnx QAT graphs."""

from __future__ import annotations

import platform
from collections import Counter

import numpy as np
import pytest

import edgekit  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from edgekit.errors import DataError, ModelError, OptionError
from edgekit.formats.onnx_quantize import (
    CALIBRATION_METHODS,
    fold_qat_weights,
    host_scheme,
    int8_weight_summary,
    integer_kernel_summary,
    qat_int8_summary,
    quantize_static_int8,
    resolve_scheme,
)


def _to_onnx(model, input_shape):
    """tf2onnx straight from tf-keras (the converter edgekit's ONNX export uses)."""
    import tf2onnx

    from edgekit._compat import quiet_native_logs, tensorflow

    tf = tensorflow()
    spec = (tf.TensorSpec((None, *input_shape), tf.float32, name="input"),)
    with quiet_native_logs():
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    return proto


def _run(model, samples, optimization="all"):
    """First output of an ONNX file or ModelProto in an ONNX Runtime CPU session."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = {
        "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL}[optimization]
    source = model if isinstance(model, str) else model.SerializeToString()
    session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: samples})[0]


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[..., None]
    return images, data.target


@pytest.fixture(scope="module")
def fp32_file(tmp_path_factory, digits):
    """A small digits CNN (Conv, Conv, Dense), trained for a few epochs, as fp32 ONNX."""
    import onnx

    from edgekit._compat import keras

    tf_keras = keras()
    tf_keras.utils.set_random_seed(0)
    images, labels = digits
    inputs = tf_keras.Input((8, 8, 1), name="input")
    x = tf_keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = tf_keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = tf_keras.layers.Flatten(name="flatten")(x)
    outputs = tf_keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = tf_keras.Model(inputs, outputs, name="digits_cnn")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(images, labels, epochs=4, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("fp32") / "model_fp32.onnx"
    onnx.save(_to_onnx(model, (8, 8, 1)), str(path))
    return path


@pytest.fixture
def fp32_copy(tmp_path, fp32_file):
    """The fp32 file alone in a fresh folder, so a test can see every file written beside it."""
    path = tmp_path / "model_fp32.onnx"
    path.write_bytes(fp32_file.read_bytes())
    return path


@pytest.fixture(scope="module")
def calibration(digits):
    return digits[0][:200]


@pytest.mark.parametrize("machine, expected", [("x86_64", "u8s8"), ("AMD64", "u8s8"),
                                               ("i686", "u8s8"), ("aarch64", "s8s8"),
                                               ("arm64", "s8s8"), ("armv7l", "s8s8")])
def test_host_scheme_is_u8s8_on_x86_and_s8s8_on_arm(machine, expected):
    assert host_scheme(machine) == expected


def test_auto_scheme_resolves_to_the_host_scheme():
    assert resolve_scheme("auto") == host_scheme()
    assert resolve_scheme("s8s8") == "s8s8"
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert resolve_scheme("auto") == "u8s8"


def test_auto_writes_int8_weights_and_uint8_activations_and_records_auto(fp32_copy, calibration):
    int8_path = fp32_copy.parent / "model_int8.onnx"
    options = quantize_static_int8(fp32_copy, int8_path, calibration)
    assert options["scheme_requested"] == "auto" and options["scheme"] == host_scheme()
    assert options["preprocessed"] is True and options["calibration_samples"] == 200
    assert options["machine"] == platform.machine()
    summary = int8_weight_summary(int8_path)
    assert summary["int8_initializers"] > 0 and summary["float_weight_initializers"] == 0
    expected = "uint8" if options["scheme"] == "u8s8" else "int8"
    assert options["activation_type"] == expected
    assert summary["activation_zero_point_dtypes"] == [expected]
    # ORT's scratch models stay in a temporary folder: nothing lands beside input or output.
    assert sorted(p.name for p in fp32_copy.parent.iterdir()) == ["model_fp32.onnx",
                                                                 "model_int8.onnx"]


def test_s8s8_writes_int8_activations(fp32_copy, calibration):
    int8_path = fp32_copy.parent / "model_int8.onnx"
    options = quantize_static_int8(fp32_copy, int8_path, calibration, scheme="s8s8")
    assert (options["scheme"], options["activation_type"]) == ("s8s8", "int8")
    summary = int8_weight_summary(int8_path)
    assert summary["activation_zero_point_dtypes"] == ["int8"]
    assert summary["uint8_initializers"] == 0 and summary["weight_dtypes"] == ["int32", "int8"]


def test_preprocessed_u8s8_agrees_with_fp32_on_top1(fp32_copy, calibration, digits):
    int8_path = fp32_copy.parent / "model_int8.onnx"
    quantize_static_int8(fp32_copy, int8_path, calibration, scheme="u8s8")
    images = digits[0]
    expected = _run(str(fp32_copy), images)
    assert (expected.argmax(1) == digits[1]).mean() > 0.85  # the fixture model did learn
    outputs = _run(str(int8_path), images)
    assert (outputs.argmax(1) == expected.argmax(1)).mean() > 0.97
    assert np.abs(outputs - expected).max() < 0.1


def test_pre_processing_alone_keeps_fp32_outputs(fp32_copy, digits):
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = fp32_copy.parent / "pre.onnx"
    quant_pre_process(str(fp32_copy), str(pre), skip_symbolic_shape=True)
    expected = _run(str(fp32_copy), digits[0])
    assert np.abs(_run(str(pre), digits[0]) - expected).max() <= 1e-5


@pytest.mark.parametrize("method", CALIBRATION_METHODS)
def test_each_calibration_method_runs_quietly(fp32_copy, calibration, digits, method, capfd):
    int8_path = fp32_copy.parent / "model_int8.onnx"
    options = quantize_static_int8(fp32_copy, int8_path, calibration[:64], method=method)
    assert options["calibrate_method"] == method
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""  # ORT's histogram calibrators print
    expected = _run(str(fp32_copy), digits[0][:300]).argmax(1)
    assert (_run(str(int8_path), digits[0][:300]).argmax(1) == expected).mean() > 0.9


def test_nodes_to_exclude_keeps_that_node_in_float(fp32_copy, calibration):
    import onnx

    conv = [node.name for node in onnx.load(str(fp32_copy)).graph.node if node.op_type == "Conv"]
    int8_path = fp32_copy.parent / "model_int8.onnx"
    options = quantize_static_int8(fp32_copy, int8_path, calibration, nodes_to_exclude=[conv[1]])
    assert options["nodes_to_exclude"] == [conv[1]]
    graph = onnx.load(str(int8_path)).graph
    producers = {name: node.op_type for node in graph.node for name in node.output}
    initializers = {tensor.name: tensor.data_type for tensor in graph.initializer}
    quantized, kept = (next(node for node in graph.node if node.name == name) for name in conv)
    # Its input may still come through a DequantizeLinear (its producer is quantized), but its
    # weight and bias stay float, so ONNX Runtime cannot fuse it into an integer kernel.
    assert [initializers.get(name) for name in kept.input[1:]] == [onnx.TensorProto.FLOAT] * 2
    assert [producers.get(name) for name in quantized.input] == ["DequantizeLinear"] * 3


def test_unknown_node_to_exclude_is_refused_with_candidates(fp32_copy, calibration):
    with pytest.raises(OptionError, match=r"cannot keep node 'no_such_node' in float: it is not "
                                          r"a node of the graph; expected .*e\.g\. '"):
        quantize_static_int8(fp32_copy, fp32_copy.parent / "int8.onnx", calibration,
                             nodes_to_exclude=["no_such_node"])


@pytest.mark.parametrize("options, message", [
    ({"scheme": "int8"}, r"unknown int8 scheme 'int8'; expected one of: auto, u8s8, s8s8"),
    ({"method": "kl"}, r"unknown calibration method 'kl'; expected one of: minmax, entropy, "
                       r"percentile")])
def test_bad_scheme_or_method_is_an_option_error(fp32_copy, calibration, options, message):
    with pytest.raises(OptionError, match=message):
        quantize_static_int8(fp32_copy, fp32_copy.parent / "int8.onnx", calibration, **options)
    assert not (fp32_copy.parent / "int8.onnx").exists()


def test_corrupt_fp32_file_is_one_line_model_error(tmp_path, calibration):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage" * 40)
    with pytest.raises(ModelError, match=r"cannot read .*broken\.onnx' as an ONNX model: .*; "
                                         r"expected an fp32 \.onnx file") as raised:
        quantize_static_int8(broken, tmp_path / "int8.onnx", calibration)
    assert "\n" not in str(raised.value) and raised.value.__cause__ is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.onnx"]


def test_samples_of_the_wrong_shape_are_a_data_error(fp32_copy):
    with pytest.raises(DataError, match=r"calibration samples of shape \[4, 28, 28, 1\] do not "
                                        r"fit input 'input'; expected .*\['N', 8, 8, 1\]"):
        quantize_static_int8(fp32_copy, fp32_copy.parent / "int8.onnx",
                             np.zeros((4, 28, 28, 1), np.float32))


def test_pre_processing_failure_is_a_model_error_not_a_silent_fallback(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mystery", ["input"], ["output"], domain="com.example")], "unknown_op",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    path = tmp_path / "model_fp32.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=r"pre-processing \(quant_pre_process\) of "
                                         r"model_fp32\.onnx failed: .*preprocess=False"):
        quantize_static_int8(path, tmp_path / "int8.onnx", np.zeros((8, 4), np.float32))


# --- quantization-aware models -------------------------------------------------------------


@pytest.fixture(scope="module")
def qat_pair():
    """(fp32 ONNX, tf2onnx ONNX of its QAT model): Conv + two Dense 256 so weights dominate."""
    from edgekit._compat import keras, tfmot

    tf_keras = keras()
    tf_keras.utils.set_random_seed(1)
    inputs = tf_keras.Input((8, 8, 1), name="input")
    x = tf_keras.layers.Conv2D(8, 3, activation="relu", bias_initializer="random_normal",
                               name="conv")(inputs)
    x = tf_keras.layers.Flatten(name="flatten")(x)
    x = tf_keras.layers.Dense(256, activation="relu", bias_initializer="random_normal",
                              name="dense1")(x)
    x = tf_keras.layers.Dense(256, activation="relu", name="dense2")(x)
    outputs = tf_keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = tf_keras.Model(inputs, outputs, name="qat_mlp")
    qat = tfmot().quantization.keras.quantize_model(model)
    samples = np.random.default_rng(0).uniform(0, 1, size=(64, 8, 8, 1)).astype(np.float32)
    qat(samples, training=True)  # one training-mode pass sets the ranges, as fine-tuning does
    return _to_onnx(model, (8, 8, 1)), _to_onnx(qat, (8, 8, 1))


def test_tf2onnx_qat_weights_are_float_on_an_int8_grid(qat_pair):
    """What the fold is for: tf2onnx constant-folds tfmot's weight fake-quant into float32."""
    _, qat = qat_pair
    summary = qat_int8_summary(qat)
    assert summary["int8_initializers"] == 0 and summary["float_weight_initializers"] == 4


def test_folded_qat_model_holds_int8_weights_at_a_third_of_fp32_size(qat_pair):
    import onnx

    fp32, qat = qat_pair
    folded = fold_qat_weights(qat)
    onnx.checker.check_model(folded, full_check=True)
    summary = qat_int8_summary(folded)
    assert summary["int8_initializers"] >= 4 and summary["float_weight_initializers"] == 0
    assert summary["bytes"] <= 0.35 * fp32.ByteSize()
    ops = Counter(node.op_type for node in folded.graph.node)
    assert ops["QuantizeLinear"] == Counter(node.op_type for node in qat.graph.node)[
        "QuantizeLinear"]  # the activations' QDQ pairs stay
    assert int8_weight_summary(folded)["activation_zero_point_dtypes"] == ["uint8"]


def test_folded_qat_model_gives_the_unfolded_outputs(qat_pair):
    _, qat = qat_pair
    folded = fold_qat_weights(qat)
    samples = np.random.default_rng(2).uniform(0, 1, size=(128, 8, 8, 1)).astype(np.float32)
    expected = _run(qat, samples, "disable")
    scale = np.abs(expected).max()
    assert np.abs(_run(folded, samples, "disable") - expected).max() <= 1e-5 * scale
    # Fully optimized, ORT runs the folded graph with integer kernels (the unfolded one in float).
    assert (_run(folded, samples).argmax(1) == expected.argmax(1)).mean() > 0.9


def test_folded_qat_model_has_short_inner_names_and_the_same_outputs(qat_pair):
    """tf2onnx's long tensor names are a tenth of a small int8 file; the fold shortens them."""
    import re

    _, qat = qat_pair
    short, long = fold_qat_weights(qat), fold_qat_weights(qat, short_names=False)
    assert [v.name for v in short.graph.input] == [v.name for v in long.graph.input]
    assert [v.name for v in short.graph.output] == [v.name for v in long.graph.output]
    assert [n.name for n in short.graph.node] == [n.name for n in long.graph.node]
    assert all(re.fullmatch(r"t\d+", tensor.name) for tensor in short.graph.initializer)
    assert short.ByteSize() < long.ByteSize()
    assert qat_int8_summary(short)["rewrites"]["tensor_names_shortened"] == len(
        {name for node in long.graph.node for name in node.output}
        | {tensor.name for tensor in long.graph.initializer}) - len(long.graph.output)
    samples = np.random.default_rng(4).uniform(0, 1, size=(64, 8, 8, 1)).astype(np.float32)
    assert np.array_equal(_run(short, samples), _run(long, samples))


def test_plain_float_weights_are_left_alone(qat_pair):
    fp32, _ = qat_pair
    assert qat_int8_summary(fold_qat_weights(fp32)) == qat_int8_summary(fp32)


def _explicit_qdq_model(layout: str):
    """input (N, 4) -> MatMul with a weight behind QuantizeLinear -> DequantizeLinear.

    The weight holds exact ties (x.5 steps, rounded half to even) and values that saturate.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.array([[0.25, -0.25, 0.75], [-0.75, 1.25, 70.0], [-70.0, 0.1, 2.0],
                       [3.3, -1.0, 0.0]], dtype=np.float32)  # (4, 3); scales 0.5 per column
    scale = np.array([0.5, 0.25, 0.5], np.float32)
    zero_point = np.array([0, 3, -2], np.int8)
    nodes, initializers = [], [numpy_helper.from_array(scale, "w_scale"),
                               numpy_helper.from_array(zero_point, "w_zero_point")]
    if layout == "initializer":
        initializers.append(numpy_helper.from_array(weight, "w"))
    elif layout == "transpose":
        initializers.append(numpy_helper.from_array(weight.T.copy(), "w_t"))
        nodes.append(helper.make_node("Transpose", ["w_t"], ["w"], perm=[1, 0]))
    else:  # a Constant node behind an Identity
        nodes += [helper.make_node("Constant", [], ["w_c"],
                                   value=numpy_helper.from_array(weight, "w_c")),
                  helper.make_node("Identity", ["w_c"], ["w"])]
    nodes += [helper.make_node("QuantizeLinear", ["w", "w_scale", "w_zero_point"], ["w_q"],
                               axis=1),
              helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero_point"], ["w_dq"],
                               axis=1),
              helper.make_node("MatMul", ["input", "w_dq"], ["output"])]
    graph = helper.make_graph(
        nodes, "explicit_qdq",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3])],
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("layout", ["initializer", "transpose", "constant"])
def test_quantize_linear_of_a_weight_is_folded_exactly_as_onnx_computes_it(layout):
    import onnx

    model = _explicit_qdq_model(layout)
    folded = fold_qat_weights(model, short_names=False)  # to name the folded initializers
    onnx.checker.check_model(folded, full_check=True)
    ops = Counter(node.op_type for node in folded.graph.node)
    assert ops == Counter({"DequantizeLinear": 1, "MatMul": 1})
    assert {t.name for t in folded.graph.initializer} == {"w_q", "w_scale", "w_zero_point"}
    samples = np.random.default_rng(3).normal(size=(32, 4)).astype(np.float32)
    samples[0] = np.eye(4, dtype=np.float32)[0] + np.eye(4, dtype=np.float32)[1]
    for optimization in ("disable", "all"):
        expected = _run(model, samples, optimization)
        assert np.abs(_run(folded, samples, optimization) - expected).max() <= (
            1e-5 * np.abs(expected).max())


def test_int8_weight_summary_reads_a_path_or_a_proto(tmp_path):
    import onnx

    model = fold_qat_weights(_explicit_qdq_model("initializer"))
    onnx.save(model, str(tmp_path / "m.onnx"))
    assert int8_weight_summary(tmp_path / "m.onnx") == int8_weight_summary(model)
    assert int8_weight_summary(model)["int8_initializers"] == 2  # weight and zero point


def test_batch_norm_fused_qat_kernels_fold_to_per_channel_int8_within_float_rounding():
    """tf2onnx multiplies a Conv's BatchNormalization scale into the fake-quantized kernel, so
    each output channel sits on its own grid; int8 * scale matches it to float32 rounding."""
    from onnx import numpy_helper

    from edgekit._compat import keras, tfmot

    tf_keras = keras()
    tf_keras.utils.set_random_seed(2)
    inputs = tf_keras.Input((8, 8, 1), name="input")
    x = tf_keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = tf_keras.layers.BatchNormalization(name="batch_norm",
                                           gamma_initializer="random_uniform")(x)
    x = tf_keras.layers.ReLU(name="relu")(x)
    x = tf_keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf_keras.layers.Dense(4, activation="softmax", name="probabilities")(x)
    qat = tfmot().quantization.keras.quantize_model(tf_keras.Model(inputs, outputs))
    qat(np.random.default_rng(0).uniform(size=(16, 8, 8, 1)).astype(np.float32), training=True)
    proto = _to_onnx(qat, (8, 8, 1))
    floats = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    folded = fold_qat_weights(proto, short_names=False)  # to match tensors by name
    assert qat_int8_summary(folded)["float_weight_initializers"] == 0
    initializers = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    kernels = [node for node in folded.graph.node if node.op_type == "DequantizeLinear"
               and node.output[0] in floats and floats[node.output[0]].ndim == 4]
    assert len(kernels) == 1 and kernels[0].attribute[0].i == 0  # per output channel
    levels, scale = (initializers[name] for name in kernels[0].input[:2])
    restored = levels.astype(np.float32) * scale.reshape(-1, 1, 1, 1)
    original = floats[kernels[0].output[0]]
    assert np.abs(restored - original).max() <= 1e-6 * np.abs(original).max()


# --- integer kernels: what ONNX Runtime actually runs (issue 13) ----------------------------


def _nodes(model, op_type):
    return [node for node in model.graph.node if node.op_type == op_type]


def _initializers(model):
    from onnx import numpy_helper

    return {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}


def test_static_int8_runs_integer_kernels_only(fp32_copy, calibration, digits):
    """ORT's own optimized graph of the int8 file: every Conv / Dense an integer kernel, no
    float compute op, one QuantizeLinear for the input and one DequantizeLinear for the output."""
    int8_path = fp32_copy.parent / "model_int8.onnx"
    options = quantize_static_int8(fp32_copy, int8_path, calibration)
    ran = integer_kernel_summary(int8_path)
    assert ran["integer_ops"]["QLinearConv"] == 2 and ran["integer_ops"]["QGemm"] == 1
    assert ran["float_compute_ops"] == {}
    assert ran["standalone_qdq"] == {"QuantizeLinear": 1, "DequantizeLinear": 1}
    assert options["float_narrow_convs"] == [] and "graph_rewrites" in options


@pytest.fixture(scope="module")
def one_by_one_file(tmp_path_factory):
    """tf2onnx's MobileNetV2 tail in small: layers on a 1 x 1 image, where tf2onnx writes a
    Reshape to the same shape between each Conv and its BatchNormalization."""
    import onnx

    from edgekit._compat import keras

    tf_keras = keras()
    tf_keras.utils.set_random_seed(3)
    norm = {"gamma_initializer": "random_uniform", "beta_initializer": "random_normal",
            "moving_mean_initializer": "random_normal", "moving_variance_initializer": "ones"}
    inputs = tf_keras.Input((4, 4, 1), name="input")
    x = tf_keras.layers.Conv2D(16, 4, name="conv")(inputs)  # 1 x 1 from here on
    x = tf_keras.layers.BatchNormalization(name="bn1", **norm)(x)
    x = tf_keras.layers.ReLU(6.0, name="relu6")(x)
    x = tf_keras.layers.Conv2D(16, 1, name="pointwise")(x)
    x = tf_keras.layers.BatchNormalization(name="bn2", **norm)(x)
    x = tf_keras.layers.ReLU(name="relu")(x)
    x = tf_keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf_keras.layers.Dense(4, activation="softmax", name="probabilities")(x)
    path = tmp_path_factory.mktemp("one_by_one") / "model_fp32.onnx"
    onnx.save(_to_onnx(tf_keras.Model(inputs, outputs), (4, 4, 1)), str(path))
    return path


def test_batch_norm_behind_a_same_shape_reshape_is_folded_and_runs_int8(one_by_one_file):
    import onnx

    fp32 = onnx.load(str(one_by_one_file))
    norms = _nodes(fp32, "BatchNormalization")
    readers = {name: node for node in fp32.graph.node for name in node.input}
    producers = {name: node for node in fp32.graph.node for name in node.output}
    # What blocked the fusion: each BatchNormalization reads a Reshape of a Conv, not the Conv.
    assert len(norms) == 2 and all(producers[n.input[0]].op_type == "Reshape" for n in norms)
    assert readers[producers[norms[0].input[0]].output[0]] == norms[0]
    samples = np.random.default_rng(4).normal(size=(256, 4, 4, 1)).astype(np.float32)
    int8_path = one_by_one_file.parent / "model_int8.onnx"
    rewrites = quantize_static_int8(one_by_one_file, int8_path, samples)["graph_rewrites"]
    assert rewrites["batch_norms_folded"] == 2 and rewrites["identity_pools_removed"] == 1
    assert rewrites["identity_reshapes_removed"] >= 2
    int8 = onnx.load(str(int8_path))
    assert not _nodes(int8, "BatchNormalization") and not _nodes(int8, "GlobalAveragePool")
    ran = integer_kernel_summary(int8_path)
    assert ran["float_compute_ops"] == {} and ran["integer_ops"]["QLinearConv"] == 2
    expected, got = _run(str(one_by_one_file), samples), _run(str(int8_path), samples)
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.98
    assert np.abs(got - expected).max() < 0.05


def test_float_narrow_convs_keeps_only_the_one_channel_conv_in_float(fp32_copy, calibration):
    import onnx

    int8_path = fp32_copy.parent / "model_int8.onnx"
    options = quantize_static_int8(fp32_copy, int8_path, calibration, float_narrow_convs=True)
    first, second = _nodes(onnx.load(str(fp32_copy)), "Conv")
    assert options["float_narrow_convs"] == [first.name] and options["nodes_to_exclude"] == []
    ran = integer_kernel_summary(int8_path)
    assert ran["integer_ops"]["QLinearConv"] == 1 and ran["integer_ops"]["QGemm"] == 1
    assert set(ran["float_compute_ops"]) <= {"Conv", "FusedConv"}
    assert sum(ran["float_compute_ops"].values()) == 1


def test_qat_model_runs_integer_kernels_only(qat_pair):
    """The tf2onnx QAT graph ran float Convs between QuantizeLinear / DequantizeLinear nodes."""
    _, qat = qat_pair
    assert integer_kernel_summary(fold_qat_weights(qat, integer_kernels=False))[
        "float_compute_ops"]  # the weight fold alone: ORT still runs float Conv / Gemm
    folded = fold_qat_weights(qat)
    ran = integer_kernel_summary(folded)
    assert ran["float_compute_ops"] == {}
    # conv and dense1 have biases (Gemm); tf2onnx drops the zero biases of the others (MatMul).
    assert ran["integer_ops"] == {"QLinearConv": 1, "QGemm": 1, "QLinearMatMul": 2}
    assert ran["standalone_qdq"] == {"QuantizeLinear": 1, "DequantizeLinear": 1}
    rewrites = qat_int8_summary(folded)["rewrites"]
    assert rewrites.pop("tensor_names_shortened") > 0
    assert rewrites == {"relus_to_integer_clip": 3}


def test_qat_biases_can_be_int32_through_dequantize_linear(qat_pair):
    """Opt-in: ONNX Runtime 1.32 fuses a float bias all the same and quantizes it identically."""
    _, qat = qat_pair
    folded = fold_qat_weights(qat, int32_biases=True)
    values = _initializers(folded)
    producers = {name: node for node in folded.graph.node for name in node.output}
    layers = _nodes(folded, "Conv") + _nodes(folded, "Gemm")  # MatMul + Add became one Gemm
    assert len(layers) == 2 and len(_nodes(folded, "MatMul")) == 2 and not _nodes(folded, "Add")
    for layer in layers:
        source, weight, bias = (producers[name] for name in layer.input)
        while source.op_type in ("Reshape", "Transpose"):  # Flatten: same values, same scale
            source = producers[source.input[0]]
        assert {source.op_type, weight.op_type, bias.op_type} == {"DequantizeLinear"}
        levels, scale, zero_point = (values[name] for name in bias.input)
        assert levels.dtype == np.int32 and not zero_point.any()
        expected = values[source.input[1]] * values[weight.input[1]].reshape(-1)
        assert np.array_equal(scale, np.broadcast_to(expected, scale.shape).astype(np.float32))
    assert qat_int8_summary(folded)["rewrites"]["biases_int32"] == 2
    assert integer_kernel_summary(folded)["integer_ops"] == {"QLinearConv": 1, "QGemm": 1,
                                                            "QLinearMatMul": 2}
    samples = np.random.default_rng(9).uniform(0, 1, size=(256, 8, 8, 1)).astype(np.float32)
    assert np.array_equal(_run(folded, samples), _run(fold_qat_weights(qat), samples))


def test_integer_kernels_stay_within_one_output_step_of_the_float_qat_graph(qat_pair):
    """The float reference: tf2onnx's QAT graph with ORT's optimizations off (fake-quant in
    float). The int8 kernels round their int32 sums to the output scale in fixed point, which
    can land one step off; the int32 biases (opt-in) are off by half a bias step at most."""
    _, qat = qat_pair
    samples = np.random.default_rng(2).uniform(0, 1, size=(512, 8, 8, 1)).astype(np.float32)
    expected = _run(qat, samples, "disable")
    for folded in (fold_qat_weights(qat), fold_qat_weights(qat, int32_biases=True)):
        values = _initializers(folded)
        producers = {name: node for node in folded.graph.node for name in node.output}
        softmax = _nodes(folded, "Softmax")[0]
        step = float(values[producers[softmax.input[0]].input[1]])  # the logits' step
        for optimization in ("disable", "all"):
            got = _run(folded, samples, optimization)
            assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.98
            assert np.abs(got - expected).max() <= step


def _relu_qdq_model(zero_point: int):
    """input -> Q/DQ -> Conv (int8 weight, int32 bias through DQ) -> Relu -> Q(zero point) ->
    DQ -> output: the Relu blocks ONNX Runtime's QLinearConv fusion."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    constants = {
        "x_scale": np.array(0.02, np.float32), "x_zero_point": np.array(128, np.uint8),
        "w": rng.integers(-127, 128, size=(16, 4, 3, 3)).astype(np.int8),
        "w_scale": rng.uniform(0.001, 0.01, size=16).astype(np.float32),
        "w_zero_point": np.zeros(16, np.int8),
        "b": rng.integers(-500, 500, size=16).astype(np.int32),
        "y_scale": np.array(0.05, np.float32), "y_zero_point": np.array(zero_point, np.uint8)}
    constants["b_scale"] = (constants["x_scale"] * constants["w_scale"]).astype(np.float32)
    constants["b_zero_point"] = np.zeros(16, np.int32)
    nodes = [helper.make_node("QuantizeLinear", ["input", "x_scale", "x_zero_point"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero_point"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero_point"], ["wd"],
                              axis=0),
             helper.make_node("DequantizeLinear", ["b", "b_scale", "b_zero_point"], ["bd"],
                              axis=0),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
             helper.make_node("QuantizeLinear", ["relu", "y_scale", "y_zero_point"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zero_point"], ["output"])]
    graph = helper.make_graph(
        nodes, "relu_qdq", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                          ["N", 4, 6, 6])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 16, 6, 6])],
        initializer=[numpy_helper.from_array(value, name) for name, value in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("zero_point, replacement", [(0, None), (124, "Clip")])
def test_relu_before_quantize_leaves_the_values_and_the_conv_fuses(zero_point, replacement):
    """Zero point 0: the QuantizeLinear clamps at 0 itself. Zero point 124 (tfmot's range after a
    short fine-tuning): max(Q(x), 124), an integer Clip after the QuantizeLinear."""
    model = _relu_qdq_model(zero_point)
    folded = fold_qat_weights(model)
    assert not _nodes(folded, "Relu")
    clips = _nodes(folded, "Clip")
    assert [node.op_type for node in clips] == ([replacement] if replacement else [])
    if clips:
        assert _initializers(folded)[clips[0].input[1]] == np.uint8(124)
    samples = np.random.default_rng(6).normal(size=(64, 4, 6, 6)).astype(np.float32)
    expected = _run(model, samples, "disable")
    assert np.array_equal(_run(folded, samples, "disable"), expected)  # exact
    assert (expected == 0).mean() > 0.2  # the Relu did clamp
    assert np.abs(_run(folded, samples) - expected).max() <= 0.05 + 1e-6  # one step
    ran = integer_kernel_summary(folded)
    assert ran["integer_ops"] == {"QLinearConv": 1} and ran["float_compute_ops"] == {}
    if replacement:  # ORT's ReluQuantFusion handles zero point 0 itself, not 124
        assert integer_kernel_summary(model)["float_compute_ops"]
