"""ONNX graph rewrites that let ONNX Runtime run an int8 graph with integer kernels.

ONNX Runtime fuses a DequantizeLinear -> op -> QuantizeLinear group into one integer kernel
(QLinearConv, QGemm, QLinearAdd, ...) only when the group has exactly that shape. What tf2onnx
writes for tf-keras models breaks it in places; these rewrites of a float graph, run before
static quantization, take the obstacles out (every one keeps the float outputs, the
BatchNormalization folding within float32 rounding):

- :func:`remove_identities`: tf2onnx turns the NHWC <-> NCHW Transposes around a layer whose
  spatial size is 1 x 1 into Reshapes to the shape the tensor already has (MobileNetV2's last
  blocks). They stand between a Conv and its BatchNormalization, so neither tf2onnx nor ONNX
  Runtime folds the BatchNormalization, which then ran in float between a DequantizeLinear and
  a QuantizeLinear in the int8 graph. A global pool over a 1 x 1 image is an identity too
  (ONNX Runtime's QLinearGlobalAveragePool took 4% of MobileNetV2's int8 time on one).
- :func:`fold_batch_norms`: a BatchNormalization (inference form) right after a Conv becomes
  part of that Conv's weights and bias.
- :func:`space_to_depth_convs`: a strided Conv over fewer than 4 input channels (the first
  one on a greyscale image or a spectrogram) becomes a SpaceToDepth and a stride-1 Conv over
  ``stride**2`` times the channels, with the same outputs up to float rounding. ONNX Runtime's
  symmetric int8 convolution walks the kernel one position at a time, a few channels per step: on ds_cnn's
  10 x 4, stride-2 first layer over one channel that made the int8 layer slower than the
  fp32 one (measured 33 vs 27 us with the next 1 x 1 layer; 24 us rewritten).
- :func:`narrow_input_convs`: the Convs with fewer than 4 input channels (the first one on a
  greyscale or RGB image), which ONNX Runtime runs faster in float than in int8.

And one for the size of a finished int8 file: :func:`shorten_tensor_names` gives the inner
tensors short names (tf2onnx's names repeat the Keras path in every node's inputs and outputs:
a tenth of resnet8's int8 file).

Example:
    >>> proto, counts = prepare_float_graph(onnx.load("model_fp32.onnx"))
    >>> counts
    {'identity_reshapes_removed': 22, 'identity_pools_removed': 1, 'batch_norms_folded': 12,
     'space_to_depth_convs': 1}
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

# ONNX Runtime's symmetric int8 convolution takes input channels in multiples of this.
CHANNEL_MULTIPLE = 4


def constants(graph) -> dict:
    """name -> numpy value of every initializer and Constant node output."""
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import numpy_helper

    values = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def consumers(graph) -> dict:
    """name -> the nodes that read it (a node reading it twice is listed twice)."""
    readers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            readers[name].append(node)
    return readers


def producers(graph) -> dict:
    """name -> the node that writes it."""
    return {name: node for node in graph.node for name in node.output}


def attribute(node, name: str, default=None):
    """The value of ``node``'s attribute ``name``, or ``default``."""
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import helper

    found = [a for a in node.attribute if a.name == name]
    return helper.get_attribute_value(found[0]) if found else default


def opset(model) -> int:
    """The model's default-domain opset version."""
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")),
                0)


def unique_name(graph, base: str) -> str:
    """``base``, or ``base_<n>``, that no node output, initializer or graph value uses yet."""
    taken = {tensor.name for tensor in graph.initializer}
    taken |= {name for node in graph.node for name in node.output}
    taken |= {value.name for value in (*graph.input, *graph.output)}
    name, count = base, 0
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    return name


def unique_node_name(graph, base: str) -> str:
    """``base``, or ``base_<n>``, that no node of ``graph`` is named yet."""
    taken = {node.name for node in graph.node}
    name, count = base, 0
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    return name


def add_initializer(graph, value: np.ndarray, base: str) -> str:
    """Add ``value`` as a new initializer; returns its (unique) name."""
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import numpy_helper

    name = unique_name(graph, base)
    graph.initializer.append(numpy_helper.from_array(value, name))
    return name


