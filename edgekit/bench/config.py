"""The benchmark's one flat config: what the CLI builds, what ``edgekit.bench`` takes, what the JSON records."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgekit.bench.engines import RuntimeOptions
from edgekit.bench.latency import TimingConfig
from edgekit.errors import OptionError

TARGETS = ("local", "triton://HOST:PORT", "adb[:SERIAL]")
# Fields whose command-line flag has another name (messages name the flag a user typed).
_FLAGS = {"batches": "batch"}
PROTOCOLS = ("http", "grpc")


@dataclass(frozen=True)
class BenchConfig:
    """Every option of a benchmark run (plain types; lists as tuples).

    Attributes:
        batches / threads / concurrency: the grid measured per artifact (concurrency > 1 is for
            the triton target).
        warmup_runs ... stability_tolerance: see :class:`edgekit.bench.latency.TimingConfig`.
        pin_cpus: CPU ids each worker is pinned to (None: no pinning).
        xnnpack: LiteRT with its XNNPACK delegate (the default) or builtin kernels only.
        ort_optimization / ort_provider: ONNX Runtime graph optimization level and provider.
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
        fail_if: gates, e.g. ("accuracy_drop>0.5", "p99_ms>2").
        timeout: seconds per artifact process before it is killed.
        include: artifact names to keep (default every one).
    """

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
        for name in ("batches", "threads", "concurrency"):
            values = getattr(self, name)
            if not values or any(int(value) < 1 for value in values):
                flag = {"batches": "--batch"}.get(name, f"--{name}")
                raise OptionError(f"{flag} takes integers >= 1 separated by commas; received "
                                  f"{','.join(map(str, values)) if values else 'nothing'}")
        if any(protocol not in PROTOCOLS for protocol in self.protocols) or not self.protocols:
            raise OptionError(f"--protocol takes {' and / or '.join(PROTOCOLS)}; received "
                              f"{','.join(self.protocols)!r}")
        if self.samples is not None and int(self.samples) < 1:
            raise OptionError(f"--samples must be >= 1; received {self.samples}")
        if self.timeout <= 0:
            raise OptionError(f"--timeout must be > 0 seconds; received {self.timeout}")
        if self.target_kind == "adb" and not self.benchmark_binary:
            raise OptionError("--target adb needs --benchmark-binary PATH: TFLite's benchmark_model "
                              "built for the device (bazel build -c opt --config=android_arm64 "
                              "//tensorflow/lite/tools/benchmark:benchmark_model)")
        if max(self.concurrency) > 1 and self.target_kind != "triton":
            raise OptionError("--concurrency above 1 is a load test for --target triton://HOST:PORT; "
                              "local runtimes are measured one call at a time")
        if self.grpc_port is not None and not 1 <= int(self.grpc_port) <= 65535:
            raise OptionError(f"--grpc-port must be in 1..65535; received {self.grpc_port}")
        if self.compare_batching and self.target_kind != "triton":
            raise OptionError("--compare-batching compares a model served with and without dynamic "
                              "batching; it needs --target triton://HOST:PORT")
        self.timing  # validates the timing fields
        self.runtime_options(None)  # validates the runtime fields

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

    def runtime_options(self, threads: int | None) -> RuntimeOptions:
        return RuntimeOptions(num_threads=threads, xnnpack=self.xnnpack,
                              ort_optimization=self.ort_optimization,
                              ort_provider=self.ort_provider,
                              custom_objects=self.custom_objects,
                              unsafe_deserialization=self.unsafe_deserialization)

    @classmethod
    def from_options(cls, options: dict) -> "BenchConfig":
        """Build from keyword options; lists may be given as "1,8,32" strings."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise OptionError(f"unknown benchmark option(s) {', '.join(unknown)}; expected some of: "
                              f"{', '.join(sorted(names))}")
        values = dict(options)
        if values.get("preprocess") is not None:
            from edgekit.data.contract import preprocess_text

            values["preprocess"] = preprocess_text(values["preprocess"])
        if values.get("custom_objects") is not None:
            values["custom_objects"] = str(values["custom_objects"])
        for name in ("batches", "threads", "concurrency", "pin_cpus"):
            if isinstance(values.get(name), (str, int)):
                values[name] = parse_int_list(values[name], _FLAGS.get(name, name))
        for name in ("protocols", "fail_if", "include"):
            if isinstance(values.get(name), str):
                values[name] = tuple(part.strip() for part in values[name].split(",") if part.strip()) \
                    if name != "fail_if" else (values[name],)
            elif values.get(name) is not None:
                values[name] = tuple(values[name])
        for name in ("batches", "threads", "concurrency", "pin_cpus"):
            if values.get(name) is not None:
                values[name] = tuple(int(value) for value in values[name])
        return cls(**values)

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}


def parse_int_list(text, name: str) -> tuple[int, ...]:
    """``"1,8,32"`` -> ``(1, 8, 32)``; OptionError naming the option otherwise."""
    if isinstance(text, int):
        return (text,)
    try:
        values = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise OptionError(f"--{name.replace('_', '-')} takes integers separated by commas, e.g. "
                          f"1,8,32; received {text!r}") from None
    if not values:
        raise OptionError(f"--{name.replace('_', '-')} is empty; expected e.g. 1,8,32")
    return values
