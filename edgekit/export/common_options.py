"""The options every export takes, and the option kinds it needs beyond :mod:`edgekit.options`.

Each format declares its own options in its module (:mod:`edgekit.export.onnx`...); the ones
here belong to the stage: what data to check and calibrate on, and the fidelity thresholds.
:class:`edgekit.export.config.ExportConfig` is built from both.

The kinds keep the messages export has always given:

- :class:`ListOption`: a comma-separated list, ``--to onnx,triton`` -> ``("onnx", "triton")``;
- :class:`Choice`: one of some words, "unknown value 'tpu' for --instance-kind; expected ...";
- :class:`Share`: a share of samples in [0, 1] (the agreement thresholds);
- :class:`PathOption`: a path, given as a string or a ``pathlib.Path``.

``ListOption`` and ``PathOption`` also ``parse`` what they are given into the config's value.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from typing import Any

import click

from edgekit.errors import OptionError
from edgekit.options import Option


def split_list(text: str) -> tuple[str, ...]:
    """``"tflite, onnx"`` -> ``("tflite", "onnx")``."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


@dataclass(frozen=True)
class ListOption(Option):
    """A comma-separated list; ``type`` is its items' type, ``choices`` / ``minimum`` theirs.

    The default is written as the command line gives it (``"fp32,fp16,int8"``), so help texts
    and the README table show it that way; :meth:`parse` makes it a tuple.
    """

    noun: str = "value"
    metavar: str | None = "A,B"

    def parse(self, value: Any) -> tuple | None:
        """``"8,16"`` or ``[8, 16]`` -> ``(8, 16)`` (items of ``type``); None stays None."""
        if value is None:
            return None
        items = split_list(value) if isinstance(value, str) else tuple(value)
        if self.type is not int:
            return items
        try:
            return tuple(int(item) for item in items)
        except (TypeError, ValueError) as error:
            raise OptionError(f"{self.name} takes whole numbers; received "
                              f"{','.join(map(str, items))!r}. Example: {self.flag} "
                              f"{self.example or '8,16'}") from error

    def expected(self) -> str:
        if self.choices:
            return "a comma-separated list, some of: " + ", ".join(map(str, self.choices))
        return "a comma-separated list of " + Option.expected(self).replace("an integer", "integers")

    def check(self, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, tuple) or not value:
            raise OptionError(f"{self.flag} names no {self.noun}; expected {self.expected()}; "
                              f"received {value!r}")
        for item in value:
            if self.choices and item not in self.choices:
                raise OptionError(f"unknown value {item!r} for {self.flag}; expected one of: "
                                  f"{', '.join(map(str, self.choices))}")
            if self.minimum is not None and (isinstance(item, bool) or not isinstance(
                    item, numbers.Integral) or item < self.minimum):
                raise OptionError(f"{self.name} must be an integer >= {self.minimum:g}; received "
                                  f"{item!r}. Example: {self.flag} {self.example or '8,16'}")

    def cli_value(self, value: Any) -> list[str]:
        return [] if value is None else [self.flag, ",".join(str(item) for item in value)]

    def click_help(self) -> str:
        default = self.default_words()
        return (f"{self.sentence()} [{self.expected()}"
                f"{'; default ' + default if default is not None else ''}]")

    def click_parameter(self):
        return click.Option([self.flag, *self.aliases, self.name], type=str, default=None,
                            metavar=self.metavar, help=self.click_help())


@dataclass(frozen=True)
class PathOption(Option):
    """A file or folder path: a string, or a ``pathlib.Path`` from Python (kept as a string)."""

    type: type = str
    path: str | None = "folder"

    def parse(self, value: Any) -> str | None:
        return os.fspath(value) if isinstance(value, os.PathLike) else value


@dataclass(frozen=True)
class Choice(Option):
    """One of ``choices`` (strings)."""

    type: type = str

    def check(self, value: Any) -> None:
        if value is not None and value not in self.choices:
            raise OptionError(f"unknown value {value!r} for {self.flag}; expected one of: "
                              f"{', '.join(map(str, self.choices))}")


@dataclass(frozen=True)
class Share(Option):
    """A share of samples, in [0, 1]."""

    type: type = float
    minimum: float | None = 0
    maximum: float | None = 1

    def check(self, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
            raise OptionError(f"{self.name} is a share of samples in [0, 1]; received {value!r}. "
                              f"Example: {self.flag} 0.99")


DEFAULT_CALIBRATION_SAMPLES = 500

# Before the formats' options: what to check and calibrate on.
DATA_OPTIONS = (
    Option("dataset", str, None, "the dataset for calibration and fidelity", example="digits",
           aliases=("-d",), default_text="the model folder's; required for a model file"),
    PathOption("data_dir", help="the folder holding the dataset's files (fashion_mnist / mnist)"),
    Option("samples", int, None, "compare on the first N test samples", minimum=1,
           label="field", example="200", default_text="the whole test split"),
    Option("calibration_samples", int, None, "how many samples calibrate int8", minimum=1,
           label="field", example="500",
           default_text=f"the compress recipe's, else {DEFAULT_CALIBRATION_SAMPLES}"),
    Option("seed", int, None, "the seed of the calibration samples and splits", minimum=0,
           label="field", example="0", default_text="the model folder's"),
)

# After the formats' options: the fidelity thresholds, and how the model is loaded (the CLI
# adds --preprocess / --custom-objects / --unsafe-deserialization with every command's others).
CHECK_OPTIONS = (
    Share("fp32_min_agreement", default=0.999,
          help="the top-1 agreement an fp32 artifact must reach"),
    Option("fp32_max_abs_diff", float, 1e-4,
           "the largest output difference an fp32 artifact may have", minimum=0, label="field",
           example="1e-3"),
    Share("fp16_min_agreement", default=0.995,
          help="the top-1 agreement an fp16 artifact must reach"),
    Share("int8_min_agreement", default=0.98,
          help="the top-1 agreement an int8 (or dynamic, int16x8) artifact must reach"),
    Option("preprocess", str, None, "the model's input contract (scale=S,mean=M,std=D or none)",
           cli=False),
    Option("custom_objects", str, None, "the module defining the model's custom layers",
           cli=False),
    Option("unsafe_deserialization", bool, False, "let a trusted model file run its Python code",
           cli=False),
)

COMMON_OPTIONS = (*DATA_OPTIONS, *CHECK_OPTIONS)
