"""Flat run configurations of plain types, shared by the CLI, the Python API and manifests."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field, fields

from edgekit.errors import OptionError

OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
DISTRIBUTIONS = ("auto", "none", "mirrored", "multi-worker")


class FlatConfig:
    """What every flat stage config shares: field names, building from options, a plain dict.

    Subclasses are dataclasses of plain types with a ``validate()`` and a ``kind`` ("training",
    "compression", ...) used in error messages.
    """

    kind = "stage"

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_options(cls, options: dict):
        unknown = sorted(set(options) - set(cls.field_names()))
        if unknown:
            raise OptionError(
                f"unknown {cls.kind} option(s) {', '.join(unknown)}; "
                f"expected some of: {', '.join(cls.field_names())}"
            )
        config = cls(**options)
        config.validate()
        return config

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise OptionError for a value out of range; subclasses check their fields."""


@dataclass
class TrainConfig(FlatConfig):
    """Everything that decides what ``edgekit train`` computes.

    ``model`` is a zoo name or the path of a user's .keras / .h5 / SavedModel to keep training.
    ``batch_size`` is the global batch (split across replicas under ``tf.distribute``).
    ``early_stopping`` is the patience in epochs on validation loss (0 turns it off); the best
    weights are restored at the end either way.
    """

    model: str = "cnn"
    dataset: str = "digits"
    data_dir: str | None = None
    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    schedule: str = "constant"
    weight_decay: float = 0.0
    seed: int = 0
    validation_fraction: float = 0.1
    augment: bool = False
    early_stopping: int = 5
    precision: str = "auto"
    distribute: str = "auto"
    tensorboard: bool = False
    model_options: dict = field(default_factory=dict)
    preprocess: str | None = None
    custom_objects: str | None = None
    unsafe_deserialization: bool = False

    kind = "training"

    def validate(self) -> None:
        """Raise OptionError for a value out of range or options that contradict each other."""
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("distribute", self.distribute, DISTRIBUTIONS)
        _at_least("epochs", self.epochs, 1)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("early_stopping", self.early_stopping, 0)
        if not self.learning_rate > 0:
            raise OptionError(f"learning_rate must be > 0; received {self.learning_rate}")
        if self.weight_decay < 0:
            raise OptionError(f"weight_decay must be >= 0; received {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise OptionError(f"momentum must be in [0, 1); received {self.momentum}")
        if not 0 < self.validation_fraction <= 0.5:
            raise OptionError(
                f"validation_fraction must be in (0, 0.5]; received {self.validation_fraction}"
            )
        if self.momentum != 0.9 and self.optimizer != "sgd":
            raise OptionError(
                f"--momentum applies to --optimizer sgd only; received optimizer "
                f"{self.optimizer!r} with momentum {self.momentum}. Drop --momentum or use sgd"
            )
        if (self.custom_objects or self.unsafe_deserialization) and not is_model_file(self.model):
            flag = "--custom-objects" if self.custom_objects else "--unsafe-deserialization"
            raise OptionError(
                f"{flag} applies to a model file (--model my_model.keras); received the zoo model "
                f"{self.model!r}, which edgekit builds itself. Drop {flag}")
        if self.model_options and is_model_file(self.model):
            raise OptionError(
                f"--model-option configures zoo models; received a model file {self.model!r}. "
                "Drop --model-option, or name a zoo model"
            )

    def to_cli_args(self) -> list[str]:
        """The ``edgekit train`` arguments that reproduce this configuration."""
        args = []
        for f in fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            if f.name == "model_options":
                for key, option in sorted(value.items()):
                    args += ["--model-option", f"{key}={option}"]
            elif isinstance(value, bool):
                if value:
                    args.append(flag)
            elif value is not None:
                args += [flag, str(value)]
        return args


def is_model_file(model: str) -> bool:
    """True when ``model`` names a file or folder rather than a zoo model."""
    return any(sep in model for sep in ("/", "\\")) or model.endswith((".keras", ".h5", ".hdf5"))


def shell_command(program: str, args: list[str]) -> str:
    return shlex.join([program, *args])


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise OptionError(f"unknown {name} {value!r}; expected one of: {', '.join(allowed)}")


def _at_least(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise OptionError(f"{name} must be an integer >= {minimum}; received {value!r}")
