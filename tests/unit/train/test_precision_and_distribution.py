import json

import pytest

from edgekit.errors import OptionError
from edgekit.train.distribute import is_chief, make_strategy, resolve_distribution
from edgekit.train.precision import precision_policy, resolve_precision


@pytest.mark.parametrize(
    "requested, gpus, expected",
    [
        ("auto", 0, "float32"),
        ("auto", 1, "mixed_float16"),
        ("auto", 4, "mixed_float16"),
        ("float32", 2, "float32"),
        ("mixed_bfloat16", 0, "mixed_bfloat16"),
        ("mixed_float16", 0, "mixed_float16"),
    ],
)
def test_precision_auto_is_mixed_float16_only_on_gpu(requested, gpus, expected):
    assert resolve_precision(requested, gpu_count=gpus) == expected


def test_unknown_precision_lists_the_choices():
    with pytest.raises(OptionError, match="received|expected auto, float32"):
        resolve_precision("float8", gpu_count=0)


def test_precision_policy_is_restored_after_the_block():
    from edgekit._compat import keras

    mixed_precision = keras().mixed_precision
    before = mixed_precision.global_policy().name
    with precision_policy("mixed_bfloat16"):
        assert mixed_precision.global_policy().name == "mixed_bfloat16"
    assert mixed_precision.global_policy().name == before


TWO_WORKERS = json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                          "task": {"type": "worker", "index": 1}})


@pytest.mark.parametrize(
    "requested, gpus, tf_config, expected",
    [
        ("auto", 0, None, "none"),
        ("auto", 1, None, "none"),
        ("auto", 2, None, "mirrored"),
        ("auto", 0, TWO_WORKERS, "multi-worker"),
        ("mirrored", 0, None, "mirrored"),
        ("none", 8, None, "none"),
        ("multi-worker", 0, TWO_WORKERS, "multi-worker"),
    ],
)
def test_distribution_follows_gpus_and_tf_config(requested, gpus, tf_config, expected):
    assert resolve_distribution(requested, gpus, tf_config) == expected


def test_multi_worker_without_tf_config_says_how_to_set_it():
    with pytest.raises(OptionError, match="needs the TF_CONFIG environment variable"):
        resolve_distribution("multi-worker", 0, None)


def test_malformed_tf_config_is_a_clear_error():
    with pytest.raises(OptionError, match="TF_CONFIG is not valid JSON"):
        resolve_distribution("auto", 0, "{not json")


def test_only_the_chief_writes():
    assert is_chief("") is True
    assert is_chief(TWO_WORKERS) is False
    worker_zero = json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}})
    assert is_chief(worker_zero) is True
    with_chief = json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:2"]},
                             "task": {"type": "worker", "index": 0}})
    assert is_chief(with_chief) is False


def test_mirrored_strategy_runs_on_cpu():
    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync >= 1
    assert type(strategy).__name__ == "MirroredStrategy"
