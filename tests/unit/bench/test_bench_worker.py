"""The worker finds its runtime by name: built in, from a plug-in, or from the module naming it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edgekit.bench.worker import runtime_class
from edgekit.errors import UnknownNameError
from edgekit.runtimes import RUNTIMES


def test_a_built_in_runtime_is_found_by_name():
    assert runtime_class({"runtime": "litert"}) is RUNTIMES.get("litert")


def test_a_runtime_nothing_registered_is_one_error_saying_how_to_plug_it_in():
    with pytest.raises(UnknownNameError, match="unknown runtime 'nowhere' in the worker process; "
                                               "expected one of: keras.*EDGEKIT_PLUGINS"):
        runtime_class({"runtime": "nowhere", "runtime_module": None})


def test_a_runtime_registered_by_an_importable_module_is_found_through_the_spec(tmp_path):
    (tmp_path / "team_runtimes.py").write_text(
        "from edgekit.runtimes import RUNTIMES\n"
        "from edgekit.runtimes.base import Runtime\n\n\n"
        "class TeamRuntime(Runtime):\n    name = 'team'\n\n\n"
        "RUNTIMES.register(TeamRuntime.name)(TeamRuntime)\n")
    code = ("import team_runtimes; from edgekit.runtimes import runtime_module; "
            "print(runtime_module('team')); "
            "from edgekit.bench.worker import runtime_class; import sys; "
            "print(runtime_class({'runtime': 'team', 'runtime_module': None}).__name__)")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    parent = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=120)
    assert parent.stdout.split() == ["team_runtimes", "TeamRuntime"], parent.stderr
    worker = ("from edgekit.bench.worker import runtime_class; "
              "print(runtime_class({'runtime': 'team', 'runtime_module': 'team_runtimes'}).__name__)")
    found = subprocess.run([sys.executable, "-c", worker], env=env, capture_output=True,
                           text=True, timeout=120)
    assert found.stdout.strip() == "TeamRuntime", found.stderr
