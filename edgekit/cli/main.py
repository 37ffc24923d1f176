"""``edgekit``: the command group every stage's commands join."""

from __future__ import annotations

import os

import click

from edgekit.cli.bench import bench_command
from edgekit.cli.catalog import datasets_command, models_command
from edgekit.cli.common import EdgekitGroup
from edgekit.cli.compress import compress_command
from edgekit.cli.deploy import deploy_group
from edgekit.cli.export import export_command
from edgekit.cli.infer import infer_command
from edgekit.cli.inspect import inspect_command
from edgekit.cli.optimize import optimize_command
from edgekit.cli.pipeline import pipeline_command
from edgekit.cli.report import report_command
from edgekit.cli.serve import serve_command
from edgekit.cli.train import train_command


@click.group(cls=EdgekitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgekit", prog_name="edgekit")
@click.option("--verbose", "-v", is_flag=True, help="Show TensorFlow's own log messages too.")
def cli(verbose: bool) -> None:
    """Train, compress, convert, check and deploy Keras models for the edge and for Triton.

    \b
    Example:
      edgekit pipeline            # train the default cnn on digits and evaluate it
      edgekit train --model cnn --dataset fashion_mnist --epochs 15
    """
    if verbose:
        os.environ["EDGEKIT_VERBOSE"] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"


def _register_commands() -> None:

    for command in (pipeline_command, train_command, compress_command, optimize_command,
                    export_command, inspect_command, bench_command, report_command, serve_command, deploy_group,
                    infer_command, models_command, datasets_command):
        cli.add_command(command)


_register_commands()


def main() -> None:
    cli(prog_name="edgekit")
