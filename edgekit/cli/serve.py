"""``edgekit serve``: a Triton Inference Server on a model repository, until Ctrl-C."""

from __future__ import annotations

import time

import click

from edgekit.errors import ServeError
from edgekit.serve.tritonserver import BACKENDS, MODEL_CONTROL_MODES, ServeConfig, TritonServer

_DEFAULTS = ServeConfig()


@click.command("serve")
@click.argument("repository", required=False, default=_DEFAULTS.repository, type=click.Path())
@click.option("--backend", type=click.Choice(BACKENDS), default=_DEFAULTS.backend, show_default=True,
              help="python: ONNX models run with ONNX Runtime in Triton's Python backend (the bundled "
                   "server); native: the repository as it is, on the full Triton build given by --tritonserver.")
@click.option("--tritonserver", type=click.Path(), help="A full Triton build's tritonserver binary. "
              "[default: the one in nvidia-pytriton, the [triton] extra]")
@click.option("--host", default=_DEFAULTS.host, show_default=True,
              help="Address to bind. Triton has no authentication: keep it on loopback.")
@click.option("--http-port", type=int, default=_DEFAULTS.http_port, show_default=True)
@click.option("--grpc-port", type=int, default=_DEFAULTS.grpc_port, show_default=True)
@click.option("--metrics-port", type=int, default=_DEFAULTS.metrics_port, show_default=True)
@click.option("--model-control", type=click.Choice(MODEL_CONTROL_MODES), default=_DEFAULTS.model_control,
              show_default=True, help="explicit lets `edgekit deploy --reload` load new versions.")
@click.option("--log-file", type=click.Path(dir_okay=False),
              help="Server log. [default: <REPOSITORY>-server.log beside the repository]")
@click.option("--timeout", "ready_timeout", type=float, default=_DEFAULTS.ready_timeout, show_default=True,
              help="Seconds to wait for every model to load.")
def serve_command(repository, **options):
    """Serve a Triton model repository on 127.0.0.1 until Ctrl-C (or SIGTERM).

    Starts the Triton Inference Server that ships in nvidia-pytriton, waits until every model
    is loaded, prints the endpoints and models, and stops cleanly on Ctrl-C. The repository is
    served through a staging copy in which each ONNX model runs with ONNX Runtime (each TFLite
    model with LiteRT) inside Triton's Python backend; REPOSITORY itself is not changed and
    NVIDIA's container serves it as it is. With --model-control explicit, `edgekit deploy triton
    MODEL --reload URL` adds a version that the running server loads.

    \b
    Examples:
      edgekit serve                                  # triton_repo/ on ports 8000-8002
      edgekit serve triton_repo --http-port 9000 --grpc-port 9001 --metrics-port 9002
      edgekit serve --model-control explicit         # then: edgekit deploy triton MODEL --reload URL
      edgekit serve --backend native --tritonserver /opt/tritonserver/bin/tritonserver
    """
    server = TritonServer(ServeConfig(repository=repository, **options))
    click.echo(f"starting Triton on {repository} ...", err=True)
    try:
        server.start()
        print_server(server)
        click.echo("ready; press Ctrl-C to stop")
        while server.poll() is None:
            time.sleep(0.5)
        raise ServeError(f"Triton stopped unexpectedly (exit code {server.poll()}): "
                         f"{server.failure_reason()} (log: {server.log_path})")
    except KeyboardInterrupt:
        click.echo("stopping Triton ...", err=True)
        server.stop()
        click.echo("stopped")
    finally:
        server.stop()


def print_server(server) -> None:
    config = server.config
    mode = ("python backend: ONNX models run with ONNX Runtime, TFLite models with LiteRT"
            if config.backend == "python" else "native backends")
    click.echo(f"Triton ({server.installation.source}) serving {config.repository} ({mode})")
    for name, label in (("http", "HTTP"), ("grpc", "gRPC"), ("metrics", "metrics")):
        click.echo(f"  {label:<8} {server.endpoints[name]}")
    click.echo(f"  {'log':<8} {server.log_path}")
    if server.staged is not None:
        click.echo(f"  {'staging':<8} {server.staged.path}")
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: {config.host} is not loopback; Triton has no authentication", err=True)
    click.echo("models:")
    for model in server.models():
        reason = f" ({model['reason']})" if model.get("reason") else ""
        click.echo(f"  {model['name']:<20} version {model.get('version', '?'):<4} {model.get('state', '?')}{reason}")
    for staged in (server.staged.models if server.staged else []):
        for note in staged.notes:
            click.echo(f"note: {staged.name}: {note}", err=True)
