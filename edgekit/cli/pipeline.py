"""``edgekit pipeline``: the README's main job."""

from __future__ import annotations

import click


@click.command("pipeline")
@click.option("--model", "-m", default="cnn", show_default=True, help="Zoo model name.")
@click.option("--dataset", "-d", default="digits", show_default=True, help="Dataset name or npz:/images: spec.")
@click.option("--epochs", type=int, help="Training epochs. [default: train's default]")
@click.option("--output-root", default="models", show_default=True, type=click.Path(file_okay=False), help="Where model folders go.")
@click.option("--force", is_flag=True, help="Replace the outputs of an earlier pipeline run.")
def pipeline_command(model, dataset, epochs, output_root, force):
    """Run every stage on one model: train and evaluate (compress, export and bench join as they land).

    \b
    Example:
      edgekit pipeline --force        # cnn on digits into models/cnn-digits
    """
    from edgekit.cli.train import print_training_summary
    from edgekit.pipeline import pipeline

    result = pipeline(model=model, dataset=dataset, epochs=epochs, output_root=output_root,
                      force=force)
    print_training_summary(result.stages["train"])
    click.echo(f"\nreport: {result.model_dir / 'manifest.json'} (metrics), "
               f"{result.model_dir / 'confusion_matrix.png'}")
