"""tf.distribute strategies: one GPU or CPU, several GPUs (mirrored), several workers."""

from __future__ import annotations

import json
import os

from edgekit._compat import tensorflow
from edgekit.errors import OptionError


def resolve_distribution(requested: str, gpu_count: int, tf_config: str | None) -> str:
    """Turn ``--distribute`` into ``none``, ``mirrored`` or ``multi-worker``.

    ``auto`` picks ``multi-worker`` when TF_CONFIG describes more than one worker,
    ``mirrored`` when more than one GPU is visible, and ``none`` otherwise.
    """
    workers = _worker_count(tf_config)
    if requested == "auto":
        if workers > 1:
            return "multi-worker"
        return "mirrored" if gpu_count > 1 else "none"
    if requested == "multi-worker" and tf_config is None:
        raise OptionError(
            "--distribute multi-worker needs the TF_CONFIG environment variable (the cluster and "
            "this worker's task); received none. Set TF_CONFIG on every worker, or use "
            "--distribute mirrored for the GPUs of one machine"
        )
    if requested in ("none", "mirrored", "multi-worker"):
        return requested
    raise OptionError(
        f"unknown distribute {requested!r}; expected auto, none, mirrored or multi-worker"
    )


def make_strategy(kind: str):
    """The tf.distribute strategy for a resolved kind (see :func:`resolve_distribution`)."""

    tf = tensorflow()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(tf_config: str | None = None) -> bool:
    """Only the chief (or worker 0 when there is no chief) writes the model folder."""
    tf_config = os.environ.get("TF_CONFIG") if tf_config is None else tf_config
    if not tf_config:
        return True
    parsed = json.loads(tf_config)
    task = parsed.get("task", {})
    role, index = task.get("type", "worker"), int(task.get("index", 0))
    if "chief" in parsed.get("cluster", {}):
        return role == "chief"
    return role == "worker" and index == 0


def _worker_count(tf_config: str | None) -> int:
    if not tf_config:
        return 0
    try:
        cluster = json.loads(tf_config).get("cluster", {})
    except json.JSONDecodeError as error:
        raise OptionError(f"TF_CONFIG is not valid JSON ({error}); received {tf_config[:80]!r}")
    return sum(len(cluster.get(role, [])) for role in ("chief", "worker"))
