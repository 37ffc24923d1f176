"""``edgekit bench``."""

from __future__ import annotations

import sys

import click

from edgekit.bench.config import BenchConfig
from edgekit.cli.common import given_options, model_loading_options

_DEFAULTS = BenchConfig()


def _default(name: str) -> str:
    value = getattr(_DEFAULTS, name)
    return f"default {','.join(map(str, value)) if isinstance(value, tuple) else value}"


@click.command("bench")
@click.argument("models", nargs=-1, type=click.Path())
@click.option("--batch", "batches", help=f"Batch sizes, e.g. 1,8,32. [{_default('batches')}]")
@click.option("--threads", help=f"Thread counts, e.g. 1,2 (one process per count). [{_default('threads')}]")
@click.option("--concurrency", help="Concurrent clients for --target triton://, e.g. 1,2,4,8,16. [default 1]")
@click.option("--warmup-runs", type=int, help=f"[{_default('warmup_runs')}]")
@click.option("--warmup-seconds", type=float, help=f"[{_default('warmup_seconds')}]")
@click.option("--min-runs", type=int, help=f"Runs per measurement window, at least. [{_default('min_runs')}]")
@click.option("--min-seconds", type=float, help=f"Seconds per measurement window, at least. [{_default('min_seconds')}]")
@click.option("--max-windows", type=int, help=f"Windows tried until two agree. [{_default('max_windows')}]")
@click.option("--stability-tolerance", type=float, help=f"Agreement of consecutive windows' p50. [{_default('stability_tolerance')}]")
@click.option("--pin-cpus", help="Pin each artifact's process to these CPUs, e.g. 0 or 0,1.")
@click.option("--xnnpack/--no-xnnpack", default=None, help="LiteRT with XNNPACK (default) or builtin kernels only.")
@click.option("--ort-optimization", type=click.Choice(["disable", "basic", "extended", "all"]), help=f"ONNX Runtime graph optimization. [{_default('ort_optimization')}]")
@click.option("--ort-provider", help=f"ONNX Runtime execution provider. [{_default('ort_provider')}]")
@click.option("--target", help="local, triton://HOST:PORT[#MODEL] (or http:// / grpc://), adb or adb:SERIAL. [default local]")
@click.option("--protocol", "protocols", help="For triton://: http, grpc or http,grpc. [default http]")
@click.option("--grpc-port", type=int, help="For triton:// with --protocol grpc: the server's gRPC port. [default the target's (HTTP) port + 1, as Triton's 8000/8001]")
@click.option("--compare-batching", is_flag=True, default=None, help="For triton://: also measure MODEL-nobatch, the same model served without dynamic batching (edgekit.formats.triton.add_unbatched_variant adds it to a repository).")
@click.option("--benchmark-binary", type=click.Path(dir_okay=False), help="For adb: TFLite's benchmark_model built for the device.")
@click.option("--dataset", "-d", help="Dataset when the manifests do not say (or to override them).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder with fashion_mnist / mnist files.")
@click.option("--samples", type=int, help="Only the first N test samples for accuracy and fidelity.")
@click.option("--no-accuracy", "accuracy", flag_value=False, default=None, help="Latency only.")
@click.option("--fail-if", "fail_if", multiple=True, metavar="[ARTIFACT:]METRIC>VALUE", help='Exit 1 when it holds, e.g. "accuracy_drop>0.5" or "p99_ms>2" (repeatable).')
@click.option("--only", "include", help="Artifact names to measure, e.g. keras,tflite-int8.")
@click.option("--timeout", type=float, help=f"Seconds per artifact before it is stopped. [{_default('timeout')}]")
@model_loading_options
@click.option("--output", type=click.Path(file_okay=False), help="Folder for bench.json, bench.md, plots/. [default <model>/bench]")
@click.pass_context
def bench_command(ctx: click.Context, models, output, **_):
    """Measure every artifact: latency, throughput, memory, size, accuracy and fidelity.

    MODELS are model folders (train / compress / export; all their artifacts: Keras, TFLite,
    ONNX) or artifact files. Each artifact runs in its own process; accuracy and fidelity to the
    Keras model use the test split with the manifest's preprocessing. Writes bench.json,
    bench.md and plots/; exits 1 when a --fail-if gate breaks or an artifact fails.

    \b
    Examples:
      edgekit bench models/cnn-digits
      edgekit bench models/cnn-digits models/cnn-digits-int8 --batch 1,8,32 --threads 1,2
      edgekit bench models/cnn-digits --fail-if "accuracy_drop>0.5" --fail-if "p99_ms>2"
      edgekit bench models/cnn-digits --target triton://127.0.0.1:8000 --protocol http,grpc
      edgekit bench --dataset digits --target triton://127.0.0.1:8000#cnn-digits \
        --concurrency 1,2,4,8,16 --protocol http,grpc --compare-batching
      edgekit bench model.tflite --dataset digits --target adb --benchmark-binary benchmark_model
    """
    from edgekit.bench import bench
    from edgekit.bench.run import ArtifactsFailedError, GatesFailedError
    from edgekit.config import shell_command

    names = ["batches", "threads", "concurrency", "warmup_runs", "warmup_seconds", "min_runs",
             "min_seconds", "max_windows", "stability_tolerance", "pin_cpus", "xnnpack",
             "ort_optimization", "ort_provider", "target", "protocols", "grpc_port", "compare_batching",
             "benchmark_binary",
             "dataset", "data_dir", "samples", "accuracy", "fail_if", "include", "timeout",
             "preprocess", "custom_objects", "unsafe_deserialization"]
    options = {name: value for name, value in given_options(ctx, names).items()
               if value is not None and value != ()}
    command = shell_command("edgekit", ["bench", *sys.argv[2:]]) if len(sys.argv) > 1 \
        and sys.argv[1] == "bench" else None
    bar = ProgressBar()
    try:
        result = bench(*models, output_dir=output, progress=bar.update, command=command, **options)
        error = None
    except (GatesFailedError, ArtifactsFailedError) as failure:
        result, error = failure.result, failure
    finally:
        bar.close()
    print_bench_summary(result)
    if error is not None:
        raise error


def print_bench_summary(result) -> None:
    from edgekit.data.contract import InputContract

    for name, record in (result.report.get("datasets") or {}).items():
        if isinstance(record, dict) and record.get("input_contract"):
            click.echo(f"{name}: {InputContract.from_dict(record['input_contract']).line()}")
    click.echo(result.table())
    click.echo(f"\njson:     {result.files['json']}\nmarkdown: {result.files['markdown']}")
    plots = [str(path) for name, path in result.files.items() if name.startswith("plot:")]
    if plots:
        click.echo("plots:    " + "\n          ".join(plots))


class ProgressBar:
    """click's progress bar on stderr, created at the first update (when the total is known)."""

    def __init__(self):
        self._bar = None
        self._done = 0

    def update(self, done: int, total: int, label: str) -> None:
        if self._bar is None:
            self._bar = click.progressbar(length=total, label="benchmarking", file=sys.stderr,
                                          show_pos=True, item_show_func=lambda item: item)
            self._bar.__enter__()
        self._bar.update(done - self._done, label[:40])
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
