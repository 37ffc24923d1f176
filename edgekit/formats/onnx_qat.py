"""Int8 weights and integer kernels for a quantization-aware model converted by tf2onnx.

tf2onnx turns a tfmot QAT model's fake-quant nodes into QuantizeLinear / DequantizeLinear
pairs, but keeps its weights in float32 (the file is as large as the fp32 one) and leaves the
groups around each Conv / MatMul in shapes ONNX Runtime does not fuse, so it ran the model in
float with extra quantize / dequantize work (1.8-3.4x slower than fp32, measured).
:func:`fold_qat_weights` stores the weights as int8 and, by default, rewrites the groups so
ONNX Runtime runs QLinearConv / QGemm / QLinearMatMul (:mod:`edgekit.formats.onnx_qdq`).

Example:
    >>> folded = fold_qat_weights(convert_to_onnx(qat_model))
    >>> int8_weight_summary(folded)["float_weight_initializers"]
    0
"""

from __future__ import annotations

import json

import numpy as np

from edgekit.errors import ModelError, first_line
from edgekit.formats.onnx_graph import constants as graph_constants
from edgekit.formats.onnx_graph import shorten_tensor_names
from edgekit.formats.onnx_qdq import integer_kernel_rewrites

# The input index that holds the weight of each op whose weights are quantized.
WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "MatMul": 1, "Gemm": 1}
FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}
# A tf2onnx weight is on an int8 grid when every value is within this fraction of a step.
_GRID_TOLERANCE = 1e-3
REWRITES_KEY = "edgekit.int8_rewrites"


def fold_qat_weights(proto, integer_kernels: bool = True, int32_biases: bool = False,
                     short_names: bool = True):
    """A copy of a QDQ model whose float weights are stored as int8 initializers.

    Two layouts are folded; the values the weights' consumers read are unchanged:

    - a weight initializer (or Constant, possibly behind Identity / Transpose) feeding a
      QuantizeLinear: the QuantizeLinear is computed here, exactly as ONNX does it, and its
      DequantizeLinear reads the int8 initializer;
    - a float weight of a Conv / MatMul / Gemm whose values already lie on a symmetric int8 grid
      (per tensor or per channel). tf2onnx writes tfmot's weights this way: it constant-folds the
      weight fake-quant, so the file holds the dequantized values. They become int8 values
      behind a new DequantizeLinear (zero point 0, scale max|w| / 127). Exact, except for a
      kernel with a BatchNormalization multiplied in by tf2onnx: within float32 rounding there.

    Activations' QuantizeLinear / DequantizeLinear pairs are kept. Float weights that are not on
    a grid (layers left out of QAT) stay float.

    With ``integer_kernels`` (the default), a Relu between a Conv / MatMul and its
    QuantizeLinear is taken out so ONNX Runtime fuses them into QLinearConv / QGemm /
    QLinearMatMul (:func:`edgekit.formats.onnx_qdq.relu_into_quantize`): dropped, or replaced by
    an integer Clip at the zero point after the QuantizeLinear. The values stay the same.

    Args:
        proto: an ``onnx.ModelProto``, e.g. tf2onnx's conversion of a tfmot QAT model.
        integer_kernels: also rewrite the graph for ONNX Runtime's integer kernels.
        int32_biases: with ``integer_kernels``, also store float biases as int32 behind a
            DequantizeLinear (scale ``input_scale * weight_scale``; each bias moves by at most
            half of it), as some runtimes' QDQ rules want; ONNX Runtime's CPU kernels quantize
            them identically.
        short_names: give the inner tensors short names
            (:func:`edgekit.formats.onnx_graph.shorten_tensor_names`); graph inputs, outputs
            and node names are kept (a graph without DequantizeLinear is left as it is).
            tf2onnx's long names were 10% of resnet8's folded file.

    Returns:
        A new ``ModelProto``; ``proto`` is not modified. Its ``metadata_props`` gain
        ``edgekit.int8_rewrites`` (the counts of each rewrite, JSON) when any was made.

    Raises:
        ModelError: if the folded graph fails ``onnx.checker``.

    Example:
        >>> folded = fold_qat_weights(convert_to_onnx(qat_model))
        >>> qat_int8_summary(folded)["float_weight_initializers"]
        0
    """
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    bypassed = _fold_quantize_nodes(graph)
    _remove_unused(graph, bypassed)
    _fold_grid_weights(graph)
    counts = integer_kernel_rewrites(model, int32_biases) if integer_kernels else {}
    if short_names and any(node.op_type == "DequantizeLinear" for node in graph.node):
        counts["tensor_names_shortened"] = shorten_tensor_names(graph)
    _record_rewrites(model, counts)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise ModelError(f"folding QAT weights gave an invalid graph: {first_line(error)}; "
                         "expected a tf2onnx QDQ model; export the QAT model again") from error
    return model


def _record_rewrites(model, counts: dict) -> None:
    """Note the non-zero rewrite ``counts`` in ``model``'s metadata (``edgekit.int8_rewrites``)."""
    made = {name: count for name, count in counts.items() if count}
    entries = [entry for entry in model.metadata_props if entry.key == REWRITES_KEY]
    for entry in entries:
        made = {**json.loads(entry.value), **made}
        model.metadata_props.remove(entry)
    if made:
        entry = model.metadata_props.add()
        entry.key, entry.value = REWRITES_KEY, json.dumps(made, sort_keys=True)


