"""Which layers each technique handles: one table, read by every stage before any work starts.

Per technique a layer class is
- ``COMPRESS``: the technique acts on it (prunes or clusters its kernel, fake-quantizes it);
- ``KEEP``: it stays as it is (no weights the technique touches, or left in float during QAT and
  quantized by calibration at conversion);
- absent: unsupported. Any such layer stops the run with one error naming it, before a
  fine-tuning epoch is spent; post-training quantization applies to any TFLite-convertible model.

tfmot leaves DepthwiseConv2D unpruned and unclustered (it says clustering costs too much
accuracy there). SeparableConv2D is refused for QAT: tfmot splits it into two layers, so its
fine-tuned weights could not be written back to the Keras model. The entries follow tfmot 0.8.1's
own registries (``prune_registry``, ``clustering_registry``,
``default_8bit_quantize_registry``); ``tests/unit/compress`` checks the table against them.
"""

from __future__ import annotations

from edgekit.errors import ModelError

COMPRESS = "compress"
KEEP = "keep"
TECHNIQUES = ("prune", "prune_m_by_n", "cluster", "qat")

_C, _K, _X = COMPRESS, KEEP, None
# Layer class            prune  prune_m_by_n  cluster  qat
_TABLE = {
    "InputLayer":             (_K, _K, _K, _K),
    "Conv1D":                 (_C, _K, _C, _X),
    "Conv2D":                 (_C, _C, _C, _C),
    "Conv2DTranspose":        (_C, _K, _C, _C),
    "DepthwiseConv2D":        (_K, _K, _K, _C),
    "SeparableConv2D":        (_C, _K, _C, _X),
    "Dense":                  (_C, _C, _C, _C),
    "Embedding":              (_C, _K, _C, _X),
    "LSTM":                   (_C, _K, _C, _X),
    "GRU":                    (_C, _K, _C, _X),
    "SimpleRNN":              (_C, _K, _C, _X),
    "BatchNormalization":     (_K, _K, _K, _C),
    "LayerNormalization":     (_K, _K, _K, _X),
    "ReLU":                   (_K, _K, _K, _C),
    "LeakyReLU":              (_K, _K, _K, _C),
    "Activation":             (_K, _K, _K, _C),
    "Softmax":                (_K, _K, _K, _C),
    "Add":                    (_K, _K, _K, _C),
    "Concatenate":            (_K, _K, _K, _C),
    "Multiply":               (_K, _K, _K, _K),
    "MaxPooling2D":           (_K, _K, _K, _C),
    "AveragePooling2D":       (_K, _K, _K, _C),
    "GlobalAveragePooling1D": (_K, _K, _K, _C),
    "GlobalAveragePooling2D": (_K, _K, _K, _C),
    "GlobalMaxPooling2D":     (_K, _K, _K, _C),
    "ZeroPadding2D":          (_K, _K, _K, _C),
    "UpSampling2D":           (_K, _K, _K, _C),
    "Flatten":                (_K, _K, _K, _C),
    "Reshape":                (_K, _K, _K, _C),
    "Permute":                (_K, _K, _K, _C),
    "Dropout":                (_K, _K, _K, _C),
    "SpatialDropout2D":       (_K, _K, _K, _C),
    "Resizing":               (_K, _K, _K, _K),
    "Rescaling":              (_K, _K, _K, _K),
}
LAYER_SUPPORT: dict[str, dict[str, str | None]] = {
    name: dict(zip(TECHNIQUES, roles)) for name, roles in _TABLE.items()
}

# How each technique is spelled on the command line, for messages.
FLAGS = {"prune": "--prune", "prune_m_by_n": "--prune-structure", "cluster": "--cluster",
         "qat": "--qat"}
PTQ_STILL_APPLIES = ("post-training quantization (--int8, --int16x8, --dynamic, --fp16) still "
                     "applies to any TFLite-convertible model")


def is_custom_layer(layer) -> bool:
    """A layer class the user wrote (passed with --custom-objects), not one of Keras' own."""
    module = type(layer).__module__ or ""
    return not module.startswith(("tf_keras.", "keras.", "tensorflow.", "tensorflow_model_optimization."))


def custom_layer_role(layer, technique: str) -> str:
    """A custom layer gets a technique only through tfmot's interface for it; else it is left alone.

    ``PrunableLayer`` (prune), ``ClusterableLayer`` (cluster), and for QAT a ``quantize_config``
    attribute holding a tfmot ``QuantizeConfig``.
    """
    import tensorflow_model_optimization as tfmot

    if technique in ("prune", "prune_m_by_n"):
        interface = tfmot.sparsity.keras.PrunableLayer
        return COMPRESS if isinstance(layer, interface) else KEEP
    if technique == "cluster":
        interface = tfmot.clustering.keras.ClusterableLayer
        return COMPRESS if isinstance(layer, interface) else KEEP
    config = getattr(layer, "quantize_config", None)
    return COMPRESS if isinstance(config, tfmot.quantization.keras.QuantizeConfig) else KEEP


def role(layer, technique: str) -> str | None:
    """COMPRESS, KEEP or None (unsupported) for one layer instance."""
    known = LAYER_SUPPORT.get(type(layer).__name__)
    if known is None and is_custom_layer(layer) and not hasattr(layer, "layers"):
        return custom_layer_role(layer, technique)
    return (known or {}).get(technique)


def custom_layers_left_alone(model, technique: str) -> list[str]:
    """Names of the user's custom layers the technique leaves as they are (no tfmot interface)."""
    return [layer.name for layer in getattr(model, "layers", [])
            if type(layer).__name__ not in LAYER_SUPPORT and is_custom_layer(layer)
            and not hasattr(layer, "layers") and role(layer, technique) == KEEP]


def layers_to_compress(model, technique: str) -> list:
    """The model's layers the technique acts on, after :func:`check_layers`."""
    return [layer for layer in model.layers if role(layer, technique) == COMPRESS]


def check_layers(model, technique: str) -> None:
    """Raise ModelError naming the first layer ``technique`` cannot handle.

    Raises:
        ModelError: for a subclassed model, a nested model or a layer absent from the table.
    """
    flag = FLAGS[technique]
    if not hasattr(model, "layers"):
        return  # not a Keras model at all: check_single_input_output says so
    if not getattr(model, "_is_graph_network", False) and type(model).__name__ != "Sequential":
        raise ModelError(
            f"{flag} cannot handle model {model.name!r}: it is a subclassed "
            f"{type(model).__name__} whose layers run from Python code, so they cannot be "
            f"wrapped; {PTQ_STILL_APPLIES}. Rebuild it as a functional model for {flag}"
        )
    unsupported = [layer for layer in model.layers if role(layer, technique) is None]
    if not unsupported:
        return
    first = unsupported[0]
    kind = type(first).__name__
    more = f" (and {len(unsupported) - 1} more layer(s))" if len(unsupported) > 1 else ""
    why = "a model nested inside the model" if hasattr(first, "layers") else f"a {kind} layer"
    supported = sorted(name for name, roles in LAYER_SUPPORT.items()
                       if roles[technique] == COMPRESS)
    raise ModelError(
        f"{flag} cannot handle layer {first.name!r} ({why}){more}: edgekit's {flag} supports "
        f"{', '.join(supported)} and weightless layers; {PTQ_STILL_APPLIES}. Drop {flag}, or "
        "replace that layer"
    )
