"""Rewrites of a QDQ (QuantizeLinear / DequantizeLinear) graph into the groups ONNX Runtime fuses.

ONNX Runtime replaces ``DequantizeLinear -> Conv -> QuantizeLinear`` by QLinearConv (and
likewise Gemm, MatMul, Add, pooling) only when the op's output goes straight into the
QuantizeLinear. In a tf2onnx conversion of a tfmot quantization-aware model a Relu stands
between them (tfmot fake-quantizes after the activation), and the zero point after it is not
0: tfmot's ranges start at [-6, 6] and move slowly (zero points 40-124 of 255 after a 1-epoch
fine-tuning), so ONNX Runtime's ReluQuantFusion, which needs the type's minimum, leaves it.
ONNX Runtime then ran float FusedConv between standalone QuantizeLinear / DequantizeLinear
nodes (measured: 1.8-3.4x slower than fp32).

- :func:`relu_into_quantize`: ``Q(relu(x)) = max(Q(x), zero point)``. The Relu goes; when the
  zero point is not the type's minimum, an integer Clip at the zero point follows the
  QuantizeLinear. The same values, and the Conv / MatMul fuses.
- :func:`integer_biases` (opt-in): a float bias (a Conv's third input, or the Add of a constant
  after a MatMul, which becomes a Gemm) becomes int32 behind a DequantizeLinear with scale
  ``input_scale * weight_scale`` and zero point 0, as ONNX Runtime's own quantizer writes it.
  It moves each bias by at most half of that scale. ONNX Runtime 1.32's CPU fusion does not
  need it (a float bias did not block QLinearConv there: measured).

Data-movement ops between a DequantizeLinear and a Conv (MaxPool, Reshape, Transpose after a
fake-quant) need nothing: ONNX Runtime's QDQ propagation handles them.

Example:
    >>> integer_kernel_rewrites(model)
    {'relus_removed': 0, 'relus_to_integer_clip': 5, 'biases_int32': 0}
"""

from __future__ import annotations

import numpy as np

from edgekit.formats.onnx_graph import (add_initializer, attribute, constants, consumers,
                                        drop_unused_initializers, inferred_shapes, opset,
                                        producers, unique_name, unique_node_name)

# Clip takes int8 / uint8 tensors from opset 12 on.
# Ops that only move or pick values: a tensor they output has their input's quantization.
_MOVERS = ("MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten")
_MIN_OPSET = 12
_INT32 = np.iinfo(np.int32)


def integer_kernel_rewrites(model, int32_biases: bool = False) -> dict:
    """Apply the rewrites of this module to ``model`` (in place); returns their counts.

    ``int32_biases``: also store float biases as int32 (:func:`integer_biases`). ONNX
    Runtime's CPU kernels do not need it: they quantize a float bias the same way themselves
    (measured: identical outputs); other runtimes' QDQ rules may.
    """
    if opset(model) < _MIN_OPSET:
        return {"relus_removed": 0, "relus_to_integer_clip": 0, "biases_int32": 0}
    removed, clipped = relu_into_quantize(model.graph)
    return {"relus_removed": removed, "relus_to_integer_clip": clipped,
            "biases_int32": integer_biases(model) if int32_biases else 0}


def _is_plain(node, op_type: str) -> bool:
    return node is not None and node.op_type == op_type and node.domain in ("", "ai.onnx")


def _per_tensor(node, values: dict) -> bool:
    """A Q / DQ node with a constant one-value scale and zero point (if any), no blocks."""
    names = node.input[1:3]
    return (all(name in values and values[name].size == 1 for name in names if name)
            and not attribute(node, "block_size", 0))


def relu_into_quantize(graph) -> tuple[int, int]:
    """Relu -> QuantizeLinear: drop the Relu, or turn it into an integer Clip at the zero point.

    Returns ``(dropped, turned into Clip)``.
    """
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import helper

    values = constants(graph)
    outputs = {value.name for value in graph.output}
    dropped = clipped = 0
    for relu in [node for node in graph.node if _is_plain(node, "Relu")]:
        readers = consumers(graph)[relu.output[0]]
        if (len(readers) != 1 or not _is_plain(readers[0], "QuantizeLinear")
                or relu.output[0] in outputs or not _per_tensor(readers[0], values)):
            continue
        quantize = readers[0]
        zero_point = (values[quantize.input[2]] if len(quantize.input) > 2 and quantize.input[2]
                      else np.zeros((), np.uint8))
        if zero_point.dtype not in (np.uint8, np.int8) or attribute(quantize, "output_dtype", 0):
            continue
        quantize.input[0] = relu.input[0]
        graph.node.remove(relu)
        if int(zero_point.reshape(-1)[0]) == np.iinfo(zero_point.dtype).min:
            dropped += 1
            continue
        # Q(relu(x)) = max(Q(x), zero point): the QuantizeLinear saturates the same way.
        floor = add_initializer(graph, zero_point.reshape(()), f"{quantize.output[0]}_relu_floor")
        clipped_name = quantize.output[0]
        quantize.output[0] = unique_name(graph, f"{clipped_name}_before_relu")
        graph.node.insert(list(graph.node).index(quantize) + 1, helper.make_node(
            "Clip", [quantize.output[0], floor], [clipped_name], name=relu.name))
        clipped += 1
    return dropped, clipped


