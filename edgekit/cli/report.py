"""``edgekit report``."""

from __future__ import annotations

import click

from edgekit.bench.html import write_report


@click.command("report")
@click.argument("model", type=click.Path())
@click.option("--bench-json", type=click.Path(dir_okay=False), help="The benchmark to show. [default <model>/bench/bench.json]")
@click.option("--output", type=click.Path(dir_okay=False), help="The page to write (.html). [default <model>/report.html]")
@click.option("--force", is_flag=True, help="Replace an earlier edgekit report at --output.")
def report_command(model, bench_json, output, force):
    """Write one HTML page about a model: training, compression, fidelity and benchmark.

    It gathers the training curves and confusion matrix, the compression table, each exported
    artifact's fidelity to the Keras model and the benchmark table and plots (from
    `edgekit bench`). Images are embedded: the page is one file.

    \b
    Example:
      edgekit bench models/cnn-digits && edgekit report models/cnn-digits
    """

    path = write_report(model, output=output, bench_json=bench_json, force=force)
    click.echo(f"report: {path}")
