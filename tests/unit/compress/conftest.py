"""Shared by the compress unit tests."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from edgekit.cli.common import EdgekitGroup
from edgekit.cli.compress import compress_command


@pytest.fixture
def edgekit_cli():
    """``edgekit compress ...`` in this process, with edgekit's one-line error handling."""

    @click.group(cls=EdgekitGroup)
    def group():
        """edgekit"""

    group.add_command(compress_command)
    runner = CliRunner()
    return lambda *args: runner.invoke(group, ["compress", *args], catch_exceptions=False)
