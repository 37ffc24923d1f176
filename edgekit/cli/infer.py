"""``edgekit infer``: send an image or a .npy file to a Triton server and print the top-k classes."""

from __future__ import annotations

import click

from edgekit.errors import OptionError
from edgekit.runtimes import RUNTIMES
from edgekit.runtimes.triton_client import PROTOCOLS
from edgekit.serve.inputs import load_batch, resolve_preprocessing


@click.command("infer")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="INPUT...")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True,
              help="http://HOST:PORT or grpc://HOST:PORT of the server.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), help="When --url is a bare HOST:PORT. [default http]")
@click.option("--model", "-m", help="Model name. [default: the only ready model]")
@click.option("--model-version", default="", help="Version number. [default: the server's version policy]")
@click.option("--top-k", "-k", type=int, default=5, show_default=True)
@click.option("--preprocess", default="auto", show_default=True,
              help="auto (the input contract in the served config), none (the model takes raw "
                   "values), scale=S,mean=M,std=D (mean / std may be per-channel lists), or a "
                   "model folder / manifest.json whose recorded contract to use.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to connect and to wait.")
def infer_command(inputs, url, protocol, model, model_version, top_k, preprocess, timeout):
    """Classify image or .npy files on a Triton server and print the top-k classes.

    Images are converted to the input's channels and size; a .npy holds one sample or a batch.
    The top-k come from Triton's classification extension, with the labels of the model's labels
    file.

    \b
    Examples:
      edgekit infer digit.png
      edgekit infer --url grpc://127.0.0.1:8001 --model cnn -k 3 samples.npy
      edgekit infer shoe.png --preprocess models/cnn-fashion_mnist
    """
    if top_k < 1:
        raise OptionError(f"--top-k must be >= 1; received {top_k}")
    target = f"{url}#{model}" if model else url
    with RUNTIMES.get("triton").load(target, protocol=protocol, timeout=timeout,
                                     version=model_version) as runtime:
        shape, dtype = list(runtime.input_shape), runtime.input_dtype
        resolved = resolve_preprocessing(preprocess, runtime.served_config())
        click.echo(f"model {runtime.model} at {runtime.url}; preprocessing: {_describe(resolved)}")
        for path in inputs:
            batch = load_batch(path, shape, dtype, resolved)
            rows = runtime.classify(batch, top_k=top_k)
            for index, row in enumerate(rows):
                click.echo(path if len(rows) == 1 else f"{path} [{index}]")
                for rank, entry in enumerate(row, 1):
                    label = entry.label if entry.label is not None else str(entry.index)
                    click.echo(f"  {rank}. {label:<20} {entry.score:.4f}  (class {entry.index})")


def _describe(resolved) -> str:
    if resolved.preprocessing is None:
        return resolved.source
    factor = resolved.pixel_factor()
    pixels = f"; image pixels x {factor:.6g} give raw values" if factor != 1.0 else ""
    return f"{resolved.preprocessing.describe()} from {resolved.source}{pixels}"
