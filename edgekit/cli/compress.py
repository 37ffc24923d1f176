"""``edgekit compress``: its technique flags come from the techniques' own declarations."""

from __future__ import annotations

from typing import Callable

import click

from edgekit.cli.common import given_options, model_loading_options
from edgekit.compress.config import CompressConfig
from edgekit.compress.report import format_comparison, summary_lines
from edgekit.compress.run import ConversionCheckError, compress
from edgekit.options import Option


class DeclaredOptionsCommand(click.Command):
    """A click command whose declared options are read each time it parses or shows --help.

    So a technique registered after this module was imported (a plug-in from EDGEKIT_PLUGINS,
    a test) brings its flags; the command's own arguments and flags stay as written.

    Args:
        declared: returns the declarations (Options with ``cli=False`` are left out).
    """

    def __init__(self, *args, declared: Callable[[], list[Option]], **kwargs):
        super().__init__(*args, **kwargs)
        self._declared = declared
        self._written = list(self.params)
        self._built: tuple[list[Option], list[click.Parameter]] | None = None

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        declared = [option for option in self._declared() if option.cli]
        if self._built is None or self._built[0] != declared:
            arguments = [param for param in self._written if isinstance(param, click.Argument)]
            flags = [param for param in self._written if not isinstance(param, click.Argument)]
            self._built = (declared, [*arguments,
                                      *(option.click_parameter() for option in declared),
                                      *flags])
        self.params = self._built[1]
        return super().get_params(ctx)


@click.command("compress", cls=DeclaredOptionsCommand, declared=CompressConfig.options)
@click.argument("model", metavar="MODEL")
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
    .tflite) and printed as a table; the parent folder is not changed. A technique of your own
    adds its flags here when its module is named in EDGEKIT_PLUGINS.

    \b
    Examples:
      edgekit compress models/cnn-digits --int8
      edgekit compress models/cnn-digits --prune 0.8 --qat
      edgekit compress models/cnn-digits --cluster 16 --int8
      edgekit compress models/cnn-digits --prune-structure 2:4 --int8 --int8-io
      edgekit compress my_model.keras --dataset digits --fp16
    """
    # Options passed to the library only when typed (the library's defaults are the only ones).
    options = given_options(ctx, [name for name in CompressConfig.field_names() if name != "model"])
    try:
        result = compress(model, output_dir=output, force=force, **options)
    except ConversionCheckError as error:
        print_compression_summary(error.result)
        raise
    print_compression_summary(result)


def print_compression_summary(result) -> None:
    manifest = result.manifest
    click.echo("")
    click.echo(format_comparison(manifest))
    click.echo("")
    for line in summary_lines(manifest):
        click.echo(line)
    click.echo(f"model:    {result.keras_path}")
    click.echo(f"tflite:   {result.tflite_path}")
    click.echo(f"manifest: {result.output_dir / 'manifest.json'}")
