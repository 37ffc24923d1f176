"""Magnitude pruning (``--prune S``, ``--prune-structure 2:4``), fine-tuned, wrappers stripped.

Unstructured pruning raises each pruned layer's share of zero weights from 0 to ``S`` along
tfmot's polynomial-decay schedule over the first two thirds of fine-tuning, then trains the rest
at ``S``. ``2:4`` zeroes 2 of every 4 consecutive input-channel weights of Conv2D and Dense
kernels from the first step (the layout sparse kernels on recent hardware read); a layer whose
input channels are not a multiple of 4 is left dense, and the manifest says which.
"""

from __future__ import annotations

from edgekit._compat import keras
from edgekit.compress.finetune import (
    clone_with_policy,
    fine_tune,
    float_model,
    steps_per_epoch,
    zero_fraction,
)
from edgekit.compress.layers import (
    WEIGHTLESS_LAYERS,
    LayerTable,
    layers_to_compress,
    register_layer_table,
)
from edgekit.compress.stages import TECHNIQUES, StageContext, StageResult, Technique
from edgekit.errors import ModelError, OptionError
from edgekit.options import Option
from edgekit.train.precision import precision_policy

# Share of the fine-tuning steps over which sparsity ramps up; the rest recovers at the target.
RAMP_FRACTION = 2 / 3
# Structured pruning patterns: "M:N" zeroes M of every N consecutive input-channel weights.
PRUNE_STRUCTURES = {"2:4": (2, 4)}

PRUNE = Option("prune", float, None, "the fraction of weights set to zero", minimum=0, maximum=1,
               below=True, example="0.8 for 80% zeros", metavar="SPARSITY")
PRUNE_STRUCTURE = Option("prune_structure", str, None, "structured pruning: 2 of every 4 "
                         "consecutive weights of Conv2D / Dense kernels (sparsity 0.5)",
                         choices=tuple(PRUNE_STRUCTURES))


def _is_prunable(layer) -> bool:
    import tensorflow_model_optimization as tfmot  # lazy: tfmot loads TensorFlow

    return isinstance(layer, tfmot.sparsity.keras.PrunableLayer)


# Layer classes after tfmot 0.8.1's prune_registry. tfmot leaves DepthwiseConv2D unpruned.
_PRUNED = ("Conv1D", "Conv2D", "Conv2DTranspose", "SeparableConv2D", "Dense", "Embedding", "LSTM",
           "GRU", "SimpleRNN")
_UNPRUNED = ("DepthwiseConv2D", "BatchNormalization", "LayerNormalization", *WEIGHTLESS_LAYERS)
register_layer_table(LayerTable("prune", "--prune", _PRUNED, _UNPRUNED, _is_prunable))
# M:N sparsity needs input channels in blocks: tfmot does it for Conv2D and Dense kernels only.
register_layer_table(LayerTable(
    "prune_m_by_n", "--prune-structure", ("Conv2D", "Dense"),
    (*(name for name in _PRUNED if name not in ("Conv2D", "Dense")), *_UNPRUNED), _is_prunable))


def sparsity(config) -> float | None:
    """The target share of zero weights: the structure's, else ``--prune``'s."""
    if config.prune_structure is not None:
        zeros, block = PRUNE_STRUCTURES[config.prune_structure]
        return zeros / block
    return config.prune


