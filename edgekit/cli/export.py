"""``edgekit export``."""

from __future__ import annotations

import click

from edgekit.cli.common import given_options, model_loading_options
from edgekit.export.config import FORMATS, INSTANCE_KINDS, ExportConfig

_DEFAULTS = ExportConfig()


def _default(name: str) -> str:
    value = getattr(_DEFAULTS, name)
    return f"default {','.join(map(str, value)) if isinstance(value, tuple) else value}"


@click.command("export")
@click.argument("model")
@click.option("--to", help=f"Formats, comma-separated: {', '.join(FORMATS)}. [{_default('to')}]")
@click.option("--dataset", "-d", help="Dataset for calibration and fidelity. [default: the model folder's; required for a model file]")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder holding the dataset's files (fashion_mnist / mnist).")
@click.option("--samples", type=int, help="Compare on the first N test samples. [default: the whole test split]")
@click.option("--calibration-samples", type=int, help="int8 calibration samples. [default: the compress recipe's, else 500]")
@click.option("--seed", type=int, help="Seed of the calibration samples and splits. [default: the model folder's]")
@click.option("--opset", type=int, help=f"ONNX opset. [{_default('opset')}]")
@click.option("--onnx-precisions", help=f"ONNX precisions: fp32, fp16, int8. [{_default('onnx_precisions')}]")
@click.option("--tflite-precisions", help="TFLite precisions: fp32, dynamic, fp16, int8, int16x8. [default: fp32 + the compress recipe's]")
@click.option("--mobile-precision", help="The TFLite precision the mobile bundle ships. [default: the recipe's, else fp32]")
@click.option("--triton-repository", "--triton-repo", "triton_repository", type=click.Path(file_okay=False), help=f"Triton model repository. [{_default('triton_repository')}]")
@click.option("--triton-model-name", help="Model name in the repository. [default: the model folder's name]")
@click.option("--triton-precision", help="The ONNX precision Triton serves. [default fp32; int8 for a QAT model]")
@click.option("--max-batch-size", type=int, help=f"Triton max_batch_size. [{_default('max_batch_size')}]")
@click.option("--preferred-batch-sizes", help=f"Triton dynamic batching's preferred sizes. [{_default('preferred_batch_sizes')}]")
@click.option("--max-queue-delay-us", type=int, help=f"Dynamic batching's max queue delay. [{_default('max_queue_delay_us')}]")
@click.option("--instance-count", type=int, help=f"Triton model instances. [{_default('instance_count')}]")
@click.option("--instance-kind", type=click.Choice(INSTANCE_KINDS), help=f"Run instances on CPU or GPU. [{_default('instance_kind')}]")
@click.option("--version-policy", help=f"latest:N, all or specific:V1,V2. [{_default('version_policy')}]")
@click.option("--fp32-min-agreement", type=float, help=f"fp32 top-1 agreement threshold. [{_default('fp32_min_agreement')}]")
@click.option("--fp32-max-abs-diff", type=float, help=f"fp32 max abs output difference threshold. [{_default('fp32_max_abs_diff')}]")
@click.option("--fp16-min-agreement", type=float, help=f"fp16 top-1 agreement threshold. [{_default('fp16_min_agreement')}]")
@click.option("--int8-min-agreement", type=float, help=f"int8 (and dynamic, int16x8) top-1 agreement threshold. [{_default('int8_min_agreement')}]")
@model_loading_options
@click.option("--output", type=click.Path(), help="Export folder. [default MODEL/export, or <file>-export beside a model file]")
@click.option("--force", is_flag=True, help="Replace an existing export folder.")
@click.pass_context
def export_command(ctx: click.Context, model, output, force, **_):
    """Export a model to TFLite, ONNX, a Triton repository and a mobile bundle, and check each.

    MODEL is a model folder from `edgekit train` / `edgekit compress`, or a .keras / .h5 /
    SavedModel path (with --dataset). Every artifact is compared with the Keras model on the
    test split (top-1 agreement, max / mean abs diff); one below its threshold fails the export
    (exit code 1) and stays in the folder marked failed. Artifacts go to MODEL/export/, Triton
    versions to --triton-repository.

    \b
    Examples:
      edgekit export models/cnn-digits --to tflite,onnx,triton,mobile
      edgekit export models/cnn-digits-int8 --to onnx --onnx-precisions int8 --force
      edgekit export my_model.keras --dataset digits --to onnx --opset 13
    """
    from edgekit.export import FidelityError, export

    options = given_options(ctx, [name for name in ExportConfig.field_names()])
    try:
        result = export(model, output_dir=output, force=force, progress=True, **options)
    except FidelityError as error:
        print_export_summary(error.result)
        raise
    print_export_summary(result)


def print_export_summary(result) -> None:
    manifest = result.manifest
    click.echo(f"fidelity vs the Keras model on {manifest['fidelity']['samples']} test samples "
               f"of {manifest['dataset']['name']}:")
    click.echo(result.table())
    click.echo("")
    click.echo(f"artifacts: {result.output_dir}")
    triton = result.artifacts.get("triton")
    if triton and triton.get("version"):
        click.echo(f"triton:    {triton['repository']}/{triton['model_name']} "
                   f"(version {triton['version']}; versions {triton['versions']})")
    mobile = result.artifacts.get("mobile")
    if mobile and mobile.get("file"):
        click.echo(f"mobile:    {result.output_dir / mobile['file']}")
    click.echo(f"manifest:  {result.output_dir / 'manifest.json'}")
