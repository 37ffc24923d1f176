"""``edgekit models`` and ``edgekit datasets``: what the zoo and the data loaders offer."""

from __future__ import annotations

import sys

import click

from edgekit.data import DATASETS, dataset_names
from edgekit.data.sources import SPEC_FORM_USAGE
from edgekit.models import MODELS, model_names, model_options


@click.command("models")
def models_command():
    """List the zoo models and their options (set them with train's -o KEY=VALUE).

    \b
    Example:
      edgekit models
      edgekit train --model resnet8 -o base_filters=8
    """


    for name in model_names():
        module = sys.modules[MODELS.get(name).__module__]
        summary = (module.__doc__ or MODELS.get(name).__doc__ or "").strip().splitlines()[0]
        summary = summary.split(": ", 1)[-1] if summary.startswith("``") else summary
        options = ", ".join(f"{key}={value}" for key, value in model_options(name).items())
        click.echo(f"{name:<13} {summary}")
        click.echo(f"{'':<13} options: {options or 'none'}")


@click.command("datasets")
def datasets_command():
    """List the datasets, and the npz:/images: forms for your own data.

    \b
    Example:
      edgekit datasets
      edgekit train --dataset npz:my_data.npz
    """

    for name in dataset_names():
        summary = (DATASETS.get(name).__doc__ or "").strip().splitlines()[0]
        click.echo(f"{name:<14} {summary}")
    for usage in SPEC_FORM_USAGE.values():
        click.echo(f"{usage}")
