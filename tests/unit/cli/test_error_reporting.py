"""How a command reports an EdgekitError: one line, or under --verbose the whole chain of causes."""

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from edgekit.cli.common import EdgekitGroup
from edgekit.errors import ModelError


@click.group(cls=EdgekitGroup)
def group():
    pass


@group.command()
def convert():
    try:
        int("not a number")
    except ValueError as error:
        raise ModelError("cannot convert model.keras: the converter failed; expected ...",
                         details="line 1 of the converter\nline 2: op FOO is not supported") from error


@pytest.fixture
def runner():
    return CliRunner()


def test_an_error_is_one_line_naming_where_the_whole_library_output_went(runner, monkeypatch):
    monkeypatch.delenv("EDGEKIT_VERBOSE", raising=False)
    result = runner.invoke(group, ["convert"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    found = re.search(r"the library's whole output: (\S+)\)", lines[0])
    assert found, lines[0]
    assert Path(found.group(1)).read_text().endswith("op FOO is not supported")


def test_verbose_prints_the_chained_cause_and_the_library_output(runner, monkeypatch):
    monkeypatch.setenv("EDGEKIT_VERBOSE", "1")
    result = runner.invoke(group, ["convert"])
    assert result.exit_code == 2
    assert "ValueError: invalid literal for int()" in result.stderr
    assert "direct cause of the following exception" in result.stderr
    assert "op FOO is not supported" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot convert model.keras")