def drop_unused_initializers(graph, names) -> None:
    """Remove the initializers among ``names`` that no node and no graph output reads."""
    used = {name for node in graph.node for name in node.input}
    used |= {value.name for value in graph.output}
    for tensor in [t for t in graph.initializer if t.name in set(names) - used]:
        graph.initializer.remove(tensor)
    for value in [v for v in graph.input if v.name in set(names) - used]:
        graph.input.remove(value)  # IR < 4 lists initializers as inputs too


def prepare_float_graph(model, space_to_depth: bool = True) -> tuple:
    """A copy of an fp32 model with the rewrites of this module applied, and their counts.

    Args:
        model: an fp32 ``onnx.ModelProto``.
        space_to_depth: also rewrite strided narrow Convs (:func:`space_to_depth_convs`).

    Returns:
        ``(model, {"identity_reshapes_removed", "identity_pools_removed",
        "batch_norms_folded", "space_to_depth_convs"})``.
    """
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    reshapes, pools = remove_identities(copy)
    counts = {"identity_reshapes_removed": reshapes, "identity_pools_removed": pools,
              "batch_norms_folded": fold_batch_norms(copy.graph)}
    counts["space_to_depth_convs"] = space_to_depth_convs(copy) if space_to_depth else 0
    return copy, counts


def remove_identities(model) -> tuple[int, int]:
    """Drop Reshapes to the shape their input already has, and global pools over a 1 x 1 image.

    Shapes come from ONNX shape inference: every dimension but the batch must be known, and a
    Reshape's target must repeat them with -1 or 0 for the batch. Returns ``(reshapes, pools)``.
    """
    graph = model.graph
    shapes = inferred_shapes(model)
    values = constants(graph)
    outputs = {value.name for value in graph.output}
    reshapes = pools = 0
    bypassed = []
    for node in list(graph.node):
        if node.domain not in ("", "ai.onnx") or node.output[0] in outputs:
            continue
        source = shapes.get(node.input[0])
        if not source or None in source[1:]:
            continue
        if node.op_type == "Reshape" and node.input[1] in values:
            target = values[node.input[1]].reshape(-1).tolist()
            if (len(source) != len(target) or target[1:] != source[1:]
                    or target[0] not in (-1, 0, source[0])
                    or (attribute(node, "allowzero", 0) and 0 in target)):
                continue
            reshapes += 1
        elif node.op_type in ("GlobalAveragePool", "GlobalMaxPool"):
            if len(source) < 3 or any(size != 1 for size in source[2:]):
                continue
            pools += 1
        else:
            continue
        for reader in consumers(graph)[node.output[0]]:
            for index, name in enumerate(reader.input):
                if name == node.output[0]:
                    reader.input[index] = node.input[0]
        graph.node.remove(node)
        bypassed += node.input[1:]
    drop_unused_initializers(graph, bypassed)
    return reshapes, pools