def integer_biases(model) -> int:
    """Float biases of quantized Conv / MatMul + Add as int32 behind a DequantizeLinear.

    A MatMul of a 2-D input followed by the Add of a constant vector becomes one Gemm.
    Returns how many biases were converted.
    """
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import helper

    graph = model.graph
    ranks = _ranks(model)
    values = constants(graph)
    initializers = {tensor.name for tensor in graph.initializer}
    done, replaced = 0, []
    for node in list(graph.node):
        found = _bias_site(graph, node, values, initializers, ranks)
        if found is None:
            continue
        bias_name, add, scale = found
        bias = values[bias_name].astype(np.float32).reshape(-1)
        scale = np.broadcast_to(scale, bias.shape).astype(np.float32)
        levels = np.rint(bias / scale)
        if not np.all(np.isfinite(levels)) or np.abs(levels).max(initial=0) > _INT32.max:
            continue
        base = f"{node.name or node.output[0]}_bias"
        dequantize_inputs = [add_initializer(graph, levels.astype(np.int32), f"{base}_int32"),
                             add_initializer(graph, scale, f"{base}_int32_scale"),
                             add_initializer(graph, np.zeros(bias.shape, np.int32),
                                             f"{base}_int32_zero_point")]
        bias_value = unique_name(graph, f"{base}_dequantized")
        dequantize = helper.make_node("DequantizeLinear", dequantize_inputs, [bias_value], axis=0,
                                      name=unique_node_name(graph, f"{base}_DequantizeLinear"))
        index = list(graph.node).index(node)
        if add is None:
            node.input[2] = bias_value
        else:
            gemm = helper.make_node("Gemm", [node.input[0], node.input[1], bias_value],
                                    [add.output[0]], name=node.name)
            graph.node.remove(add)
            graph.node.remove(node)
            graph.node.insert(index, gemm)
        graph.node.insert(index, dequantize)
        replaced.append(bias_name)
        done += 1
    drop_unused_initializers(graph, replaced)
    return done


def _bias_site(graph, node, values: dict, initializers: set, ranks: dict):
    """``(float bias name, Add or None, bias scale)`` when ``node`` is a Conv (with a float
    constant bias) or a MatMul + Add whose input and weight both come through per-tensor /
    per-channel DequantizeLinear nodes; else None."""
    if node.domain not in ("", "ai.onnx") or node.op_type not in ("Conv", "MatMul"):
        return None
    found = producers(graph)
    source, weight = (found.get(name) for name in node.input[:2])
    while source is not None and source.op_type in _MOVERS and source.domain in ("", "ai.onnx"):
        source = found.get(source.input[0])  # they keep the values, so the scale, of their input
    if not (_is_plain(source, "DequantizeLinear") and _is_plain(weight, "DequantizeLinear")
            and source.input[0] not in values and weight.input[0] in values
            and _per_tensor(source, values) and values[weight.input[0]].dtype == np.int8
            and all(name in values for name in weight.input[1:3] if name)):
        return None
    weight_scale = values[weight.input[1]].astype(np.float32).reshape(-1)
    scale = np.float32(values[source.input[1]].reshape(())) * weight_scale
    if node.op_type == "Conv":
        if len(node.input) < 3 or node.input[2] not in initializers:
            return None
        bias, add, channels = node.input[2], None, values[weight.input[0]].shape[0]
        if weight_scale.size > 1 and attribute(weight, "axis", 1) != 0:
            return None
    else:
        readers = consumers(graph)[node.output[0]]
        if (len(readers) != 1 or not _is_plain(readers[0], "Add") or ranks.get(node.input[0]) != 2
                or values[weight.input[0]].ndim != 2 or node.output[0] in
                {value.name for value in graph.output}):
            return None
        add = readers[0]
        bias = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        channels = values[weight.input[0]].shape[1]
        if bias not in initializers or (weight_scale.size > 1
                                        and attribute(weight, "axis", 1) != 1):
            return None
    value = values[bias]
    if (value.dtype != np.float32 or value.size != channels
            or value.ndim != 1 or weight_scale.size not in (1, channels)):
        return None
    if not np.all(scale > 0) or not np.all(np.isfinite(scale)):
        return None
    return bias, add, scale


def _ranks(model) -> dict:
    """name -> rank, from ONNX shape inference (empty when it fails)."""
    return {name: len(dims) for name, dims in inferred_shapes(model).items()}
