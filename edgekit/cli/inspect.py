"""``edgekit inspect``."""

from __future__ import annotations

import json

import click

from edgekit.inspect import format_inspection, inspect_artifact


@click.command("inspect")
@click.argument("artifact", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def inspect_command(artifact, as_json):
    """Describe an artifact: format, size, inputs / outputs, op counts and lineage.

    ARTIFACT is a .tflite or .onnx file, a Triton model folder (or its config.pbtxt), or a
    mobile bundle folder or .zip. Inputs and outputs show their dtypes and quantization
    (scale, zero point); the lineage follows the manifests back to the training run.

    \b
    Examples:
      edgekit inspect models/cnn-digits/export/model_int8.onnx
      edgekit inspect triton_repo/cnn-digits --json
    """
    described = inspect_artifact(artifact)
    if as_json:
        click.echo(json.dumps(described, indent=2, default=str))
    else:
        click.echo(format_inspection(described))
