"""``OptimizeConfig``: a bad option is one line and exit code 2, before anything loads."""

from __future__ import annotations

import pytest

from edgekit.errors import OptionError
from edgekit.optimize.config import OptimizeConfig, option_table


def _config(**options):
    return OptimizeConfig.from_options({"model": "models/m", **options})


def test_defaults_search_latency_on_litert_with_fine_tuning():
    config = _config(max_drop=0.5)
    assert (config.objective, config.runtimes, config.finetune, config.threads) == (
        "latency", ("litert",), True, 1)
    assert config.objective_field == "p50_ms"
    assert _config(max_drop=0.5, objective="size").objective_field == "gzip_bytes"


@pytest.mark.parametrize("options, message", [
    ({}, "no accuracy budget given; expected --max-drop"),
    ({"max_drop": -0.5}, r"--max-drop takes .*>= 0; received -0.5"),
    ({"max_drop": 1, "objective": "speed"}, "unknown --objective 'speed'"),
    ({"max_drop": 1, "runtime": "tensorrt"}, "unknown --runtime 'tensorrt'"),
    ({"max_drop": 1, "threads": 0}, "--threads takes"),
    ({"max_drop": 1, "time_budget": 0}, "--time-budget takes"),
    ({"max_drop": 1, "candidates": " , "}, "--candidates names no candidate"),
    ({"max_drop": 1, "max_dorp": 2}, "unknown optimization option.*max_dorp"),
    ({"max_drop": 1, "bench_options": {"min_runz": 3}}, "unknown benchmark option"),
])
def test_bad_options_are_refused_with_what_was_received_and_expected(options, message):
    with pytest.raises(OptionError, match=message) as raised:
        _config(**options)
    assert raised.value.exit_code == 2


def test_the_readme_table_comes_from_the_declarations():
    table = option_table()
    assert "`--max-drop`" in table and "`--time-budget`" in table
    assert "`--finetune`" not in table  # the CLI spells it --no-finetune itself
