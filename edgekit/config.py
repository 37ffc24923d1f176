"""Flat run configurations of plain types, shared by the CLI, the Python API and manifests.

Each config declares its fields as :class:`edgekit.options.Option` values; :class:`FlatConfig`
turns the declarations into the constructor, the unknown-option check, the value checks, the
plain dict a manifest stores and the command-line words that reproduce a run.
"""

from __future__ import annotations

import copy
import dataclasses
import shlex
from typing import Any

from edgekit.errors import OptionError
from edgekit.options import Option, check_values

OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
DISTRIBUTIONS = ("auto", "none", "mirrored", "multi-worker")


class FlatConfig:
    """What every flat stage config shares: declared fields, building from options, a plain dict.

    A subclass lists its fields in ``OPTIONS`` (or overrides :meth:`options` when some come from
    a registry, as compression techniques do) and gets a keyword constructor, equality,
    :meth:`to_dict`, :meth:`replace`, the unknown-option check of :meth:`from_options` and the
    declared checks in :meth:`validate`; its own ``validate()`` adds the contradictions. A
    dataclass subclass keeps its own fields and constructor, and its ``OPTIONS`` declare (some
    of) them for the checks, the CLI and the README. ``kind`` ("training", "compression", ...)
    names the config in messages.

    Example:
        >>> class SleepConfig(FlatConfig):
        ...     kind = "sleep"
        ...     OPTIONS = (Option("seconds", float, 1.0, "how long", minimum=0, label="field"),)
        >>> SleepConfig.from_options({"seconds": -1})
        Traceback (most recent call last):
        edgekit.errors.OptionError: seconds must be >= 0; received -1
    """

    kind = "stage"
    OPTIONS: tuple[Option, ...] = ()

    def __init__(self, **values: Any):
        names = self.field_names()
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected option(s) {', '.join(unknown)}")
        defaults = {option.name: option.default for option in self.options()}
        for name in names:
            setattr(self, name, copy.deepcopy(values[name] if name in values else defaults[name]))

    @classmethod
    def options(cls) -> list[Option]:
        """The declared options, in the order of the config's fields."""
        return list(cls.OPTIONS)

    @classmethod
    def field_names(cls) -> list[str]:
        if dataclasses.is_dataclass(cls):
            return [field.name for field in dataclasses.fields(cls)]
        return [option.name for option in cls.options()]

    @classmethod
    def from_options(cls, options: dict):
        """The config of ``options`` (field -> value), checked.

        Raises:
            OptionError: for an unknown option, a value out of range or a contradiction.
        """
        names = cls.field_names()
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise OptionError(
                f"unknown {cls.kind} option(s) {', '.join(unknown)}; "
                f"expected some of: {', '.join(names)}"
            )
        config = cls(**options)
        config.validate()
        return config

    def to_dict(self) -> dict:
        return {name: copy.deepcopy(getattr(self, name)) for name in self.field_names()}

    def replace(self, **changes: Any):
        """A copy with some fields changed (not validated: call ``validate()``)."""
        return type(self)(**{**self.to_dict(), **changes})

    def validate(self) -> None:
        """Raise OptionError for a declared value of the wrong type or out of its range;
        subclasses add the options that contradict each other."""
        check_values(self.options(), self.to_dict())

    def option_args(self, skip: tuple[str, ...] = ()) -> list[str]:
        """The command-line words of every declared field with a value (see Option.cli_value)."""
        args = []
        for option in self.options():
            if option.name not in skip and option.type is not dict:
                args += option.cli_value(getattr(self, option.name))
        return args

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.to_dict().items())
        return f"{type(self).__name__}({fields})"


class TrainConfig(FlatConfig):
    """Everything that decides what ``edgekit train`` computes.

    ``model`` is a zoo name or the path of a user's .keras / .h5 / SavedModel to keep training.
    ``batch_size`` is the global batch (split across replicas under ``tf.distribute``).
    ``early_stopping`` is the patience in epochs on validation loss (0 turns it off); the best
    weights are restored at the end either way.
    """

    kind = "training"
    OPTIONS = (
        Option("model", str, "cnn", "Zoo model name (see `edgekit models`), or a .keras / .h5 / "
               "SavedModel path to keep training.", aliases=("-m",), label="field"),
        Option("dataset", str, "digits", "The dataset: digits, fashion_mnist, mnist, npz:PATH or "
               "images:DIR.", aliases=("-d",), label="field"),
        Option("data_dir", str, None, "Folder holding IDX .gz or .npz files for fashion_mnist / "
               "mnist.", path="folder", label="field"),
        Option("epochs", int, 20, "Epochs to train (with --resume: the new total).", minimum=1,
               label="field"),
        Option("batch_size", int, 32, "Global batch size.", minimum=1, label="field"),
        Option("optimizer", str, "adam", "The optimizer.", choices=OPTIMIZERS, label="field"),
        Option("learning_rate", float, 1e-3, "The learning rate.", minimum=0, above=True,
               aliases=("--lr",), label="field"),
        Option("momentum", float, 0.9, "SGD momentum (Nesterov).", minimum=0, maximum=1,
               below=True, label="field"),
        Option("schedule", str, "constant", "Learning-rate schedule.", choices=SCHEDULES,
               label="field"),
        Option("weight_decay", float, 0.0, "Decoupled weight decay.", minimum=0, label="field"),
        Option("seed", int, 0, "Seed for splits, initialisation and shuffling.", minimum=0,
               label="field"),
        Option("validation_fraction", float, 0.1, "Share of the training split held out for "
               "validation.", minimum=0, above=True, maximum=0.5, label="field"),
        Option("augment", bool, False, "Random shifts, zoom and (where the data allows) flips, "
               "at training time only.", label="field"),
        Option("early_stopping", int, 5, "Patience in epochs on validation loss; 0 turns it off.",
               minimum=0, label="field"),
        Option("precision", str, "auto", "Keras dtype policy; auto = mixed_float16 on a GPU, "
               "float32 on CPU.", choices=PRECISIONS, label="field"),
        Option("distribute", str, "auto", "The tf.distribute strategy; auto = mirrored over several "
               "GPUs, multi-worker from TF_CONFIG.", choices=DISTRIBUTIONS, label="field"),
        Option("tensorboard", bool, False, "Write TensorBoard logs to <output>/tensorboard.",
               label="field"),
        # Set on the command line by --model-option KEY=VALUE and the shared model-loading flags.
        Option("model_options", dict, {}, "Zoo model options.", cli=False, label="field"),
        Option("preprocess", str, None, "The model's input contract.", cli=False, label="field"),
        Option("custom_objects", str, None, "The module of the model's custom layers.", cli=False,
               label="field"),
        Option("unsafe_deserialization", bool, False, "Let a trusted model file run its code.",
               cli=False, label="field"),
    )

    def validate(self) -> None:
        """Raise OptionError for a value out of range or options that contradict each other."""
        super().validate()
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
        args = self.option_args(skip=("model_options",))
        for key, option in sorted(self.model_options.items()):
            args += ["--model-option", f"{key}={option}"]
        return args


def is_model_file(model: str) -> bool:
    """True when ``model`` names a file or folder rather than a zoo model."""
    return any(sep in model for sep in ("/", "\\")) or model.endswith((".keras", ".h5", ".hdf5"))


def shell_command(program: str, args: list[str]) -> str:
    return shlex.join([program, *args])
