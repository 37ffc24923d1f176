"""Optimizers and learning-rate schedules, by name."""

from __future__ import annotations

from edgekit.registry import Registry

OPTIMIZER_BUILDERS = Registry("optimizer")


def make_optimizer(name: str, learning_rate: float, momentum: float, weight_decay: float,
                   schedule: str, total_steps: int):
    """A tf-keras optimizer; ``cosine`` decays the rate to 0 over ``total_steps``."""
    from edgekit._compat import keras

    rate = learning_rate
    if schedule == "cosine":
        rate = keras().optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps))
    weight_decay = weight_decay or None
    return OPTIMIZER_BUILDERS.get(name)(rate, momentum, weight_decay)


@OPTIMIZER_BUILDERS.register("adam")
def _adam(rate, momentum, weight_decay):
    from edgekit._compat import keras

    return keras().optimizers.Adam(rate, weight_decay=weight_decay)


@OPTIMIZER_BUILDERS.register("sgd")
def _sgd(rate, momentum, weight_decay):
    from edgekit._compat import keras

    return keras().optimizers.SGD(rate, momentum=momentum, nesterov=True, weight_decay=weight_decay)


@OPTIMIZER_BUILDERS.register("rmsprop")
def _rmsprop(rate, momentum, weight_decay):
    from edgekit._compat import keras

    return keras().optimizers.RMSprop(rate, weight_decay=weight_decay)