def _fold_quantize_nodes(graph) -> list:
    """Replace each QuantizeLinear of a constant by the int8 initializer it would produce.

    Returns the nodes and values it bypassed (Identity, Transpose, Constant, float weights).
    """
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import helper, numpy_helper

    constants = graph_constants(graph)
    producers = {name: node for node in graph.node for name in node.output}
    outputs = {value.name for value in graph.output}
    bypassed = []
    for node in list(graph.node):
        if (node.op_type != "QuantizeLinear" or node.domain not in ("", "ai.onnx")
                or node.output[0] in outputs):
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        zero_point_name = node.input[2] if len(node.input) > 2 else ""
        if (node.input[1] not in constants or (zero_point_name and zero_point_name not in constants)
                or attributes.get("block_size", 0) or "output_dtype" in attributes):
            continue
        steps, value = _trace_constant(node.input[0], producers, constants)
        if value is None or value.dtype != np.float32:
            continue
        zero_point = constants.get(zero_point_name, np.zeros((), np.uint8))
        if zero_point.dtype not in (np.int8, np.uint8):
            continue
        quantized = _quantize_linear(value, constants[node.input[1]], zero_point,
                                     attributes.get("axis", 1))
        graph.initializer.append(numpy_helper.from_array(quantized, node.output[0]))
        graph.node.remove(node)
        bypassed += steps
    return bypassed


def _trace_constant(name: str, producers: dict, constants: dict):
    """(bypassed nodes and source name, value) of a constant reached through Identity /
    Transpose nodes, or ([], None) when ``name`` is not a constant."""
    steps = []
    while (node := producers.get(name)) is not None and node.op_type != "Constant":
        if node.op_type not in ("Identity", "Transpose"):
            return [], None
        steps.append(node)
        name = node.input[0]
    if name not in constants:
        return [], None  # a graph input, or a Constant holding something else than a tensor
    value = constants[name]
    for node in reversed(steps):
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        value = np.transpose(value, perm) if node.op_type == "Transpose" else value
    constant = [producers[name]] if name in producers else []
    return [*steps, *constant, name], value


def _quantize_linear(value, scale, zero_point, axis: int) -> np.ndarray:
    """ONNX QuantizeLinear: saturate(round_half_to_even(x / scale) + zero_point)."""
    scale = np.asarray(scale, dtype=np.float32)
    offset = np.asarray(zero_point).astype(np.int32)
    if scale.ndim == 1 and value.ndim:
        shape = [1] * value.ndim
        shape[axis % value.ndim] = -1
        scale, offset = scale.reshape(shape), offset.reshape(shape)
    levels = np.rint(value.astype(np.float32) / scale).astype(np.int64) + offset
    limits = np.iinfo(zero_point.dtype)
    return np.clip(levels, limits.min, limits.max).astype(zero_point.dtype)


def _fold_grid_weights(graph) -> None:
    """Store float weights that lie on a symmetric int8 grid as int8 behind a DequantizeLinear."""
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import helper, numpy_helper

    initializers = {tensor.name: tensor for tensor in graph.initializer}
    for name in float_weights(graph):
        weight = numpy_helper.to_array(initializers[name])
        found = _on_int8_grid(weight) if weight.dtype == np.float32 else None
        if found is None:
            continue
        levels, scale, axis = found
        graph.initializer.remove(initializers[name])
        for value in [value for value in graph.input if value.name == name]:
            graph.input.remove(value)  # IR < 4 lists initializers as inputs too
        graph.initializer.extend([
            numpy_helper.from_array(levels, f"{name}_int8"),
            numpy_helper.from_array(scale, f"{name}_int8_scale"),
            numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{name}_int8_zero_point")])
        extra = {} if axis is None else {"axis": axis}
        # The DequantizeLinear outputs the weight's old name: every consumer reads the same values.
        graph.node.insert(0, helper.make_node(
            "DequantizeLinear", [f"{name}_int8", f"{name}_int8_scale", f"{name}_int8_zero_point"],
            [name], name=f"{name}_DequantizeLinear", **extra))


def _on_int8_grid(weight: np.ndarray):
    """(int8 levels, scale, axis or None) when every value is level * scale, |level| <= 127."""
    for axis in (None, *range(weight.ndim)):
        reduced = tuple(i for i in range(weight.ndim) if i != axis)
        largest = np.abs(weight).max(axis=reduced, keepdims=True)
        scale = np.where(largest > 0, largest / 127, 1).astype(np.float32)
        ratio = weight / scale
        levels = np.rint(ratio)
        if np.abs(ratio - levels).max() <= _GRID_TOLERANCE:
            return levels.astype(np.int8), scale.reshape(() if axis is None else -1), axis
    return None


def float_weights(graph) -> list[str]:
    """Float initializers used directly as the weight input of a Conv / MatMul / Gemm."""
    floats = {tensor.name for tensor in graph.initializer if tensor.data_type in FLOAT_TYPES
              and len(tensor.dims) >= 2}
    names = {}
    for node in graph.node:
        index = WEIGHT_INPUT.get(node.op_type)
        if index is not None and len(node.input) > index and node.input[index] in floats:
            names[node.input[index]] = None
    return list(names)


def _remove_unused(graph, bypassed: list) -> None:
    """Drop the bypassed nodes and float initializers that nothing reads any more."""
    nodes = [item for item in bypassed if not isinstance(item, str)]
    names = {item for item in bypassed if isinstance(item, str)}
    while True:
        used = {name for node in graph.node for name in node.input}
        used |= {value.name for value in graph.output}
        dead = [node for node in nodes if node in graph.node
                and not any(name in used for name in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    for tensor in [t for t in graph.initializer if t.name in names and t.name not in used]:
        graph.initializer.remove(tensor)
    for value in [v for v in graph.input if v.name in names and v.name not in used]:
        graph.input.remove(value)
