"""Optimizers and learning-rate schedules, by name."""

from __future__ import annotations

from edgekit._compat import keras
from edgekit.registry import Registry

OPTIMIZER_BUILDERS = Registry("optimizer")


def make_optimizer(name: str, learning_rate: float, momentum: float, weight_decay: float,
                   schedule: str, total_steps: int, api=None):
    """An optimizer; ``cosine`` decays the rate to 0 over ``total_steps``.

    ``api`` is the Keras module the model belongs to: tf-keras (default) or Keras 3 (a user's
    Keras 3 model keeps training in Keras 3).
    """

    api = api or keras()
    rate = learning_rate
    if schedule == "cosine":
        rate = api.optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps))
    weight_decay = weight_decay or None
    return OPTIMIZER_BUILDERS.get(name)(api, rate, momentum, weight_decay)


@OPTIMIZER_BUILDERS.register("adam")
def _adam(api, rate, momentum, weight_decay):
    return api.optimizers.Adam(rate, weight_decay=weight_decay)


@OPTIMIZER_BUILDERS.register("sgd")
def _sgd(api, rate, momentum, weight_decay):
    return api.optimizers.SGD(rate, momentum=momentum, nesterov=True, weight_decay=weight_decay)


@OPTIMIZER_BUILDERS.register("rmsprop")
def _rmsprop(api, rate, momentum, weight_decay):
    return api.optimizers.RMSprop(rate, weight_decay=weight_decay)
