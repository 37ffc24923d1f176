"""candidates.json records have exactly the issue's fields; the table and the exit-1 lines."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from edgekit.cli.common import EdgekitGroup
from edgekit.cli.optimize import optimize_command
from edgekit.optimize.candidates import build_candidates
from edgekit.optimize.config import OptimizeConfig
from edgekit.optimize.records import FIELDS, closest_lines, document, record, terminal_table
from edgekit.optimize.search import Search


@pytest.fixture
def result(fake_lab):
    candidates, _ = build_candidates(("litert",))
    config = OptimizeConfig.from_options({"model": "m", "max_drop": 1.0, "finetune": False})
    lab = fake_lab(accuracy={"tflite-int8": 0.8, "tflite-dynamic": 0.88},
                   p50={"tflite-fp32": 1.0, "tflite-fp16": 0.9})
    return Search(config, candidates, lab).run(), config


def test_every_record_has_exactly_the_named_fields(result):
    search, config = result
    written = document(search, config, {"path": "m"}, [], {}, None)
    assert len(written["candidates"]) == len(search.outcomes)
    for item in written["candidates"]:
        assert tuple(item) == FIELDS
    chosen = [item for item in written["candidates"] if item["chosen"]]
    assert [item["name"] for item in chosen] == ["tflite-fp16"]
    assert written["budget"]["split"] == "val"


def test_a_skipped_candidate_has_nulls_and_says_why(result):
    search, _ = result
    skipped = record(search.outcome("tflite-qat"))
    assert skipped["status"] == "skipped: --no-finetune"
    assert skipped["accuracy_val"] is None and skipped["p50_ms"] is None
    assert skipped["within_budget"] is False and skipped["chosen"] is False


def test_the_table_marks_the_chosen_candidate_and_the_closest_are_sorted_by_drop(result):
    search, _ = result
    table = terminal_table(search)
    assert any(line.startswith("*  tflite-fp16") for line in table.splitlines())
    assert "budget 1 points" in table
    assert closest_lines(search, 2)[0].startswith("tflite-fp32 drops 0.00")


def _cli(*args):
    @click.group(cls=EdgekitGroup)
    def group():
        """edgekit"""

    group.add_command(optimize_command)
    return CliRunner().invoke(group, ["optimize", *args], catch_exceptions=False)


@pytest.mark.parametrize("args, message", [
    (["--max-drop", "-1"], "--max-drop takes"),
    (["--max-drop", "1", "--candidates", "tflite-int9"], "unknown candidate 'tflite-int9'"),
    ([], "no accuracy budget given"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, args, message):
    outcome = _cli(str(tmp_path / "missing-model"), *args)
    assert outcome.exit_code == 2
    assert message in outcome.output
    assert not (tmp_path / "missing-model-optimized").exists()
