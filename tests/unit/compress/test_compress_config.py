"""CompressConfig: ranges, contradictions, recipe names and the reproduce arguments."""

from __future__ import annotations

import sys

import pytest

from edgekit.compress.config import CompressConfig
from edgekit.errors import OptionError

BAD_OPTIONS = [
    ({"prune": 1.0}, r"--prune takes the fraction of weights set to zero, in \[0, 1\); received 1.0"),
    ({"prune": -0.1}, r"in \[0, 1\); received -0.1"),
    ({"prune": True}, r"--prune takes"),
    ({"cluster": 1}, r"--cluster takes .* >= 2; received 1"),
    ({"cluster": 2.5}, r"--cluster takes .* received 2.5"),
    ({"int8": True, "fp16": True}, r"pick one post-training quantization; received --int8 and --fp16"),
    ({"dynamic": True, "int16x8": True}, r"received --dynamic and --int16x8"),
    ({"qat": True, "fp16": True}, r"--qat trains for int8 .* received --fp16"),
    ({"int8_io": True}, r"--int8-io .* needs --int8 \(or --qat\)"),
    ({"int8_io": True, "fp16": True}, r"--int8-io .* needs --int8"),
    ({"prune": 0.8, "prune_structure": "2:4"}, r"--prune-structure 2:4 sets a sparsity of 0.5; received --prune 0.8"),
    ({"prune_structure": "1:3"}, r"unknown --prune-structure '1:3'; expected one of: 2:4"),
    ({}, r"no compression technique given; expected one or more of --prune"),
    ({"int8": True, "finetune_epochs": 0}, r"finetune_epochs must be an integer >= 1; received 0"),
    ({"int8": True, "calibration_samples": 0}, r"calibration_samples must be an integer >= 1"),
    ({"prune": 0.5, "learning_rate": 0.0}, r"learning_rate must be > 0"),
    ({"prune": 0.5, "precision": "float8"}, r"unknown precision 'float8'"),
    ({"int8": True, "precision": "mixed_float16"}, r"--precision sets the dtype policy of pruning fine-tuning"),
    ({"cluster": 8, "precision": "mixed_bfloat16"}, r"without --prune \(clustering and QAT fine-tune in float32"),
    ({"int8": True, "sparsity": 0.5}, r"unknown compression option\(s\) sparsity"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS, ids=[str(o) for o, _ in BAD_OPTIONS])
def test_bad_options_raise_one_clear_option_error(options, message):
    with pytest.raises(OptionError, match=message):
        CompressConfig.from_options({"model": "models/cnn-digits", **options})


def test_a_missing_model_is_an_option_error():
    with pytest.raises(OptionError, match="no model to compress"):
        CompressConfig.from_options({"int8": True})


RECIPES = [
    ({"int8": True}, "int8"),
    ({"int8": True, "int8_io": True}, "int8-int8io"),
    ({"prune": 0.8, "qat": True}, "prune80-qat"),
    ({"prune": 0.5}, "prune50"),
    ({"prune": 0.875, "int8": True}, "prune87p5-int8"),
    ({"cluster": 16, "int8": True}, "cluster16-int8"),
    ({"prune_structure": "2:4", "int8": True}, "prune2of4-int8"),
    ({"prune_structure": "2:4", "prune": 0.5}, "prune2of4"),
    ({"prune": 0.5, "cluster": 8, "qat": True}, "prune50-cluster8-qat"),
    ({"qat": True, "int8": True}, "qat"),
    ({"fp16": True}, "fp16"),
    ({"int16x8": True}, "int16x8"),
]


@pytest.mark.parametrize("options, recipe", RECIPES, ids=[r for _, r in RECIPES])
def test_recipe_names_the_techniques_in_the_order_they_run(options, recipe):
    assert CompressConfig.from_options({"model": "m", **options}).recipe() == recipe


def test_qat_converts_to_int8_and_no_flag_means_float32():
    assert CompressConfig(model="m", qat=True).tflite_mode == "int8"
    assert CompressConfig(model="m", prune=0.5).tflite_mode == "fp32"
    assert CompressConfig(model="m", dynamic=True).tflite_mode == "dynamic"


def test_each_technique_has_its_own_default_learning_rate_unless_one_is_given():
    config = CompressConfig(model="m", prune=0.5, qat=True)
    assert config.learning_rate_for("prune") == 1e-3
    assert config.learning_rate_for("qat") == 1e-4
    assert CompressConfig(model="m", learning_rate=0.01).learning_rate_for("qat") == 0.01


def test_cli_arguments_rebuild_the_same_config():
    config = CompressConfig.from_options({"model": "models/cnn-digits", "prune": 0.8, "qat": True,
                                          "int8_io": True, "dataset": "digits", "seed": 0,
                                          "finetune_epochs": 3})
    args = config.to_cli_args()
    assert args[0] == "models/cnn-digits"
    assert args[args.index("--prune") + 1] == "0.8"
    assert "--qat" in args and "--int8-io" in args and "--int8" not in args
    assert args[args.index("--finetune-epochs") + 1] == "3"


def test_importing_the_compress_package_loads_neither_tensorflow_nor_tfmot():
    import subprocess

    code = ("import sys, edgekit.compress, edgekit.cli.compress, edgekit.runtimes, "
            "edgekit.formats.tflite; print('tensorflow' in sys.modules, "
            "'tensorflow_model_optimization' in sys.modules)")
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120)
    assert finished.stdout.split() == ["False", "False"], finished.stderr