def inferred_shapes(model) -> dict:
    """name -> list of dimensions (None when unknown), from ONNX shape inference."""
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import shape_inference

    try:
        inferred = shape_inference.infer_shapes(model).graph
    except Exception:  # noqa: BLE001  (no shapes: nothing is known to be an identity)
        return {}
    return {value.name: [dim.dim_value if dim.HasField("dim_value") else None
                         for dim in value.type.tensor_type.shape.dim]
            for value in (*inferred.value_info, *inferred.input, *inferred.output)
            if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape")}


def fold_batch_norms(graph) -> int:
    """Fold each inference BatchNormalization that alone reads a Conv's output into that Conv.

    Returns how many were folded. ``w' = w * g``, ``b' = (b - mean) * g + beta`` with
    ``g = scale / sqrt(var + epsilon)`` per output channel (computed in float64).
    """
    values = constants(graph)
    initializers = {tensor.name for tensor in graph.initializer}
    outputs = {value.name for value in graph.output}
    folded = 0
    for norm in [node for node in graph.node if node.op_type == "BatchNormalization"
                 and node.domain in ("", "ai.onnx") and len(node.output) == 1]:
        conv = producers(graph).get(norm.input[0])
        if (conv is None or conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx")
                or len(consumers(graph)[conv.output[0]]) != 1 or conv.output[0] in outputs
                or not all(name in values for name in norm.input[1:5])
                or not all(name in initializers for name in conv.input[1:] if name)):
            continue
        weight = values[conv.input[1]]
        scale, beta, mean, var = (values[name].astype(np.float64).reshape(-1)
                                  for name in norm.input[1:5])
        if weight.dtype != np.float32 or not (len(scale) == len(beta) == len(mean) == len(var)
                                              == weight.shape[0]):
            continue
        has_bias = len(conv.input) > 2 and bool(conv.input[2])
        bias = (values[conv.input[2]].astype(np.float64).reshape(-1) if has_bias
                else np.zeros(len(scale)))
        factor = scale / np.sqrt(var + attribute(norm, "epsilon", 1e-5))
        new_weight = weight.astype(np.float64) * factor.reshape(-1, *[1] * (weight.ndim - 1))
        new_bias = (bias - mean) * factor + beta
        old = [*conv.input[1:], *norm.input[1:]]
        # New initializers: the old ones may be shared with another node.
        base = conv.name or conv.output[0]
        conv.input[1] = add_initializer(graph, new_weight.astype(np.float32),
                                        f"{base}_weight_bn_folded")
        del conv.input[2:]
        conv.input.append(add_initializer(graph, new_bias.astype(np.float32),
                                          f"{base}_bias_bn_folded"))
        values.update({name: _array(graph, name) for name in conv.input[1:]})
        initializers.update(conv.input[1:])
        conv.output[0] = norm.output[0]
        graph.node.remove(norm)
        drop_unused_initializers(graph, old)
        folded += 1
    return folded


def space_to_depth_convs(model) -> int:
    """Rewrite each strided Conv over fewer than 4 channels as SpaceToDepth + stride-1 Conv.

    A Conv (group 1, dilation 1, explicit pads, the same stride ``s > 1`` on both axes, a
    constant float32 weight ``(M, C, kh, kw)`` with ``C < 4``) over an input whose height and
    width are known and divisible by ``s`` reads, for output row ``i``, input rows
    ``s*i - top + r``: block row ``i + (r - top) // s``, offset ``(r - top) % s``. So the same
    outputs come from SpaceToDepth(``s``) (channel ``(a*s + b)*C + c`` holds pixel
    ``(s*p + a, s*q + b)`` of channel ``c``) and a stride-1 Conv whose weight places each tap
    at its block and offset (zeros elsewhere), padded by whole blocks. Zero padding maps to
    zero padding; the sums run in another order, so outputs agree up to float rounding. The
    Conv keeps its name and output; returns how many were rewritten. A size not divisible by
    the stride (a 49 x 10 spectrogram at stride 2) is left as it is.
    """
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import helper

    graph = model.graph
    shapes = inferred_shapes(model)
    values = constants(graph)
    initializers = {tensor.name for tensor in graph.initializer}
    rewritten = 0
    for conv in [node for node in graph.node if node.op_type == "Conv"
                 and node.domain in ("", "ai.onnx")]:
        weight = values.get(conv.input[1]) if conv.input[1] in initializers else None
        source = shapes.get(conv.input[0])
        if weight is None or weight.dtype != np.float32 or weight.ndim != 4 or not source:
            continue
        plan = _space_to_depth_plan(conv, weight, source)
        if plan is None:
            continue
        stride, new_weight, pads = plan
        base = conv.name or conv.output[0]
        blocks = unique_name(graph, f"{base}_space_to_depth")
        graph.node.insert(list(graph.node).index(conv), helper.make_node(
            "SpaceToDepth", [conv.input[0]], [blocks], blocksize=stride,
            name=unique_node_name(graph, f"{base}_space_to_depth")))
        old = conv.input[1]
        conv.input[0] = blocks
        conv.input[1] = add_initializer(graph, new_weight, f"{base}_weight_space_to_depth")
        for name, value in (("strides", [1, 1]), ("pads", pads),
                            ("kernel_shape", list(new_weight.shape[2:]))):
            for item in [a for a in conv.attribute if a.name == name]:
                conv.attribute.remove(item)
            conv.attribute.append(helper.make_attribute(name, value))
        drop_unused_initializers(graph, [old])
        rewritten += 1
    return rewritten


def _space_to_depth_plan(conv, weight: np.ndarray, source: list):
    """``(stride, weight, pads)`` of the rewritten Conv, or None when the Conv does not qualify."""
    out_channels, channels, kernel_h, kernel_w = weight.shape
    strides = list(attribute(conv, "strides", [1, 1]))
    pads = list(attribute(conv, "pads", [0, 0, 0, 0]))
    if (attribute(conv, "group", 1) != 1 or channels >= CHANNEL_MULTIPLE
            or any(d != 1 for d in attribute(conv, "dilations", [1, 1]))
            or attribute(conv, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
            or len(strides) != 2 or strides[0] != strides[1] or strides[0] < 2
            or len(pads) != 4 or len(source) != 4 or None in source[1:]
            or source[1] != channels):
        return None
    stride = strides[0]
    new_pads, offsets, sizes = [0, 0, 0, 0], [], []
    for axis, kernel in enumerate((kernel_h, kernel_w)):
        size, before, after = source[2 + axis], pads[axis], pads[2 + axis]
        if size % stride:
            return None
        out = (size + before + after - kernel) // stride + 1
        low, high = -before // stride, (kernel - 1 - before) // stride
        end = (out - 1) + high - (size // stride - 1)
        if out < 1 or end < 0:
            return None
        new_pads[axis], new_pads[2 + axis] = -low, end
        offsets.append(low)
        sizes.append(high - low + 1)
    new_weight = np.zeros((out_channels, stride * stride * channels, *sizes), np.float32)
    for u in range(sizes[0]):
        for a in range(stride):
            row = stride * (u + offsets[0]) + a + pads[0]
            if not 0 <= row < kernel_h:
                continue
            for v in range(sizes[1]):
                for b in range(stride):
                    col = stride * (v + offsets[1]) + b + pads[1]
                    if 0 <= col < kernel_w:
                        first = (a * stride + b) * channels
                        new_weight[:, first:first + channels, u, v] = weight[:, :, row, col]
    return stride, new_weight, new_pads


def shorten_tensor_names(graph, prefix: str = "t") -> int:
    """Rename every inner tensor of ``graph`` to ``prefix`` + a number; return how many.

    Graph inputs and outputs and node names keep their names (a node's name still says which
    Keras layer it came from). Initializers and node outputs are numbered in graph order, so
    the same graph always gets the same names. A graph with subgraphs (If, Loop, Scan) is left
    as it is and 0 is returned: their bodies may read outer names.

    Example:
        >>> shorten_tensor_names(model.graph)
        142
    """
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import AttributeProto

    if any(item.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS)
           for node in graph.node for item in node.attribute):
        return 0
    kept = {value.name for value in (*graph.input, *graph.output)} | {""}
    taken = kept | {value.name for value in graph.value_info}
    names = {}
    inner = [tensor.name for tensor in graph.initializer]
    inner += [name for node in graph.node for name in node.output]
    for name in inner:
        if name in kept or name in names:
            continue
        number = len(names)
        while f"{prefix}{number}" in taken:
            number += 1
        names[name] = f"{prefix}{number}"
        taken.add(names[name])
    for tensor in graph.initializer:
        tensor.name = names.get(tensor.name, tensor.name)
    for value in graph.value_info:
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]
    return len(names)


def _array(graph, name: str) -> np.ndarray:
    # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick
    from onnx import numpy_helper

    return numpy_helper.to_array(next(t for t in graph.initializer if t.name == name))


def narrow_input_convs(graph) -> list[str]:
    """Names of the Convs (group 1, constant weights) with fewer than 4 input channels.

    ONNX Runtime's fast int8 convolution takes input channels in multiples of 4; with 1-3 (a
    greyscale or RGB image) it falls back to a generic path measured 2-3x slower than the fp32
    Conv, which has a kernel for exactly this case; they are best kept in float.
    """
    values = constants(graph)
    return [node.name for node in graph.node
            if node.op_type == "Conv" and node.domain in ("", "ai.onnx") and node.name
            and attribute(node, "group", 1) == 1 and node.input[1] in values
            and values[node.input[1]].ndim == 4
            and values[node.input[1]].shape[1] < CHANNEL_MULTIPLE]
