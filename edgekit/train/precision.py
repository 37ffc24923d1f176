"""Mixed precision: which Keras dtype policy a run uses, and applying it."""

from __future__ import annotations

from edgekit._compat import keras
from edgekit.errors import OptionError


def resolve_precision(requested: str, gpu_count: int) -> str:
    """Turn ``--precision`` into a Keras policy name.

    ``auto`` is ``mixed_float16`` when a GPU is visible (Tensor Cores pay off there) and
    ``float32`` on CPU, where float16 math is emulated and slower.

    Example:
        >>> resolve_precision("auto", gpu_count=0)
        'float32'
    """
    if requested == "auto":
        return "mixed_float16" if gpu_count > 0 else "float32"
    if requested in ("float32", "mixed_float16", "mixed_bfloat16"):
        return requested
    raise OptionError(
        f"unknown precision {requested!r}; expected auto, float32, mixed_float16 or mixed_bfloat16"
    )


class precision_policy:
    """Context manager: the global Keras policy is ``policy`` inside, and what it was after.

    Layers take the global policy when they are built and ``compile`` wraps the optimizer in a
    LossScaleOptimizer under mixed_float16, so both must happen inside.
    """

    def __init__(self, policy: str):
        self.policy = policy

    def __enter__(self):

        mixed_precision = keras().mixed_precision
        self._previous = mixed_precision.global_policy().name
        mixed_precision.set_global_policy(self.policy)
        return self

    def __exit__(self, *exc_info):

        keras().mixed_precision.set_global_policy(self._previous)
        return False
