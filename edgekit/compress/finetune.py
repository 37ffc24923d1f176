"""Fine-tuning for the stages that train (pruning, clustering, QAT), and moving weights around.

Every stage works on a fresh clone: tfmot's wrappers reuse the layers they wrap, so pruning the
parent model itself would change its weights (STACK.md).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from edgekit._compat import keras
from edgekit.compress.stages import StageContext
from edgekit.errors import ModelError
from edgekit.train.pipeline import make_pipeline


def clone_with_policy(model, policy: str = "float32"):
    """A copy of ``model`` with its own layers and weights, its layers computing in ``policy``.

    The input and the last layer (the classifier's output) stay float32, as in training.
    """
    tf_keras = keras()
    last = model.layers[-1].name

    def clone_layer(layer):
        config = layer.get_config()
        if policy != "float32" and layer.name != last and "dtype" in config \
                and not isinstance(layer, tf_keras.layers.InputLayer):
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    copy = tf_keras.models.clone_model(model, clone_function=clone_layer)
    copy.set_weights(model.get_weights())
    return copy


def fine_tune(model, context: StageContext, technique: str, callbacks=()) -> dict:
    """Compile and fit ``model`` on the training split for ``technique``; returns the record
    (epochs, learning rate, precision, per-epoch history)."""
    tf_keras = keras()
    tf_keras.utils.set_random_seed(context.seed)
    learning_rate = context.config.learning_rate_for(technique)
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=context.from_logits),
        metrics=["accuracy"],
    )
    train = make_pipeline(*context.train, context.batch_size, shuffle=True, seed=context.seed)
    val = make_pipeline(*context.val, context.batch_size, shuffle=False)
    verbose = (1 if sys.stdout.isatty() else 2) if context.progress else 0
    history = model.fit(train, validation_data=val, epochs=context.config.finetune_epochs,
                        callbacks=list(callbacks), verbose=verbose)
    return {
        "epochs": context.config.finetune_epochs,
        "steps": steps_per_epoch(context) * context.config.finetune_epochs,
        "batch_size": context.batch_size,
        "learning_rate": learning_rate,
        "precision_policy": model.dtype_policy.name,
        "history": {key: [float(value) for value in values]
                    for key, values in history.history.items()},
    }


def steps_per_epoch(context: StageContext) -> int:
    return int(math.ceil(len(context.train[0]) / context.batch_size))


def copy_weights_by_name(source, target) -> None:
    """Copy the weights of each layer of ``target`` from its namesake in ``source``.

    A same-named layer with as many weights gives them in order (models tfmot has stripped keep
    the layer names but not the variable names). Otherwise each variable is matched by name
    (``block1_conv1/kernel:0``), which QAT keeps when its ``quant_<name>`` wrapper takes over the
    layer's kernel; the wrappers' own state (quantizer ranges, step counters) is left behind.

    Raises:
        ModelError: when a weight of ``target`` has no counterpart in ``source``.
    """
    layers = {layer.name: layer for layer in source.layers}
    variables = {}
    for variable in source.weights:
        variables.setdefault(variable.name, variable)
    for layer in target.layers:
        if not layer.weights:
            continue
        namesake = layers.get(layer.name)
        if namesake is not None and len(namesake.weights) == len(layer.weights):
            layer.set_weights(namesake.get_weights())
            continue
        missing = [variable.name for variable in layer.weights if variable.name not in variables]
        if missing:
            raise ModelError(
                f"weight {missing[0]} of layer {layer.name!r} has no counterpart after "
                "fine-tuning; the technique rewrote the model's layers. Drop the technique for "
                "this model"
            )
        layer.set_weights([variables[variable.name].numpy() for variable in layer.weights])


def float_model(source, reference):
    """A float32 model shaped like ``reference`` holding ``source``'s weights (matched by name)."""
    copy = clone_with_policy(reference, "float32")
    copy_weights_by_name(source, copy)
    return copy


def kernel_zero_masks(model, layer_names: list[str]) -> dict[str, np.ndarray]:
    """``{layer: kernel == 0}``, to carry a pruned model's zeros through a later stage."""
    return {name: model.get_layer(name).get_weights()[0] == 0 for name in layer_names}


def apply_zero_masks(model, masks: dict[str, np.ndarray]) -> None:
    """Set the masked kernel entries of each named layer back to zero."""
    for name, mask in masks.items():
        layer = model.get_layer(name)
        weights = layer.get_weights()
        weights[0] = np.where(mask, 0, weights[0]).astype(weights[0].dtype)
        layer.set_weights(weights)


def zero_fraction(model, layer_names: list[str]) -> float:
    """The fraction of zeros among the kernels of the named layers (first weight of each)."""
    zeros = total = 0
    for name in layer_names:
        kernel = model.get_layer(name).get_weights()[0]
        zeros += int(np.count_nonzero(kernel == 0))
        total += int(kernel.size)
    return zeros / max(1, total)
