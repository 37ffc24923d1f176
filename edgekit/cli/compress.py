"""``edgekit compress``."""

from __future__ import annotations

import click

from edgekit.cli.common import given_options, model_loading_options
from edgekit.compress.config import DEFAULT_LEARNING_RATES, PRUNE_STRUCTURES, CompressConfig
from edgekit.config import PRECISIONS

_DEFAULTS = CompressConfig()
# Options passed to the library only when typed (the library's defaults are the only ones).
_OPTIONS = [name for name in CompressConfig.field_names() if name != "model"]


@click.command("compress")
@click.argument("model", metavar="MODEL")
@click.option("--prune", type=float, metavar="SPARSITY", help="Magnitude pruning to this fraction of zero weights, in [0, 1), with fine-tuning. E.g. 0.8.")
@click.option("--prune-structure", type=click.Choice(list(PRUNE_STRUCTURES)), help="Structured pruning: 2 of every 4 consecutive weights of Conv2D / Dense kernels (sparsity 0.5).")
@click.option("--cluster", type=int, metavar="N", help="Weight clustering: N shared values per kernel (>= 2, k-means++ init), with fine-tuning.")
@click.option("--qat", is_flag=True, default=None, help="Quantization-aware training for int8 (sparsity- / cluster-preserving after --prune / --cluster); converts to int8.")
@click.option("--int8", is_flag=True, default=None, help="Full-integer post-training quantization, calibrated on training samples.")
@click.option("--int8-io", is_flag=True, default=None, help="With --int8 or --qat: int8 input and output tensors instead of float32.")
@click.option("--dynamic", is_flag=True, default=None, help="Dynamic-range quantization: int8 weights, float activations.")
@click.option("--fp16", is_flag=True, default=None, help="float16 weights.")
@click.option("--int16x8", is_flag=True, default=None, help="16-bit activations, 8-bit weights (calibrated).")
@click.option("--finetune-epochs", type=int, help=f"Fine-tuning epochs of --prune / --cluster / --qat. [default {_DEFAULTS.finetune_epochs}]")
@click.option("--learning-rate", "--lr", "learning_rate", type=float, help="Fine-tuning learning rate (Adam). [default " + ", ".join(f"{name} {rate:g}" for name, rate in DEFAULT_LEARNING_RATES.items()) + "]")
@click.option("--calibration-samples", type=int, help=f"Training samples that calibrate --int8 / --int16x8. [default {_DEFAULTS.calibration_samples}]")
@click.option("--precision", type=click.Choice(PRECISIONS), help="dtype policy of --prune fine-tuning (as in train; clustering and QAT run in float32). [default auto]")
@click.option("--batch-size", type=int, help="Fine-tuning batch size. [default: the parent's]")
@click.option("--dataset", "-d", help="Dataset of a model file (digits, fashion_mnist, npz:PATH, ...). [default: a model folder's own]")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder holding IDX .gz or .npz files for fashion_mnist / mnist.")
@click.option("--seed", type=int, help="Seed of a model file's validation split and of fine-tuning. [default: the parent's, or 0]")
@click.option("--validation-fraction", type=float, help="Validation share of a model file's training split. [default: the parent's, or 0.1]")
@model_loading_options
@click.option("--output", type=click.Path(), help="Model folder to write. [default models/<parent>-<recipe>]")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@click.pass_context
def compress_command(ctx: click.Context, model, output, force, **_):
    """Compress a trained model: prune, cluster, QAT and/or post-training quantization.

    MODEL is a model folder from `edgekit train` (its data and split come from its manifest) or
    a .keras / .h5 / SavedModel path given with --dataset. The new folder holds model.keras,
    model.tflite and a manifest linking to the parent. The parent and the result are measured
    side by side on the test split (accuracy, weights, size raw and gzipped, zeros inside the
    .tflite) and printed as a table; the parent folder is not changed.

    \b
    Examples:
      edgekit compress models/cnn-digits --int8
      edgekit compress models/cnn-digits --prune 0.8 --qat
      edgekit compress models/cnn-digits --cluster 16 --int8
      edgekit compress models/cnn-digits --prune-structure 2:4 --int8 --int8-io
      edgekit compress my_model.keras --dataset digits --fp16
    """
    from edgekit.compress import compress

    options = given_options(ctx, _OPTIONS)
    from edgekit.compress.run import ConversionCheckError

    try:
        result = compress(model, output_dir=output, force=force, **options)
    except ConversionCheckError as error:
        print_compression_summary(error.result)
        raise
    print_compression_summary(result)


def print_compression_summary(result) -> None:
    from edgekit.compress.report import format_comparison, summary_lines

    manifest = result.manifest
    click.echo("")
    click.echo(format_comparison(manifest))
    click.echo("")
    for line in summary_lines(manifest):
        click.echo(line)
    click.echo(f"model:    {result.keras_path}")
    click.echo(f"tflite:   {result.tflite_path}")
    click.echo(f"manifest: {result.output_dir / 'manifest.json'}")
