"""Quantization-aware training (``--qat``): fine-tune with fake int8 quantization, convert to int8.

After pruning or clustering, the sparsity- or cluster-preserving scheme of tfmot's
``experimental.combine`` keeps the zeros and the shared values through QAT, so one technique
does not undo the other (prune + cluster uses the cluster scheme with ``preserve_sparsity``).

The QAT model (with its fake-quant wrappers) goes to the TFLite conversion; model.keras gets a
plain float model holding the fine-tuned weights, which any tf-keras reloads. QAT always runs in
float32: tfmot's fake-quant ops have no float16 kernels.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np

from edgekit._compat import keras
from edgekit.compress.finetune import (
    apply_zero_masks,
    clone_with_policy,
    fine_tune,
    float_model,
    kernel_zero_masks,
)
from edgekit.compress.layers import (
    COMPRESS,
    WEIGHTLESS_LAYERS,
    LayerTable,
    register_layer_table,
    role,
)
from edgekit.compress.stages import (
    TECHNIQUES,
    StageContext,
    StageResult,
    Technique,
    wanted_stages,
)
from edgekit.errors import ModelError, OptionError
from edgekit.options import Option

QAT = Option("qat", bool, False, "quantization-aware training for int8 (sparsity- / "
             "cluster-preserving after --prune / --cluster); converts to int8")


def _has_quantize_config(layer) -> bool:
    """A custom layer brings its own tfmot ``QuantizeConfig`` in a ``quantize_config`` attribute."""
    import tensorflow_model_optimization as tfmot  # lazy: tfmot loads TensorFlow

    return isinstance(getattr(layer, "quantize_config", None),
                      tfmot.quantization.keras.QuantizeConfig)


# Layer classes after tfmot 0.8.1's default_8bit_quantize_registry. Kept: layers left in float
# during QAT and quantized by calibration at conversion. SeparableConv2D is refused: tfmot
# splits it into two layers, so its fine-tuned weights could not be written back to the Keras
# model; recurrent layers, Conv1D, Embedding and LayerNormalization have no QAT in tfmot.
_KEPT_IN_FLOAT = ("InputLayer", "Multiply", "Resizing", "Rescaling")
register_layer_table(LayerTable(
    "qat", "--qat",
    ("Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "Dense", "BatchNormalization",
     *(name for name in WEIGHTLESS_LAYERS if name not in _KEPT_IN_FLOAT)),
    _KEPT_IN_FLOAT, _has_quantize_config))


@TECHNIQUES.register("qat")
class QuantizationAwareTraining(Technique):
    """Annotate the table's quantizable layers, apply the right scheme, fine-tune."""

    name = "qat"
    order = 30
    options = (QAT,)
    learning_rate = 1e-4  # QAT adjusts a trained model: it moves gently

    def conversion(self, config) -> str:
        return "int8"  # the fake-quant ranges it learns are int8's

    def validate(self, config) -> None:
        if not config.qat:
            return
        for technique in _other_techniques(self, config):
            mode = technique.conversion(config)
            if mode and mode != "int8":
                flag = "--" + mode  # a post-training quantization flag is named after its mode
                raise OptionError(
                    f"--qat trains for int8 and converts to int8; received {flag} as well. "
                    f"Drop {flag}, or drop --qat"
                )

    def layer_table(self, config) -> str:
        return "qat"

    def apply(self, model, context: StageContext) -> StageResult:
        import tensorflow_model_optimization as tfmot  # lazy: tfmot loads TensorFlow

        scheme, scheme_name = _scheme(context.applied)
        working = clone_with_policy(model, "float32")
        quantized = [layer.name for layer in working.layers if role(layer, "qat") == COMPRESS]
        left_float = [layer.name for layer in working.layers if role(layer, "qat") != COMPRESS
                      and type(layer).__name__ != "InputLayer"]
        output_quantized = [layer.name for layer in working.layers
                            if type(layer).__name__ in OUTPUT_QUANTIZED_LAYERS
                            and layer.name in left_float]

        def annotate(layer):
            if layer.name in quantized:
                # A custom layer brings its own QuantizeConfig (tfmot's interface for it).
                return tfmot.quantization.keras.quantize_annotate_layer(
                    layer, quantize_config=getattr(layer, "quantize_config", None))
            if layer.name in output_quantized:
                # A Rescaling / Normalization left in float still needs its output range: without
                # it the converter folds its scale away and the int8 model sees raw-range input
                # (a Keras 3 ResNet-8 with Rescaling(1/255) came out at 10% through LiteRT).
                return tfmot.quantization.keras.quantize_annotate_layer(
                    layer, quantize_config=_output_quantization())
            if layer.name in left_float:
                # Annotated explicitly as "not quantized": left unannotated, a layer feeding a
                # quantized one is sent to the scheme's registry, and the preserving schemes'
                # registries then fail on layers tfmot does not know (e.g. Resizing).
                return tfmot.quantization.keras.quantize_annotate_layer(
                    layer, quantize_config=_no_quantization())
            return layer

        annotated = keras().models.clone_model(working, clone_function=annotate)
        try:
            custom_configs = {type(layer.quantize_config).__name__: type(layer.quantize_config)
                              for layer in working.layers
                              if layer.name in quantized and hasattr(layer, "quantize_config")}
            with _quiet_tfmot_warnings(), tfmot.quantization.keras.quantize_scope(custom_configs):
                qat_model = tfmot.quantization.keras.quantize_apply(annotated, scheme)
        except (ValueError, RuntimeError, TypeError) as error:
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            raise ModelError(
                f"--qat could not quantize model {model.name!r}: {type(error).__name__}: "
                f"{reason}; post-training quantization (--int8) still applies. Drop --qat"
            ) from error
        with _quiet_tfmot_warnings():
            finetune = fine_tune(qat_model, context, self.name)
        result = float_model(qat_model, model)
        pruned = context.applied.get("prune", {}).get("pruned_layers", [])
        if pruned:
            # The preserving schemes mask the weights they quantize; the float kernels they keep
            # may drift off zero, so the pruned zeros are put back for model.keras.
            apply_zero_masks(result, kernel_zero_masks(model, pruned))
        record = {
            "technique": "quantization-aware training (tfmot quantize_apply), int8",
            "scheme": scheme_name,
            "quantized_layers": quantized,
            "left_float_during_qat": left_float,
            "output_quantized_during_qat": output_quantized,
            "finetune": finetune,
        }
        clustered = context.applied.get("cluster", {}).get("clustered_layers", [])
        if clustered:
            # tfmot's cluster-preserving QAT re-clusters Conv2D kernels per output channel.
            record["max_distinct_kernel_values_per_output_channel"] = {
                name: _max_distinct_per_output_channel(result.get_layer(name).get_weights()[0])
                for name in clustered}
        cluster_preserving = "cluster" in context.applied

        def save(folder: Path) -> dict:
            name, save_format = save_qat_model(qat_model, folder, cluster_preserving)
            return {"qat_file": name, "qat_format": save_format,
                    "qat_note": "reload inside tfmot.quantization.keras.quantize_scope()"}

        return StageResult(model=qat_model, keras_model=result, record=record, save=save)


