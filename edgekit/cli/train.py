"""``edgekit train``."""

from __future__ import annotations

import click

from edgekit.cli.common import given_options, model_loading_options, parse_key_values
from edgekit.config import TrainConfig
from edgekit.options import click_options
from edgekit.train import train
from edgekit.train.evaluate import format_report


@click.command("train")
@click_options(TrainConfig.options())
@click.option("--model-option", "-o", "model_options", multiple=True, metavar="KEY=VALUE", help="A zoo model option, e.g. -o alpha=0.5 -o input_size=48 (repeatable).")
@model_loading_options
@click.option("--output", type=click.Path(), help="Model folder to write. [default models/<model>-<dataset>]")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@click.option("--resume", is_flag=True, help="Continue the run saved in --output from its last checkpoint.")
@click.pass_context
def train_command(ctx: click.Context, output, force, resume, **_):
    """Train a Keras model on a dataset, evaluate it and write its model folder.

    The folder holds model.keras, manifest.json (data, preprocessing, config, per-epoch metrics,
    test metrics, versions, sha256 of every file), training_curves.png and confusion_matrix.png.

    \b
    Examples:
      edgekit train                                   # cnn on digits
      edgekit train --dataset fashion_mnist --epochs 15 --augment
      edgekit train --model mobilenet_v2 -o alpha=0.35 -o input_size=32
      edgekit train --output models/cnn-digits --resume --epochs 30
    """
    options = given_options(ctx, [name for name in TrainConfig.field_names() if name != "model_options"])
    if ctx.params["model_options"]:
        options["model_options"] = parse_key_values(ctx.params["model_options"], "--model-option")
    result = train(output_dir=output, force=force, resume=resume, **options)
    print_training_summary(result)


def print_training_summary(result) -> None:
    manifest = result.manifest
    training = manifest["training"]
    click.echo("")
    click.echo(format_report(manifest["evaluation"]["test"]))
    click.echo("")
    stopped = f", stopped early (best epoch {training['best_epoch']})" if training["stopped_early"] else ""
    click.echo(f"trained {training['epochs_run']} epochs in {manifest['runtime']['seconds']:.1f} s{stopped}")
    click.echo(f"test accuracy: {result.test_accuracy * 100:.2f}%")
    click.echo(f"model:    {result.output_dir / manifest['model']['file']}")
    click.echo(f"manifest: {result.output_dir / 'manifest.json'}")
    click.echo(f"plots:    {result.output_dir / manifest['plots']['training_curves']}, "
               f"{result.output_dir / manifest['plots']['confusion_matrix']}")
