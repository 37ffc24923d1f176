"""The export stage's flat configuration, shared by the CLI, the Python API and the manifest."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from edgekit.errors import OptionError

FORMATS = ("tflite", "onnx", "triton", "mobile")
TFLITE_PRECISIONS = ("fp32", "dynamic", "fp16", "int8", "int16x8")
ONNX_PRECISIONS = ("fp32", "fp16", "int8")
INSTANCE_KINDS = ("cpu", "gpu")
DEFAULT_CALIBRATION_SAMPLES = 500

# Which fidelity thresholds a precision is held to: quantized weights or activations of any
# kind are judged as int8.
THRESHOLD_CLASS = {"fp32": "fp32", "fp16": "fp16", "dynamic": "int8", "int8": "int8",
                   "int16x8": "int8"}


@dataclass
class ExportConfig:
    """Everything that decides what ``edgekit export`` writes and how it is checked.

    ``tflite_precisions`` None means fp32 plus the precision the model folder's compress recipe
    produced (that file is reused, not converted again). ``triton_precision`` None means fp32,
    or int8 for a quantization-aware model (whose ONNX graph is int8 QDQ). ``mobile_precision``
    None means the recipe's precision, or fp32. ``samples`` None compares on the whole test split;
    ``calibration_samples`` / ``seed`` None take the model folder's own (compress's, else 500 and
    the training seed), so ONNX int8 calibrates on the very samples TFLite int8 did.
    """

    to: tuple = FORMATS
    dataset: str | None = None
    data_dir: str | None = None
    samples: int | None = None
    calibration_samples: int | None = None
    seed: int | None = None
    opset: int = 17
    onnx_precisions: tuple = ONNX_PRECISIONS
    tflite_precisions: tuple | None = None
    mobile_precision: str | None = None
    triton_repository: str = "triton_repo"
    triton_model_name: str | None = None
    triton_precision: str | None = None
    max_batch_size: int = 32
    preferred_batch_sizes: tuple = (8, 16)
    max_queue_delay_us: int = 100
    instance_count: int = 1
    instance_kind: str = "cpu"
    version_policy: str = "latest:1"
    fp32_min_agreement: float = 0.999
    fp32_max_abs_diff: float = 1e-4
    fp16_min_agreement: float = 0.995
    int8_min_agreement: float = 0.98
    preprocess: str | None = None
    custom_objects: str | None = None
    unsafe_deserialization: bool = False

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_options(cls, options: dict) -> "ExportConfig":
        unknown = sorted(set(options) - set(cls.field_names()))
        if unknown:
            raise OptionError(
                f"unknown export option(s) {', '.join(unknown)}; "
                f"expected some of: {', '.join(cls.field_names())}"
            )
        values = dict(options)
        for name in ("to", "onnx_precisions", "tflite_precisions", "preferred_batch_sizes"):
            if isinstance(values.get(name), str):
                values[name] = split_list(values[name])
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        if "preferred_batch_sizes" in values:
            values["preferred_batch_sizes"] = _integers("preferred_batch_sizes",
                                                        values["preferred_batch_sizes"])
        config = cls(**values)
        config.validate()
        return config

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in values.items()}

    def validate(self) -> None:
        """Raise OptionError for a value out of range or options that contradict each other."""
        if not self.to:
            raise OptionError(f"--to names no format; expected some of: {', '.join(FORMATS)}")
        _choices("--to", self.to, FORMATS)
        _choices("--onnx-precisions", self.onnx_precisions, ONNX_PRECISIONS)
        if self.tflite_precisions is not None:
            _choices("--tflite-precisions", self.tflite_precisions, TFLITE_PRECISIONS)
        if self.mobile_precision is not None:
            _choices("--mobile-precision", (self.mobile_precision,), TFLITE_PRECISIONS)
        if self.triton_precision is not None:
            _choices("--triton-precision", (self.triton_precision,), ONNX_PRECISIONS)
        _choices("--instance-kind", (self.instance_kind,), INSTANCE_KINDS)
        for name in ("samples", "calibration_samples", "seed"):
            minimum = 0 if name == "seed" else 1
            if getattr(self, name) is not None:
                _at_least(name, getattr(self, name), minimum)
        _at_least("max_batch_size", self.max_batch_size, 0)
        _at_least("max_queue_delay_us", self.max_queue_delay_us, 0)
        _at_least("instance_count", self.instance_count, 1)
        for size in self.preferred_batch_sizes:
            _at_least("preferred_batch_sizes", size, 1)
            if self.max_batch_size and size > self.max_batch_size:
                raise OptionError(
                    f"preferred batch size {size} exceeds --max-batch-size "
                    f"{self.max_batch_size}; received --preferred-batch-sizes "
                    f"{','.join(map(str, self.preferred_batch_sizes))}. Lower them or raise "
                    "--max-batch-size"
                )
        for name in ("fp32_min_agreement", "fp16_min_agreement", "int8_min_agreement"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise OptionError(
                    f"{name} is a share of samples in [0, 1]; received {value!r}. "
                    f"Example: --{name.replace('_', '-')} 0.99"
                )
        if not isinstance(self.fp32_max_abs_diff, (int, float)) or self.fp32_max_abs_diff < 0:
            raise OptionError(f"fp32_max_abs_diff must be >= 0; received {self.fp32_max_abs_diff!r}")
        from edgekit.formats.triton import parse_version_policy

        parse_version_policy(self.version_policy)

    def to_cli_args(self, formats: tuple | None = None) -> list[str]:
        """The ``edgekit export`` options that reproduce this configuration (defaults left out)."""
        defaults = ExportConfig()
        args = []
        for f in fields(self):
            value = getattr(self, f.name) if f.name != "to" or formats is None else formats
            if value == getattr(defaults, f.name) and f.name != "to":
                continue
            if value is None:
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, tuple):
                args += [flag, ",".join(str(item) for item in value)]
            else:
                args += [flag, str(value)]
        return args


def split_list(text: str) -> tuple[str, ...]:
    """``"tflite, onnx"`` -> ``("tflite", "onnx")``."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _integers(name: str, values) -> tuple[int, ...]:
    try:
        return tuple(int(value) for value in values)
    except (TypeError, ValueError):
        raise OptionError(
            f"{name} takes whole numbers; received {','.join(map(str, values))!r}. "
            f"Example: --{name.replace('_', '-')} 8,16"
        ) from None


def _choices(flag: str, values, allowed: tuple[str, ...]) -> None:
    for value in values:
        if value not in allowed:
            raise OptionError(
                f"unknown value {value!r} for {flag}; expected one of: {', '.join(allowed)}"
            )


def _at_least(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise OptionError(
            f"{name} must be an integer >= {minimum}; received {value!r}. "
            f"Pass e.g. --{name.replace('_', '-')} {max(minimum, 1)}"
        )
