"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgekit  # noqa: F401  (selects Keras 2 before any test imports TensorFlow)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_runner():
    """Invoke ``edgekit`` in-process; returns click's Result (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from edgekit.cli.main import cli

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def edgekit_executable() -> str:
    """The installed console script next to this interpreter."""
    candidate = Path(sys.executable).parent / "edgekit"
    found = str(candidate) if candidate.exists() else shutil.which("edgekit")
    if not found:
        pytest.fail("the edgekit console script is not installed; run pip install -e .")
    return found


@pytest.fixture
def edgekit_command() -> str:
    """Path of the installed ``edgekit`` console script."""
    return edgekit_executable()


@pytest.fixture
def run_edgekit(tmp_path):
    """Run the installed ``edgekit`` console script in a subprocess, in ``tmp_path``."""

    def run(*args: str, timeout: float = 300, cwd: Path | None = None, env: dict | None = None):
        env = {**{k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}, **(env or {})}
        return subprocess.run([edgekit_executable(), *args], cwd=cwd or tmp_path, env=env,
                              capture_output=True, text=True, timeout=timeout)

    return run
