"""benchmarks/structure_figures.py counts cycles and function-level imports of a package correctly.

The package analysed here is a small fake one written into tmp_path, so the counts are known.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "structure_figures.py"


@pytest.fixture(scope="module")
def figures_module():
    spec = importlib.util.spec_from_file_location("structure_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


FAKE = {
    "__init__.py": '''
        """The root package."""
        from fakepkg.errors import Error
    ''',
    "errors.py": '''
        class Error(Exception):
            pass
    ''',
    # A top-level module: imports the root package (a name the root binds) and a submodule of it.
    "gamma.py": '''
        from fakepkg import Error
        from fakepkg import errors
        from . import errors as again
    ''',
    # The package binds `core` to a function: `from fakepkg.alpha import core` gets the package.
    "alpha/__init__.py": '''
        from fakepkg.alpha.core import core
    ''',
    "alpha/core.py": '''
        from __future__ import annotations

        from typing import TYPE_CHECKING

        from fakepkg import errors

        if TYPE_CHECKING:
            from fakepkg.beta.engine import Engine


        def core(x):
            from fakepkg.beta import engine
            import json

            return engine, json
    ''',
    "alpha/helpers.py": '''
        def helper():
            from fakepkg.alpha import core

            return core
    ''',
    "beta/__init__.py": "",
    "beta/engine.py": '''
        import fakepkg.alpha.core

        from ..errors import Error


        class Engine:
            def load(self):
                import tensorflow as tf  # lazy: TensorFlow takes seconds to import

                return tf


        def other():
            import tensorflow
            # just a note
            from onnx import helper

            return tensorflow, helper


        def third():
            import importlib

            return importlib.import_module("fakepkg.errors")


        def fourth():
            # deferred: onnx is heavy
            import onnx

            return onnx
    ''',
}


@pytest.fixture()
def fake_repo(tmp_path):
    for relative, text in FAKE.items():
        path = tmp_path / "fakepkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    tests = tmp_path / "tests" / "unit"
    tests.mkdir(parents=True)
    (tests / "test_plugins.py").write_text(textwrap.dedent('''
        class TestToys:
            def test_toy_format_round_trip(self):
                pass


        def test_toy_runtime(tmp_path):
            pass


        def test_technique_not_a_toy():
            pass
    ''').lstrip())
    return tmp_path


def test_module_cycles_count_function_level_imports_but_not_type_checking(figures_module, fake_repo):
    analysis = figures_module.analyse(fake_repo / "fakepkg")
    assert set(analysis.modules) == {"fakepkg", "fakepkg.errors", "fakepkg.gamma", "fakepkg.alpha",
                                     "fakepkg.alpha.core", "fakepkg.alpha.helpers", "fakepkg.beta",
                                     "fakepkg.beta.engine"}
    graph = figures_module.module_graph(analysis)
    assert figures_module.cycles(graph) == [["fakepkg.alpha.core", "fakepkg.beta.engine"]]
    # The cycle closes only through the import inside core(): none with module-level imports only.
    assert figures_module.cycles(figures_module.module_graph(analysis, function_level=False)) == []
    # The TYPE_CHECKING import is no edge, and is counted apart.
    assert sum(found.type_checking for found in analysis.imports) == 1
    # `from pkg import name` with `name` a submodule is that submodule; relative imports resolve.
    assert graph["fakepkg.gamma"] == {"fakepkg", "fakepkg.errors"}
    assert graph["fakepkg.beta.engine"] == {"fakepkg.alpha.core", "fakepkg.errors"}
    # alpha/__init__.py binds `core` to a function: importing it from the package is the package.
    assert graph["fakepkg.alpha.helpers"] == {"fakepkg.alpha"}
    assert figures_module.shortest_cycle(graph, ["fakepkg.alpha.core", "fakepkg.beta.engine"]) == [
        "fakepkg.alpha.core", "fakepkg.beta.engine", "fakepkg.alpha.core"]


def test_package_cycles_leave_the_root_out_and_list_its_importers(figures_module, fake_repo):
    analysis = figures_module.analyse(fake_repo / "fakepkg")
    units = figures_module.package_graph(analysis)
    assert set(units) == {"fakepkg.errors", "fakepkg.gamma", "fakepkg.alpha", "fakepkg.beta"}
    assert units["fakepkg.gamma"] == {"fakepkg.errors"}  # not the root
    assert figures_module.cycles(units) == [["fakepkg.alpha", "fakepkg.beta"]]
    assert figures_module.cycles(figures_module.package_graph(analysis, function_level=False)) == []
    roots = figures_module.root_imports(analysis)
    assert [(found.module, found.line) for found in roots] == [("fakepkg.gamma", 1)]


def test_function_level_imports_are_split_and_reasons_counted(figures_module, fake_repo):
    analysis = figures_module.analyse(fake_repo / "fakepkg")
    found = figures_module.function_level_imports(analysis)
    assert sorted((one.module, one.line) for one in found["internal"]) == [
        ("fakepkg.alpha.core", 12), ("fakepkg.alpha.helpers", 2), ("fakepkg.beta.engine", 24)]
    assert [one.dynamic for one in found["internal_dynamic"]] == [True]
    assert len(found["heavy"]) == 4
    assert sorted(one.line for one in found["heavy_with_reason"]) == [8, 29]
    assert sorted(one.line for one in found["heavy_without_reason"]) == [14, 16]
    assert found["heavy_per_dependency"] == {"tensorflow": 2, "onnx": 2}
    assert sorted(one.statement for one in found["other"]) == ["import importlib", "import json"]
    assert len(found["other_stdlib"]) == 2


def test_measure_and_render_on_the_fake_repo(figures_module, fake_repo):
    suite = figures_module.suite_time(249.0, 800, 498.0, 793)
    figures = figures_module.measure(fake_repo, "fakepkg", "tests", suite=suite, lint=False)
    assert len(figures["module_cycles"]) == 1 and len(figures["package_cycles"]) == 1
    assert figures["function_level"]["internal"] == 3
    assert figures["function_level"]["heavy_with_reason"] == 2
    assert figures["type_checking_imports"] == 1
    assert figures["plug_ins"]["technique"]["tests"] == []
    assert figures["plug_ins"]["format"]["tests"] == [
        "tests/unit/test_plugins.py::TestToys::test_toy_format_round_trip"]
    assert figures["plug_ins"]["runtime"]["tests"] == ["tests/unit/test_plugins.py::test_toy_runtime"]
    assert figures["lines"]["package"]["files"] == 8
    assert suite["ratio"] == pytest.approx(0.5)
    section = figures_module.render(figures, ".venv/bin/python benchmarks/structure_figures.py")
    assert section.startswith("## Code structure (issue 12)")
    assert "not yet shown by a test (before: about 7)" in section
    assert "1 module + 1 registration (shown by `tests/unit/test_plugins.py::test_toy_runtime`" in section
    assert "| import cycles between first-level packages (root `__init__` left out) | 1" in section
    assert "0.50x the 498 s for 793 tests" in section
    assert "no contracts yet" in section


def test_lines_of_code_leave_out_blank_and_comment_lines(figures_module, tmp_path):
    (tmp_path / "one.py").write_text("x = 1\n\n# comment\n    # indented\ny = '''\n# in a string\n'''\n")
    assert figures_module.lines_of_code(tmp_path) == {"files": 1, "lines": 7, "code_lines": 4}


def test_importlinter_config_is_found_in_pyproject(figures_module, tmp_path):
    assert figures_module.importlinter_config(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text('[tool.importlinter]\nroot_package = "fakepkg"\n')
    assert figures_module.importlinter_config(tmp_path) == "pyproject.toml [tool.importlinter]"
