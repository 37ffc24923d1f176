"""``edgekit export``: its options are the declared options of the formats registered when it runs.

The command is built once, but its options are not fixed then: :class:`ExportCommand` asks the
format registry for them each time click parses or prints help, after loading the plug-ins
(``EDGEKIT_PLUGINS``, the ``edgekit.plugins`` entry points: :func:`edgekit.registry.load_plugins`).
A format registered after this module is imported (a plug-in, or a test's toy format) is in
``--to``, in ``--help`` and checked like the built-in ones.
"""

from __future__ import annotations

import click

from edgekit.cli.common import given_options, model_loading_options
from edgekit.export import FORMATS, ExportConfig, FidelityError, export
from edgekit.export.config import declared_options
from edgekit.registry import load_plugins


class ExportCommand(click.Command):
    """A click command whose declared options follow the export format registry."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fixed = list(self.params)  # MODEL, the model-loading options, --output, --force
        self._built_for: tuple = ()
        self._declared: list[click.Parameter] = []

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        load_plugins()  # EDGEKIT_PLUGINS / entry points: their formats join the options too
        registered = tuple((name, id(FORMATS.get(name))) for name in FORMATS.names())
        if registered != self._built_for:
            self._declared = [option.click_parameter() for option in declared_options().values()
                              if option.cli]
            self._built_for = registered
        self.params = [self._fixed[0], *self._declared, *self._fixed[1:]]
        return super().get_params(ctx)


@click.command("export", cls=ExportCommand)
@click.argument("model")
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
    versions to --triton-repository. A format registered with
    edgekit.export.register_format joins --to and brings its own options.

    \b
    Examples:
      edgekit export models/cnn-digits --to tflite,onnx,triton,mobile
      edgekit export models/cnn-digits-int8 --to onnx --onnx-precisions int8 --force
      edgekit export models/cnn-digits-qat --to triton --triton-precision int8
      edgekit export my_model.keras --dataset digits --to onnx --opset 13
    """
    options = given_options(ctx, ExportConfig.field_names())
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