def _other_techniques(technique: Technique, config) -> list[Technique]:
    """The other techniques ``config`` wants."""
    return [other for other in wanted_stages(config) if other.name != technique.name]


def _max_distinct_per_output_channel(kernel) -> int:
    columns = kernel.reshape(-1, kernel.shape[-1])  # Keras kernels end with the output axis
    return int(max(len(np.unique(columns[:, index])) for index in range(columns.shape[1])))


# tfmot 0.8.1 QAT models do not reload from .keras (the QuantizeLayer's variables mismatch);
# .h5 reloads plain and prune-preserving QAT but not cluster-preserving QAT (weight count
# mismatch), which a SavedModel folder does. Each reloads inside
# ``tfmot.quantization.keras.quantize_scope()``. Can go when tfmot's .keras support is fixed.
QAT_FILES = {"h5": "qat_model.h5", "tf": "qat_model"}


def save_qat_model(model, folder, cluster_preserving: bool) -> tuple[str, str]:
    """Save the quantization-aware model (ONNX export turns its fake-quant into QDQ nodes).

    Returns:
        ``(name inside folder, format)``.
    """
    save_format = "tf" if cluster_preserving else "h5"
    name = QAT_FILES[save_format]
    with _quiet_tfmot_warnings(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf-keras calls .h5 "legacy"; it is the one that reloads
        model.save(Path(folder) / name, save_format=save_format, include_optimizer=False)
    return name, save_format


# Weightless preprocessing layers tfmot does not quantize, whose output range the converter needs.
OUTPUT_QUANTIZED_LAYERS = ("Rescaling", "Normalization")


def _output_quantization():
    """tfmot's config that quantizes a layer's output only (known to ``quantize_scope()``)."""
    # lazy: tfmot loads TensorFlow
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs,
    )

    return default_8bit_quantize_configs.Default8BitOutputQuantizeConfig()


def _no_quantization():
    """tfmot's own "leave this layer in float" config; ``quantize_scope()`` knows it, so a saved
    QAT model reloads. It is not exported publicly in tfmot 0.8.1, hence the long import."""
    # lazy: tfmot loads TensorFlow
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs,
    )

    return default_8bit_quantize_configs.NoOpQuantizeConfig()


def _scheme(applied: dict):
    """The tfmot scheme that preserves what earlier stages made, and its name."""
    import tensorflow_model_optimization as tfmot  # lazy: tfmot loads TensorFlow

    combine = tfmot.experimental.combine
    if "cluster" in applied:
        preserve_sparsity = "prune" in applied
        return (combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=preserve_sparsity),
                "Default8BitClusterPreserveQuantizeScheme"
                + (" (preserve_sparsity)" if preserve_sparsity else ""))
    if "prune" in applied:
        return combine.Default8BitPrunePreserveQuantizeScheme(), "Default8BitPrunePreserveQuantizeScheme"
    return (tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme(),
            "Default8BitQuantizeScheme")


@contextlib.contextmanager
def _quiet_tfmot_warnings():
    """tfmot logs per-layer notices to the root logger ("Input layer does not contain zero
    weights, so apply CQAT instead"); they say nothing the manifest does not."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
