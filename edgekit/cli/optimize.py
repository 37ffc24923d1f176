"""``edgekit optimize``."""

from __future__ import annotations

import click

from edgekit.cli.common import given_options, model_loading_options
from edgekit.optimize import NoCandidateWithinBudgetError, optimize
from edgekit.optimize.config import OPTIONS
from edgekit.optimize.run import time_budget_line
from edgekit.options import click_options

# Options passed to the library only when typed (the library's defaults are the only ones).
_OPTIONS = [option.name for option in OPTIONS if option.cli] + [
    "preprocess", "custom_objects", "unsafe_deserialization"]


@click.command("optimize")
@click.argument("model", metavar="MODEL")
@click_options(OPTIONS)
@click.option("--no-finetune", is_flag=True, help="Post-training candidates and the per-layer "
              "fallback only: no pruning, clustering or QAT (no fine-tuning).")
@model_loading_options
@click.option("--output", type=click.Path(), help="The winner's model folder. "
              "[default models/<parent>-optimized]")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@click.pass_context
def optimize_command(ctx: click.Context, model, no_finetune, output, force, **_):
    """Find the fastest (or smallest) artifact within an accuracy budget, by measurement.

    MODEL is what `edgekit compress` takes: a model folder, or a .keras / .h5 / SavedModel path
    with --dataset. Candidates come from the registered techniques: fp32, fp16, dynamic range,
    int8, int16x8, int8 with its most sensitive layers kept in float (the fewest that bring it
    within budget, found layer by layer), and unless --no-finetune pruning (50%, 80%, 2:4) with
    QAT, clustering (16, 32) with int8 and QAT alone. Each is scored on the validation split
    against the parent's Keras model and timed by the bench harness in its own process; cheap
    candidates go first, a fine-tuning one runs only while it can still win and while
    --time-budget lasts.

    The winner is written as a normal model folder (export, bench and serve take it) with
    optimize/candidates.json, a Pareto plot and a per-layer sensitivity plot, and the test
    accuracy of the winner. Exit 1 when no candidate is within budget (the closest are named);
    exit 2 for bad options.

    \b
    Examples:
      edgekit optimize models/cnn-digits --max-drop 0.5
      edgekit optimize models/cnn-digits --max-drop 1 --objective size --no-finetune
      edgekit optimize models/cnn-digits --max-drop 0.5 --runtime both --time-budget 10
      edgekit optimize my_model.keras --dataset digits --preprocess scale=0.0625 --max-drop 1
    """
    options = given_options(ctx, _OPTIONS)
    if no_finetune:
        options["finetune"] = False
    try:
        result = optimize(model, output_dir=output, force=force, **options)
    except NoCandidateWithinBudgetError as error:
        click.echo("")
        click.echo(error.result.table())
        if error.result.search.stopped_by_time_budget:
            click.echo(time_budget_line(error.result.search, error.result.config))
        raise
    print_optimize_summary(result)


def print_optimize_summary(result) -> None:
    """The candidates table, the winner and where everything is."""
    chosen = result.chosen
    click.echo("")
    click.echo(result.table())
    click.echo("")
    click.echo(f"chosen:   {chosen['name']} ({chosen['recipe']}): validation drop "
               f"{chosen['drop_points']:.2f} points, test accuracy {chosen['accuracy_test']:.2%}, "
               f"p50 {chosen['p50_ms']:.4f} ms, {chosen['size_bytes']:,} B "
               f"({chosen['gzip_bytes']:,} B gzipped)")
    winner = result.document.get("winner") or {}
    if winner.get("command"):
        click.echo(f"command:  {winner['command']}")
    if result.search.stopped_by_time_budget:
        click.echo(time_budget_line(result.search, result.config))
    for line in result.warnings:
        click.echo(f"warning:  {line}")
    click.echo(f"model:    {result.output_dir}")
    for name, path in result.files.items():
        click.echo(f"{name + ':':<9} {path}")
