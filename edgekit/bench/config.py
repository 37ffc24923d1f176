"""The benchmark's one flat config: what the CLI builds, what ``edgekit.bench`` takes, what the JSON records.

Its scalar options are declared once (:data:`OPTIONS`, :class:`edgekit.options.Option`): their
checks and the CLI's flags come from the declarations. The options of the runtimes (LiteRT's
``xnnpack``, ONNX Runtime's ``ort_optimization`` / ``ort_provider``, a plug-in runtime's own)
are the runtimes' declarations (:func:`edgekit.runtimes.declared_options`): each worker passes a
runtime the ones it declares.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from edgekit.bench.latency import TimingConfig
from edgekit.config import FlatConfig
from edgekit.data.contract import preprocess_text
from edgekit.errors import OptionError
from edgekit.options import Option, check_values
from edgekit.runtimes import declared_options

TARGETS = ("local", "triton://HOST:PORT", "adb[:SERIAL]")
# Fields whose command-line flag has another name (messages name the flag a user typed).
_FLAGS = {"batches": "batch", "protocols": "protocol", "include": "only"}
PROTOCOLS = ("http", "grpc")
LISTS = ("batches", "threads", "concurrency", "pin_cpus")  # integers, "1,8,32" from the CLI
# The benchmark's own scalar options (the lists and the gates are parsed apart).
OPTIONS = (
    Option("warmup_runs", int, 10, "untimed runs before measuring, at least", minimum=0,
           example="10"),
    Option("warmup_seconds", float, 0.5, "seconds of untimed runs before measuring, at least",
           minimum=0, example="0.5"),
    Option("min_runs", int, 50, "runs per measurement window, at least", minimum=1, example="50"),
    Option("min_seconds", float, 1.0, "seconds per measurement window, at least", minimum=0,
           example="1"),
    Option("max_windows", int, 5, "windows tried until two agree", minimum=2, example="5"),
    Option("stability_tolerance", float, 0.10, "agreement of consecutive windows' p50 (0.1: 10%)",
           minimum=0, above=True, maximum=1, below=True, example="0.1"),
    Option("grpc_port", int, None, "for triton:// with --protocol grpc: the server's gRPC port "
           "(default: the target's HTTP port + 1, as Triton's 8000/8001)", minimum=1,
           maximum=65535, example="8001"),
    Option("samples", int, None, "only the first N test samples for accuracy and fidelity",
           minimum=1, example="500"),
    Option("timeout", float, 600.0, "seconds per artifact before it is stopped", minimum=0,
           above=True, example="600"),
)


@dataclass(frozen=True)
class BenchConfig(FlatConfig):
    """Every option of a benchmark run (plain types; lists as tuples).

    Attributes:
        batches / threads / concurrency: the grid measured per artifact (concurrency > 1 is for
            the triton target).
        warmup_runs ... stability_tolerance: see :class:`edgekit.bench.latency.TimingConfig`.
        pin_cpus: CPU ids each worker is pinned to (None: no pinning).
        xnnpack: LiteRT with its XNNPACK delegate (the default) or builtin kernels only.
        ort_optimization / ort_provider: ONNX Runtime graph optimization level and provider.
        runtime_options: options other runtimes declare (a plug-in runtime's), by name.
        target: "local", "triton://HOST:PORT[#MODEL]" (also http:// / grpc://) or "adb[:SERIAL]".
        protocols: for a triton:// target, http and / or grpc.
        grpc_port: for a triton:// target measured over gRPC, the server's gRPC port (the
            target's port is HTTP's); None takes HTTP's + 1, as Triton's 8000 / 8001.
        compare_batching: for a triton:// target, also measure ``<model>-nobatch`` (the same
            model served without dynamic batching; see
            :func:`edgekit.formats.triton.add_unbatched_variant`), so batching on vs off is one run.
        benchmark_binary: for adb, the benchmark_model binary built for the device.
        dataset / data_dir: the data when the manifests do not say (or to override them).
        samples: use only the first N test samples for accuracy and fidelity.
        accuracy: measure accuracy and fidelity (False: latency only).
        fail_if: gates, e.g. ("accuracy_drop>0.5", "p99_ms>2", "speedup<1").
        timeout: seconds per artifact process before it is killed.
        include: artifact names to keep (default every one).
    """

    kind = "benchmark"

    batches: tuple[int, ...] = (1,)
    threads: tuple[int, ...] = (1,)
    concurrency: tuple[int, ...] = (1,)
    warmup_runs: int = 10
    warmup_seconds: float = 0.5
    min_runs: int = 50
    min_seconds: float = 1.0
    max_windows: int = 5
    stability_tolerance: float = 0.10
    pin_cpus: tuple[int, ...] | None = None
    xnnpack: bool = True
    ort_optimization: str = "all"
    ort_provider: str = "CPUExecutionProvider"
    runtime_options: dict = field(default_factory=dict)
    target: str = "local"
    protocols: tuple[str, ...] = ("http",)
    grpc_port: int | None = None
    compare_batching: bool = False
    benchmark_binary: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    samples: int | None = None
    accuracy: bool = True
    fail_if: tuple[str, ...] = ()
    timeout: float = 600.0
    include: tuple[str, ...] | None = None
    preprocess: str | None = None
    custom_objects: str | None = None
    unsafe_deserialization: bool = False

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise OptionError for a value out of its declared range or contradicting options."""
        check_values(OPTIONS, dataclasses.asdict(self))
        for name in ("batches", "threads", "concurrency"):
            values = getattr(self, name)
            if not values or any(int(value) < 1 for value in values):
                raise OptionError(f"--{_FLAGS.get(name, name)} takes integers >= 1 separated by "
                                  f"commas; received "
                                  f"{','.join(map(str, values)) if values else 'nothing'}")
        if any(protocol not in PROTOCOLS for protocol in self.protocols) or not self.protocols:
            raise OptionError(f"--protocol takes {' and / or '.join(PROTOCOLS)}; received "
                              f"{','.join(self.protocols)!r}")
        if self.target_kind == "adb" and not self.benchmark_binary:
            raise OptionError("--target adb needs --benchmark-binary PATH: TFLite's benchmark_model "
                              "built for the device (bazel build -c opt --config=android_arm64 "
                              "//tensorflow/lite/tools/benchmark:benchmark_model)")
        if max(self.concurrency) > 1 and self.target_kind != "triton":
            raise OptionError("--concurrency above 1 is a load test for --target triton://HOST:PORT; "
                              "local runtimes are measured one call at a time")
        if self.compare_batching and self.target_kind != "triton":
            raise OptionError("--compare-batching compares a model served with and without dynamic "
                              "batching; it needs --target triton://HOST:PORT")
        self.timing  # validates the timing fields
        check_runtime_options(self.runtime_values(None))

    @property
    def target_kind(self) -> str:
        target = self.target.lower()
        if target == "local":
            return "local"
        if target.split("://", 1)[0] in ("triton", "http", "grpc") and "://" in target:
            return "triton"
        if target == "adb" or target.startswith("adb:"):
            return "adb"
        raise OptionError(f"unknown --target {self.target!r}; expected one of: {', '.join(TARGETS)}")

    @property
    def timing(self) -> TimingConfig:
        return TimingConfig(warmup_runs=self.warmup_runs, warmup_seconds=self.warmup_seconds,
                            min_runs=self.min_runs, min_seconds=self.min_seconds,
                            max_windows=self.max_windows,
                            stability_tolerance=self.stability_tolerance)

    def runtime_values(self, threads: int | None) -> dict:
        """The values a runtime may take its declared options from (each takes only its own)."""
        names = declared_options()
        values = {name: getattr(self, name) for name in names if name in self.field_names()}
        return {**values, **self.runtime_options, "num_threads": threads}

    @classmethod
    def from_options(cls, options: dict) -> "BenchConfig":
        """Build from keyword options; lists may be given as "1,8,32" strings.

        A keyword that is no field but an option some runtime declares goes to
        ``runtime_options``, so ``bench(..., my_runtime_option=2)`` works as a field would.
        """
        values = dict(options)
        declared = declared_options()
        extra = dict(values.pop("runtime_options", None) or {})
        for name in list(values):
            if name not in cls.field_names() and name in declared:
                extra[name] = values.pop(name)
        for name in list(extra):
            if name in cls.field_names():  # a runtime option that is a field: one place for it
                values[name] = extra.pop(name)
        values["runtime_options"] = extra
        if values.get("preprocess") is not None:
            values["preprocess"] = preprocess_text(values["preprocess"])
        if values.get("custom_objects") is not None:
            values["custom_objects"] = str(values["custom_objects"])
        for name in LISTS:
            if isinstance(values.get(name), (str, int)):
                values[name] = parse_int_list(values[name], _FLAGS.get(name, name))
            if values.get(name) is not None:
                values[name] = tuple(int(value) for value in values[name])
        for name in ("protocols", "fail_if", "include"):
            if isinstance(values.get(name), str):
                values[name] = tuple(part.strip() for part in values[name].split(",") if part.strip()) \
                    if name != "fail_if" else (values[name],)
            elif values.get(name) is not None:
                values[name] = tuple(values[name])
        return super().from_options(values)

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}


def check_runtime_options(values: dict) -> None:
    """OptionError for a runtime option no registered runtime declares, or one out of range."""
    declared = declared_options()
    unknown = sorted(name for name in values if name not in declared)
    if unknown:
        raise OptionError(f"unknown runtime option(s) {', '.join(unknown)}; the registered runtimes "
                          f"declare: {', '.join(sorted(declared))}")
    check_values(declared.values(), values)


def parse_int_list(text, name: str) -> tuple[int, ...]:
    """``"1,8,32"`` -> ``(1, 8, 32)``; OptionError naming the option otherwise."""
    if isinstance(text, int):
        return (text,)
    try:
        values = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError as error:
        raise OptionError(f"--{name.replace('_', '-')} takes integers separated by commas, e.g. "
                          f"1,8,32; received {text!r}") from error
    if not values:
        raise OptionError(f"--{name.replace('_', '-')} is empty; expected e.g. 1,8,32")
    return values
