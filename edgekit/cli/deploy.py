"""``edgekit deploy``: put a model where it is served (``edgekit deploy triton``)."""

from __future__ import annotations

import click

from edgekit.serve.deploy import PRECISIONS, deploy_triton


@click.group("deploy")
def deploy_group():
    """Deploy a model to a serving target without rebuilding it.

    \b
    Example:
      edgekit deploy triton models/cnn-digits --precision int8 --reload http://127.0.0.1:8000
    """


@deploy_group.command("triton")
@click.argument("model", type=click.Path(exists=True, file_okay=False))
@click.option("--repository", "--triton-repo", "repository", type=click.Path(file_okay=False),
              default="triton_repo", show_default=True, help="The Triton model repository.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="The ONNX precision to deploy; exported first if no export of MODEL has it.")
@click.option("--model-name", help="The model's name in the repository. [default: MODEL's folder name]")
@click.option("--reload", "reload_url", metavar="URL",
              help="A server started with `edgekit serve --model-control explicit` to load the new "
                   "version, e.g. http://127.0.0.1:8000.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the server to load the version.")
def deploy_triton_command(model, repository, precision, model_name, reload_url, timeout):
    """Add MODEL's ONNX file to a Triton repository as a new version, and load it.

    MODEL is a model folder from `edgekit train` / `compress` (or one of its export folders).
    The ONNX file of --precision comes from its exports; if none has it, it is exported (and
    checked against the Keras model) into MODEL/export-onnx-PRECISION first. The version keeps
    the model's batching, instances and version policy. With --reload, a server started with
    `edgekit serve --model-control explicit` loads it without a restart.

    \b
    Examples:
      edgekit deploy triton models/cnn-digits
      edgekit deploy triton models/cnn-digits --precision int8 --reload http://127.0.0.1:8000
      edgekit deploy triton models/cnn-digits/export --repository /srv/triton_repo --model-name cnn
    """
    result = deploy_triton(model, repository=repository, precision=precision, reload_url=reload_url,
                           model_name=model_name, timeout=timeout)
    artifact = result.artifact
    fidelity = artifact.get("fidelity", {})
    how = "exported" if result.exported else "from the export"
    click.echo(f"{artifact['name']}: {result.onnx_file} ({how}; top-1 agreement "
               f"{fidelity.get('top1_agreement', float('nan')):.4f} with the Keras model)")
    click.echo(f"triton:   {result.repository / result.model_name} version {result.version} "
               f"(versions {result.versions})")
    if result.reload is not None:
        staged = f", re-staged in {result.reload['staged']}" if result.reload["staged"] else ""
        click.echo(f"reloaded: {result.model_name} on {result.reload['url']}{staged}; ready versions "
                   f"{result.reload['ready_versions']}")
    else:
        click.echo("a server started with --model-control explicit loads it with --reload URL; "
                   "others on their next start")
