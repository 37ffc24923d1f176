"""The README and the CLI agree, and CI runs what the README tells a user to type."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from edgekit.cli.main import cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _commands():
    def walk(group, prefix):
        for name, command in group.commands.items():
            yield f"{prefix} {name}".strip(), command
            if isinstance(command, click.Group):
                yield from walk(command, f"{prefix} {name}")

    return list(walk(cli, ""))


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    setup = _bash_blocks(README.split("## Two commands", 1)[1].split("\n## ", 1)[0])
    assert len(setup) == 2
    main_job, test_command = (block.strip() for block in setup)
    assert "edgekit pipeline" in main_job and "pip install" in main_job
    assert "pytest" in test_command and "pip install" in test_command
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


@pytest.mark.parametrize("name, command", _commands(), ids=[name for name, _ in _commands()])
def test_every_command_has_help_with_an_example(name, command):
    assert command.help and len(command.help.strip()) > 20
    assert "Example" in command.help, f"edgekit {name} --help has no example"


def test_every_edgekit_command_in_the_readme_exists():
    known = {name for name, _ in _commands()}
    used = set()
    for block in _bash_blocks(README):
        for match in re.finditer(r"edgekit ((?:-\S+ )*)([a-z][a-z-]*)", block):
            used.add(match.group(2))
    for line in re.findall(r"`edgekit ([a-z][a-z-]*)", README):
        used.add(line)
    assert used, "the README shows no edgekit command"
    assert used <= known, f"README mentions commands that do not exist: {sorted(used - known)}"
