"""Magnitude pruning (``--prune S``, ``--prune-structure 2:4``), fine-tuned, wrappers stripped.

Unstructured pruning raises each pruned layer's share of zero weights from 0 to ``S`` along
tfmot's polynomial-decay schedule over the first two thirds of fine-tuning, then trains the rest
at ``S``. ``2:4`` zeroes 2 of every 4 consecutive input-channel weights of Conv2D and Dense
kernels from the first step (the layout sparse kernels on recent hardware read); a layer whose
input channels are not a multiple of 4 is left dense, and the manifest says which.
"""

from __future__ import annotations

from edgekit.compress.config import PRUNE_STRUCTURES, CompressConfig
from edgekit.compress.finetune import (
    clone_with_policy,
    fine_tune,
    float_model,
    steps_per_epoch,
    zero_fraction,
)
from edgekit.compress.layers import check_layers, layers_to_compress
from edgekit.compress.stages import TECHNIQUES, StageContext, StageResult
from edgekit.errors import ModelError

# Share of the fine-tuning steps over which sparsity ramps up; the rest recovers at the target.
RAMP_FRACTION = 2 / 3


@TECHNIQUES.register("prune")
class Prune:
    """Prune the weights of the table's prunable layers, fine-tune, strip the wrappers."""

    name = "prune"
    order = 10

    def wanted(self, config: CompressConfig) -> bool:
        return config.prune_sparsity is not None

    def check(self, model, config: CompressConfig) -> None:
        check_layers(model, _technique(config))

    def apply(self, model, context: StageContext) -> StageResult:
        import tensorflow_model_optimization as tfmot

        from edgekit.train.precision import precision_policy

        config = context.config
        structure = config.prune_structure
        chosen, kept_dense = _layers_to_prune(model, config)
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

            from edgekit._compat import keras

            wrapped = keras().models.clone_model(working, clone_function=wrap)
            finetune = fine_tune(wrapped, context, "prune",
                                 [tfmot.sparsity.keras.UpdatePruningStep()])
        stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
        result = float_model(stripped, model)
        layer_names = sorted(names)
        return StageResult(model=result, record={
            "technique": "magnitude pruning (tfmot prune_low_magnitude)",
            "target_sparsity": config.prune_sparsity,
            "structure": structure,
            "schedule": schedule_record,
            "pruned_layers": layer_names,
            "kept_dense": kept_dense,
            "keras_sparsity_of_pruned_kernels": round(zero_fraction(result, layer_names), 6),
            "finetune": finetune,
        })


def _technique(config: CompressConfig) -> str:
    return "prune_m_by_n" if config.prune_structure else "prune"


def _layers_to_prune(model, config: CompressConfig):
    """(layers to wrap, [{"layer", "reason"} of compressible layers left dense])."""
    candidates = layers_to_compress(model, _technique(config))
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
    import tensorflow_model_optimization as tfmot

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
