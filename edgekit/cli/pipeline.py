"""``edgekit pipeline``: the README's main job."""

from __future__ import annotations

import click

from edgekit.cli.bench import ProgressBar, print_bench_summary
from edgekit.cli.compress import print_compression_summary
from edgekit.cli.export import print_export_summary
from edgekit.cli.train import print_training_summary
from edgekit.pipeline import pipeline


@click.command("pipeline")
@click.option("--model", "-m", default="cnn", show_default=True, help="Zoo model name.")
@click.option("--dataset", "-d", default="digits", show_default=True, help="Dataset name or npz:/images: spec.")
@click.option("--epochs", type=int, help="Training epochs. [default: train's default]")
@click.option("--output-root", default="models", show_default=True, type=click.Path(file_okay=False), help="Where model folders go.")
@click.option("--triton-repository", "--triton-repo", default="triton_repo", show_default=True, type=click.Path(file_okay=False), help="Triton model repository export adds a version to.")
@click.option("--preprocess", metavar="SPEC", help="How raw samples become the model's input: scale=S,mean=M,std=D (per-channel lists allowed) or none. [default: standardised on the training split]")
@click.option("--force", is_flag=True, help="Replace the outputs of an earlier pipeline run.")
def pipeline_command(model, dataset, epochs, output_root, triton_repository, preprocess, force):
    """Run every stage on one model: train, compress to int8, export, benchmark.

    Trains MODEL on DATASET into <output-root>/<model>-<dataset>, quantizes it to full int8
    (<...>-int8), exports TFLite, ONNX, a Triton version and a mobile bundle (each checked
    against the Keras model), and benchmarks every artifact side by side.

    \b
    Example:
      edgekit pipeline --force        # cnn on digits into models/ and triton_repo/
    """
    printers = {"train": print_training_summary, "compress": print_compression_summary,
                "export": print_export_summary}

    bar = ProgressBar()

    def show(stage, result):
        if stage == "bench":
            bar.close()
        click.secho(f"\n== {stage}", bold=True)
        if stage in printers:
            printers[stage](result)
        elif stage == "bench":
            print_bench_summary(result)
        else:
            click.echo(f"report: {result}")

    try:
        result = pipeline(model=model, dataset=dataset, epochs=epochs, output_root=output_root,
                          preprocess=preprocess,
                          triton_repository=triton_repository, force=force, on_stage=show,
                          bench_progress=bar.update)
    finally:
        bar.close()
    click.secho("\n== done", bold=True)
    click.echo(f"trained model:    {result.model_dir}")
    click.echo(f"int8 model:       {result.compressed_dir} (TFLite, export/ with ONNX + mobile bundle)")
    click.echo(f"Triton repository: {triton_repository}")
    click.echo(f"report:           {result.stages['report']}")
