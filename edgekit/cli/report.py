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
    """Write one HTML page about a model: training, compression, fidelity, speed, optimizer.

    It follows the model's lineage: a compressed model shows the training curves and confusion
    matrix of the folder it descends from (named as such), what compression cost against that
    parent (accuracy in %, change in points, size in kB / MB and ratio, zero weights, latency
    when benchmarked), each exported artifact's fidelity to the Keras model, the benchmark table
    and plots (from `edgekit bench`), and for a folder `edgekit optimize` wrote, its candidates,
    Pareto plot and why the winner won. A section whose stage has not run names the command
    that fills it. Images are embedded: the page is one file.

    \b
    Example:
      edgekit bench models/cnn-digits-int8 && edgekit report models/cnn-digits-int8
    """

    path = write_report(model, output=output, bench_json=bench_json, force=force)
    click.echo(f"report: {path}")
