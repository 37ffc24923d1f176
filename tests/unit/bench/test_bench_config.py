"""The benchmark's flat config: declared options checked, runtime options routed to the runtimes."""

from __future__ import annotations

import pytest

from edgekit.bench.config import BenchConfig
from edgekit.errors import OptionError
from edgekit.options import Option
from edgekit.runtimes import RUNTIMES, Runtime


class ScaledRuntime(Runtime):
    """A runtime declaring an option of its own (never loaded here)."""

    name = "scaled"
    options = (Option("scale_factor", float, 1.0, "what outputs are multiplied by", minimum=0,
                      above=True),)


def test_lists_come_from_text_and_the_config_records_plain_values():
    config = BenchConfig.from_options({"batches": "1,8", "threads": 2, "fail_if": "speedup<1",
                                       "xnnpack": False, "timeout": 30})
    assert (config.batches, config.threads, config.fail_if) == ((1, 8), (2,), ("speedup<1",))
    assert config.to_dict()["batches"] == [1, 8] and config.to_dict()["runtime_options"] == {}
    assert config.runtime_values(2) == {"num_threads": 2, "xnnpack": False,
                                        "ort_optimization": "all",
                                        "ort_provider": "CPUExecutionProvider",
                                        "custom_objects": None, "unsafe_deserialization": False}


@pytest.mark.parametrize("options, message", [
    ({"nonsense": 1}, "unknown benchmark option.s. nonsense; expected some of: batches"),
    ({"timeout": 0}, "--timeout .*> 0.*received 0"),
    ({"min_runs": 0}, "--min-runs .*>= 1.*received 0"),
    ({"ort_optimization": "fastest"}, "--ort-optimization 'fastest'; expected one of: disable"),
    ({"batches": "1,x"}, "--batch takes integers separated by commas"),
    ({"concurrency": "4"}, "--concurrency above 1 is a load test for --target triton"),
])
def test_bad_options_are_refused_naming_the_flag(options, message):
    with pytest.raises(OptionError, match=message):
        BenchConfig.from_options(options)


def test_an_option_a_registered_runtime_declares_reaches_the_runtimes_checked():
    with RUNTIMES.registered(ScaledRuntime.name, ScaledRuntime):
        config = BenchConfig.from_options({"scale_factor": 2.5})
        assert config.runtime_options == {"scale_factor": 2.5}
        assert config.runtime_values(1)["scale_factor"] == 2.5
        assert ScaledRuntime.option_values(config.runtime_values(1)) == {"scale_factor": 2.5}
        with pytest.raises(OptionError, match="--scale-factor .*> 0.*received 0"):
            BenchConfig.from_options({"scale_factor": 0})
    with pytest.raises(OptionError, match="unknown benchmark option.s. scale_factor"):
        BenchConfig.from_options({"scale_factor": 2.5})  # gone with its runtime
