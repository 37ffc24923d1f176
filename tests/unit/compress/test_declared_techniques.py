"""A technique is one module plus one registration: its declarations reach the config, the CLI,
the recipe, the checks and the manifest with no other change (issue 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.compress.config import CompressConfig, option_table
from edgekit.compress.stages import TECHNIQUES, StageResult, Technique, techniques
from edgekit.errors import OptionError
from edgekit.options import Option

ROUND_WEIGHTS = Option("round_weights", int, None, "decimals every weight keeps", minimum=0,
                       maximum=6, example="3", metavar="DECIMALS")


class RoundWeights(Technique):
    """A toy technique: round every weight to N decimals, no fine-tuning."""

    order = 40  # after QAT, before the conversion
    options = (ROUND_WEIGHTS,)

    def apply(self, model, context):  # as in the README's example
        decimals = context.config.round_weights
        rounded = type(model).from_config(model.get_config())  # a copy: the parent stays intact
        rounded.set_weights([np.round(weights, decimals) for weights in model.get_weights()])
        return StageResult(model=rounded, record={"decimals": decimals,
                                                  "tensors": len(model.get_weights())})


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """``<work>/models/mlp-digits``: an 8-unit mlp trained one epoch on digits."""
    import edgekit

    folder = tmp_path_factory.mktemp("work") / "models" / "mlp-digits"
    edgekit.train(model="mlp", model_options={"hidden_units": 8}, epochs=1, output_dir=folder,
                  progress=False)
    return folder


def _weights(path: Path) -> list[np.ndarray]:
    from edgekit._compat import keras

    return keras().models.load_model(path, compile=False).get_weights()


def test_toy_technique_registered_in_a_test_runs_through_edgekit_compress(
        tiny_folder, edgekit_cli, monkeypatch):
    monkeypatch.chdir(tiny_folder.parent.parent)  # the default output is models/<parent>-<recipe>
    with TECHNIQUES.registered("round", RoundWeights):
        help_text = edgekit_cli("--help").output
        assert "--round-weights DECIMALS" in help_text
        assert "Decimals every weight keeps. [an integer in [0, 6]]" in " ".join(help_text.split())
        assert "| `--round-weights` (round) | an integer in [0, 6] |" in option_table()

        bad = edgekit_cli(str(tiny_folder), "--round-weights", "9")
        assert bad.exit_code == 2
        assert bad.stderr.strip().splitlines() == [
            "error: --round-weights takes decimals every weight keeps, an integer in [0, 6]; "
            "received 9. Example: --round-weights 3"]

        result = edgekit_cli(str(tiny_folder), "--round-weights", "3")
        assert result.exit_code == 0, result.output
    output = tiny_folder.parent / "mlp-digits-roundweights3"
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["recipe"] == "roundweights3"
    assert manifest["techniques"] == ["round", "ptq"]
    assert manifest["options"] == {"round_weights": 3}
    assert manifest["config"]["round_weights"] == 3
    assert manifest["stages"]["round"] == {"decimals": 3, "tensors": 4}
    assert "--round-weights 3" in manifest["command"]
    assert manifest["stages"]["ptq"]["mode"] == "fp32"
    parent, rounded = _weights(tiny_folder / "model.keras"), _weights(output / "model.keras")
    assert any(np.abs(before - after).max() > 1e-4 for before, after in zip(parent, rounded))
    for before, after in zip(parent, rounded):
        np.testing.assert_allclose(after, np.round(before, 3), atol=1e-7)
    assert not (tiny_folder.parent / "mlp-digits-roundweights9").exists()
    # Unregistered, the technique leaves nothing behind.
    assert "round_weights" not in CompressConfig.field_names()
    assert "--round-weights" not in edgekit_cli("--help").output
    with pytest.raises(OptionError, match="unknown compression option\\(s\\) round_weights"):
        CompressConfig.from_options({"model": "m", "round_weights": 3})


def test_a_technique_option_that_clashes_with_another_is_refused():
    class Clash(Technique):
        options = (Option("cluster", int, None, "mine"),)

    with TECHNIQUES.registered("clash", Clash):
        with pytest.raises(OptionError, match="technique 'clash' declares option 'cluster', "
                                              "which 'cluster' declares already"):
            CompressConfig.options()


def test_no_technique_message_lists_every_registered_technique():
    with TECHNIQUES.registered("round", RoundWeights):
        with pytest.raises(OptionError, match=r"expected one or more of --prune, .*--qat, "
                                              r"--round-weights, --int8, --dynamic"):
            CompressConfig.from_options({"model": "m"})


def test_recipe_parts_and_conversion_come_from_the_techniques():
    config = CompressConfig(model="m", prune_structure="2:4", qat=True, int8=True, int8_io=True)
    assert [technique.name for technique in techniques()] == ["prune", "cluster", "qat", "ptq"]
    assert config.recipe() == "prune2of4-qat-int8io"
    assert config.tflite_mode == "int8" and config.fine_tunes
    assert not CompressConfig(model="m", fp16=True).fine_tunes


PLUGIN = '''
from edgekit.compress.stages import TECHNIQUES, Technique
from edgekit.options import Option


@TECHNIQUES.register("{name}")
class Plugged(Technique):
    options = (Option("{name}_level", int, None, "how much", minimum=1),)
'''


def test_a_plugin_named_in_edgekit_plugins_adds_its_technique(tmp_path, monkeypatch):
    path = tmp_path / "plugged_technique.py"
    path.write_text(PLUGIN.format(name="plugged"))
    monkeypatch.setenv("EDGEKIT_PLUGINS", str(path))
    try:
        assert "plugged_level" in CompressConfig.field_names()
        config = CompressConfig.from_options({"model": "m", "plugged_level": 2})
        assert config.recipe() == "pluggedlevel2"
        with pytest.raises(OptionError, match=r"--plugged-level takes how much, an integer >= 1"):
            CompressConfig.from_options({"model": "m", "plugged_level": 0})
    finally:
        TECHNIQUES.unregister("plugged")


def test_a_broken_plugin_is_one_error_line(tmp_path, monkeypatch, edgekit_cli):
    path = tmp_path / "broken_technique.py"
    path.write_text("raise RuntimeError('the plug-in is broken')\n")
    monkeypatch.setenv("EDGEKIT_PLUGINS", f"{path}")
    result = edgekit_cli("models/x", "--int8")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: plug-in '{path}' (from EDGEKIT_PLUGINS) could not be loaded: RuntimeError: the "
        "plug-in is broken; fix it, or remove it from EDGEKIT_PLUGINS"]


def test_the_real_edgekit_command_loads_a_plugin_module_by_name(tmp_path):
    (tmp_path / "my_edgekit_plugin.py").write_text(PLUGIN.format(name="mine"))
    environment = {**os.environ, "EDGEKIT_PLUGINS": "my_edgekit_plugin",
                   "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    finished = subprocess.run([sys.executable, "-c", "from edgekit.cli.main import main; main()",
                               "compress", "--help"],
                              capture_output=True, text=True, timeout=120, env=environment)
    assert finished.returncode == 0, finished.stderr
    assert "--mine-level" in finished.stdout and "How much. [an integer >= 1]" in finished.stdout