@TECHNIQUES.register("prune")
class Prune(Technique):
    """Prune the weights of the table's prunable layers, fine-tune, strip the wrappers."""

    name = "prune"
    order = 10
    options = (PRUNE, PRUNE_STRUCTURE)
    # Pruning must regrow accuracy around new zeros: tfmot's pruning guide fine-tunes at Adam's
    # 1e-3 (clustering and QAT only adjust a trained model, so they move more gently).
    learning_rate = 1e-3

    def recipe(self, config) -> list[str]:
        if config.prune_structure is not None:
            return ["prune" + config.prune_structure.replace(":", "of")]
        return [f"prune{config.prune * 100:g}".replace(".", "p")]

    def validate(self, config) -> None:
        target = sparsity(config)
        if config.prune_structure is not None and config.prune is not None \
                and abs(config.prune - target) > 1e-9:
            raise OptionError(
                f"--prune-structure {config.prune_structure} sets a sparsity of {target:g}; "
                f"received --prune {config.prune:g} as well. Drop --prune, or pass --prune "
                f"{target:g}"
            )
        if config.precision.startswith("mixed") and target is None:
            raise OptionError(
                f"--precision sets the dtype policy of pruning fine-tuning; received --precision "
                f"{config.precision} without --prune (clustering and QAT fine-tune in float32: "
                "tfmot's k-means and fake-quant ops are float32 only). Drop --precision, or add "
                "--prune"
            )

    def layer_table(self, config) -> str:
        return "prune_m_by_n" if config.prune_structure else "prune"

    def apply(self, model, context: StageContext) -> StageResult:
        import tensorflow_model_optimization as tfmot  # lazy: tfmot loads TensorFlow

        config = context.config
        structure = config.prune_structure
        chosen, kept_dense = _layers_to_prune(model, config, self.layer_table(config))
        if not chosen:
            raise ModelError(
                f"--prune found no layer to prune in model {model.name!r}"
                f"{' (2:4 needs input channels in multiples of 4)' if structure else ''}; "
                "post-training quantization still applies. Drop --prune"
            )
        total_steps = steps_per_epoch(context) * config.finetune_epochs
        if structure:
            wrapper_options = {"sparsity_m_by_n": PRUNE_STRUCTURES[structure]}
            schedule_record = {"kind": "m_by_n", "pattern": structure,
                               "note": "tfmot sets the 2:4 masks at the first step"}
        else:
            schedule, schedule_record = _polynomial_schedule(config.prune, total_steps)
            wrapper_options = {"pruning_schedule": schedule}
        names = {layer.name for layer in chosen}

        with precision_policy(context.policy):
            working = clone_with_policy(model, context.policy)

            def wrap(layer):
                if layer.name in names:
                    return tfmot.sparsity.keras.prune_low_magnitude(layer, **wrapper_options)
                return layer

            wrapped = keras().models.clone_model(working, clone_function=wrap)
            finetune = fine_tune(wrapped, context, self.name,
                                 [tfmot.sparsity.keras.UpdatePruningStep()])
        stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
        result = float_model(stripped, model)
        layer_names = sorted(names)
        return StageResult(model=result, record={
            "technique": "magnitude pruning (tfmot prune_low_magnitude)",
            "target_sparsity": sparsity(config),
            "structure": structure,
            "schedule": schedule_record,
            "pruned_layers": layer_names,
            "kept_dense": kept_dense,
            "keras_sparsity_of_pruned_kernels": round(zero_fraction(result, layer_names), 6),
            "finetune": finetune,
        })


def _layers_to_prune(model, config, table: str):
    """(layers to wrap, [{"layer", "reason"} of compressible layers left dense])."""
    candidates = layers_to_compress(model, table)
    if not config.prune_structure:
        return candidates, []
    block = PRUNE_STRUCTURES[config.prune_structure][1]
    chosen, kept = [], []
    for layer in candidates:
        kernel = layer.get_weights()[0]
        input_channels = int(kernel.shape[-2])  # Conv2D (h, w, in, out), Dense (in, out)
        if input_channels % block == 0:
            chosen.append(layer)
        else:
            kept.append({"layer": layer.name,
                         "reason": f"{input_channels} input channels, not a multiple of {block}"})
    return chosen, kept


def _polynomial_schedule(target: float, total_steps: int):
    import tensorflow_model_optimization as tfmot  # lazy: tfmot loads TensorFlow

    ramp = max(1, int(total_steps * RAMP_FRACTION))
    # Masks update every `frequency` steps; ending on an update step makes the last one reach
    # the target exactly (tfmot prunes when (step - begin) % frequency == 0).
    frequency = max(1, min(100, ramp // 10))
    end_step = max(frequency, ramp // frequency * frequency)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=float(target), begin_step=0, end_step=end_step,
        frequency=frequency)
    return schedule, {"kind": "polynomial_decay", "initial_sparsity": 0.0,
                      "final_sparsity": float(target), "begin_step": 0, "end_step": end_step,
                      "frequency": frequency, "power": 3}
