"""``edgekit train``."""

from __future__ import annotations

import click

from edgekit.cli.common import given_options, model_loading_options, parse_key_values
from edgekit.config import DISTRIBUTIONS, OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig

_DEFAULTS = TrainConfig()


def _default(name: str) -> str:
    return f"default {getattr(_DEFAULTS, name)}"


@click.command("train")
@click.option("--model", "-m", help=f"Zoo model name, or a .keras / .h5 / SavedModel path to keep training. [{_default('model')}; see `edgekit models`]")
@click.option("--dataset", "-d", help=f"digits, fashion_mnist, mnist, npz:PATH or images:DIR. [{_default('dataset')}]")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder holding IDX .gz or .npz files for fashion_mnist / mnist.")
@click.option("--epochs", type=int, help=f"Epochs to train (with --resume: the new total). [{_default('epochs')}]")
@click.option("--batch-size", type=int, help=f"Global batch size. [{_default('batch_size')}]")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), help=f"[{_default('optimizer')}]")
@click.option("--learning-rate", "--lr", "learning_rate", type=float, help=f"[{_default('learning_rate')}]")
@click.option("--momentum", type=float, help=f"SGD momentum (Nesterov). [{_default('momentum')}]")
@click.option("--schedule", type=click.Choice(SCHEDULES), help=f"Learning-rate schedule. [{_default('schedule')}]")
@click.option("--weight-decay", type=float, help=f"Decoupled weight decay. [{_default('weight_decay')}]")
@click.option("--seed", type=int, help=f"Seed for splits, initialisation and shuffling. [{_default('seed')}]")
@click.option("--validation-fraction", type=float, help=f"Share of the training split held out for validation. [{_default('validation_fraction')}]")
@click.option("--augment", is_flag=True, default=None, help="Random shifts, zoom and (where the data allows) flips, at training time only.")
@click.option("--early-stopping", type=int, help=f"Patience in epochs on validation loss; 0 turns it off. [{_default('early_stopping')}]")
@click.option("--precision", type=click.Choice(PRECISIONS), help=f"auto = mixed_float16 on a GPU, float32 on CPU. [{_default('precision')}]")
@click.option("--distribute", type=click.Choice(DISTRIBUTIONS), help=f"tf.distribute strategy; auto = mirrored over several GPUs, multi-worker from TF_CONFIG. [{_default('distribute')}]")
@click.option("--tensorboard", is_flag=True, default=None, help="Write TensorBoard logs to <output>/tensorboard.")
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
    from edgekit.train import train

    options = given_options(ctx, [name for name in TrainConfig.field_names() if name != "model_options"])
    if ctx.params["model_options"]:
        options["model_options"] = parse_key_values(ctx.params["model_options"], "--model-option")
    result = train(output_dir=output, force=force, resume=resume, **options)
    print_training_summary(result)


def print_training_summary(result) -> None:
    from edgekit.train.evaluate import format_report

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
