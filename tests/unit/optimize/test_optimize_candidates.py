"""Candidates come from the technique registry; a registered technique joins the search."""

from __future__ import annotations

import pytest

from edgekit.compress import TECHNIQUES
from edgekit.errors import OptionError
from edgekit.optimize.candidates import SEARCH_SETTINGS, build_candidates, select
from edgekit.registry import Registry


def _registry(**classes):
    registry = Registry("compression technique")
    for name in TECHNIQUES.names():
        registry.register(name)(TECHNIQUES.get(name))
    for name, technique in classes.items():
        registry.register(name)(technique)
    return registry


def test_the_built_in_techniques_give_the_issue_s_candidates_in_search_order():
    candidates, notes = build_candidates(("litert",))
    assert [c.name for c in candidates] == [
        "tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "tflite-int16x8",
        "tflite-int8-fallback",
        "tflite-cluster16-int8", "tflite-cluster32-int8", "tflite-prune50-qat",
        "tflite-prune80-qat", "tflite-prune2of4-qat", "tflite-qat"]
    assert [c.stage for c in candidates[:5]] == ["post-training"] * 5
    assert all(c.stage == "fine-tuning" for c in candidates[6:])
    assert notes == []


def test_onnx_runtime_gets_the_precisions_export_writes_and_its_own_fallback():
    candidates, _ = build_candidates(("onnxruntime",))
    names = [c.name for c in candidates]
    assert names[:4] == ["onnx-fp32", "onnx-fp16", "onnx-int8", "onnx-int8-fallback"]
    assert "onnx-dynamic" not in names and "onnx-int16x8" not in names


def test_a_registered_technique_with_search_candidates_joins_the_search():
    class Sharing:
        search_candidates = [{"cluster": 8, "int8": True}]

    candidates, _ = build_candidates(("litert",), _registry(sharing=Sharing))
    joined = [c for c in candidates if c.technique == "sharing"]
    assert [(c.name, c.stage, c.precision) for c in joined] == [
        ("tflite-cluster8-int8", "fine-tuning", "int8")]
    assert joined[0].compress_args() == ["--cluster", "8", "--int8"]


def test_a_technique_without_search_settings_is_named_and_left_out():
    class Quiet:
        pass

    candidates, notes = build_candidates(("litert",), _registry(quiet=Quiet))
    assert not [c for c in candidates if c.technique == "quiet"]
    assert notes and "'quiet' declares no search_candidates" in notes[0]


@pytest.mark.parametrize("declared, expected", [
    ("int8", "expected a list of option dicts"),
    ([{"cluster": 1}], "which edgekit compress refuses"),
])
def test_bad_search_candidates_are_refused_naming_the_technique(declared, expected):
    class Broken:
        search_candidates = declared

    with pytest.raises(OptionError, match=f"'broken'.*{expected}"):
        build_candidates(("litert",), _registry(broken=Broken))


def test_selecting_an_unknown_candidate_names_the_known_ones():
    candidates, _ = build_candidates(("litert",))
    assert [c.name for c in select(candidates, ["tflite-int8"])] == ["tflite-int8"]
    with pytest.raises(OptionError, match="unknown candidate 'tflite-int9'.*tflite-int8"):
        select(candidates, ["tflite-int9"])


def test_every_built_in_setting_has_a_size_bound_below_one_only_when_it_shrinks_weights():
    for technique, settings in SEARCH_SETTINGS.items():
        for setting in settings:
            if technique in ("prune", "cluster"):
                assert 0 < setting.size_factor < 1
