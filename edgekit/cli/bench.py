"""``edgekit bench``: its runtime options are the declared options of the runtimes registered when
it runs.

The benchmark's own options come from :data:`edgekit.bench.config.OPTIONS`; the runtimes'
(``--xnnpack``, ``--ort-optimization``, a plug-in runtime's own) from their declarations:
:class:`BenchCommand` asks the runtime registry for them each time click parses or prints help,
after loading the plug-ins (``EDGEKIT_PLUGINS``, the ``edgekit.plugins`` entry points).
"""

from __future__ import annotations

import sys
from typing import Callable, Iterable

import click

from edgekit.bench import bench
from edgekit.bench.config import OPTIONS, BenchConfig
from edgekit.bench.run import ArtifactsFailedError, GatesFailedError
from edgekit.cli.common import given_options, model_loading_options
from edgekit.config import shell_command
from edgekit.data.contract import InputContract
from edgekit.options import Option
from edgekit.registry import load_plugins
from edgekit.runtimes import RUNTIMES, declared_options

_DEFAULTS = BenchConfig()
# Parameters that are no option of edgekit.bench (the rest go to it as the user typed them).
_NOT_OPTIONS = ("models", "output")
# The runtimes' options are listed after this one.
_RUNTIME_OPTIONS_AFTER = "pin_cpus"


def _default(name: str) -> str:
    value = getattr(_DEFAULTS, name)
    return f"default {','.join(map(str, value)) if isinstance(value, tuple) else value}"


def click_parameter(option: Option) -> click.Parameter:
    """The click option of a declaration; a flag that is on by default gets its ``--no-`` form.
    Values are checked by the declarations (edgekit's one-line errors), not by click."""
    if option.type is bool and option.default is True:
        return click.Option([f"{option.flag}/--no-{option.flag[2:]}", option.name], default=None,
                            help=f"{option.sentence()} [default on]")
    return option.click_parameter()


class BenchCommand(click.Command):
    """A click command whose runtime options follow the runtime registry."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fixed = list(self.params)
        self._built_for: tuple = ()
        self._runtime_parameters: list[click.Parameter] = []

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        load_plugins()  # EDGEKIT_PLUGINS / entry points: their runtimes' options join too
        registered = tuple((name, id(RUNTIMES.get(name))) for name in RUNTIMES.names())
        if registered != self._built_for:
            self._runtime_parameters = [click_parameter(option)
                                        for option in declared_options().values() if option.cli]
            self._built_for = registered
        cut = next(index for index, parameter in enumerate(self._fixed)
                   if parameter.name == _RUNTIME_OPTIONS_AFTER) + 1
        self.params = [*self._fixed[:cut], *self._runtime_parameters, *self._fixed[cut:]]
        return super().get_params(ctx)


def _declared(options: Iterable[Option]) -> Callable:
    """The click options of the benchmark's own declarations, in their order."""
    def decorate(command):
        for option in reversed([option for option in options if option.cli]):
            command.__dict__.setdefault("__click_params__", []).append(click_parameter(option))
        return command

    return decorate


@click.command("bench", cls=BenchCommand)
@click.argument("models", nargs=-1, type=click.Path())
@click.option("--batch", "batches", help=f"Batch sizes, e.g. 1,8,32. [{_default('batches')}]")
@click.option("--threads", help=f"Thread counts, e.g. 1,2 (one process per count). [{_default('threads')}]")
@click.option("--concurrency", help="Concurrent clients for --target triton://, e.g. 1,2,4,8,16. [default 1]")
@_declared(OPTIONS)
@click.option("--pin-cpus", help="Pin each artifact's process to these CPUs, e.g. 0 or 0,1.")
@click.option("--target", help="local, triton://HOST:PORT[#MODEL] (or http:// / grpc://), adb or adb:SERIAL. [default local]")
@click.option("--protocol", "protocols", help="For triton://: http, grpc or http,grpc. [default http]")
@click.option("--compare-batching", is_flag=True, default=None, help="For triton://: also measure MODEL-nobatch, the same model served without dynamic batching (edgekit.formats.triton.add_unbatched_variant adds it to a repository).")
@click.option("--benchmark-binary", type=click.Path(dir_okay=False), help="For adb: TFLite's benchmark_model built for the device.")
@click.option("--dataset", "-d", help="Dataset when the manifests do not say (or to override them).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder with fashion_mnist / mnist files.")
@click.option("--no-accuracy", "accuracy", flag_value=False, default=None, help="Latency only.")
@click.option("--fail-if", "fail_if", multiple=True, metavar="[ARTIFACT:]METRIC>VALUE", help='Exit 1 when it holds, e.g. "accuracy_drop>0.5", "p99_ms>2" or "speedup<1" (an int8 artifact slower than its fp32 sibling) (repeatable).')
@click.option("--only", "include", help="Artifact names to measure, e.g. keras,tflite-int8.")
@model_loading_options
@click.option("--output", type=click.Path(file_okay=False), help="Folder for bench.json, bench.md, plots/. [default <model>/bench]")
@click.pass_context
def bench_command(ctx: click.Context, models, output, **_):
    """Measure every artifact: latency, throughput, memory, size, accuracy and fidelity.

    MODELS are model folders (train / compress / export; all their artifacts: Keras, TFLite,
    ONNX) or artifact files. Each artifact runs in its own process; accuracy and fidelity to the
    Keras model use the test split with the manifest's preprocessing. A compressed artifact's
    speed is compared with the fp32 artifact of its runtime (the "vs fp32" column). Writes
    bench.json, bench.md and plots/; exits 1 when a --fail-if gate breaks or an artifact fails.
    A runtime of your own: a module that registers it, named in EDGEKIT_PLUGINS; its declared
    options become flags of this command.

    \b
    Examples:
      edgekit bench models/cnn-digits
      edgekit bench models/cnn-digits models/cnn-digits-int8 --batch 1,8,32 --threads 1,2
      edgekit bench models/cnn-digits --fail-if "accuracy_drop>0.5" --fail-if "p99_ms>2"
      edgekit bench models/cnn-digits-int8 --fail-if "speedup<1"
      edgekit bench models/cnn-digits --target triton://127.0.0.1:8000 --protocol http,grpc
      edgekit bench --dataset digits --target triton://127.0.0.1:8000#cnn-digits \
        --concurrency 1,2,4,8,16 --protocol http,grpc --compare-batching
      edgekit bench model.tflite --dataset digits --target adb --benchmark-binary benchmark_model
      EDGEKIT_PLUGINS=my_runtime.py edgekit bench model.mine --dataset digits
    """
    names = [name for name in ctx.params if name not in _NOT_OPTIONS]
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
