"""The export stage's flat configuration, built from the options every registered format declares.

Its fields are ``to`` (the registered formats), the options every export takes
(:mod:`edgekit.export.common_options`) and each format's own, in the order the formats were
registered. The CLI's options, the checks and the README's option table come from the same
declarations, so a format registered later (a plug-in) gets all of them.

Example:
    >>> config = ExportConfig.from_options({"to": "onnx,triton", "onnx_int8": "u8s8"})
    >>> config.to, config.max_batch_size
    (('onnx', 'triton'), 32)
"""

from __future__ import annotations

from typing import Any

from edgekit.errors import OptionError
from edgekit.export.common_options import CHECK_OPTIONS, DATA_OPTIONS, ListOption
from edgekit.export.formats import FORMATS
from edgekit.options import Option, check_values, markdown_table

# Which fidelity thresholds a precision is held to: quantized weights or activations of any
# kind are judged as int8.
THRESHOLD_CLASS = {"fp32": "fp32", "fp16": "fp16", "dynamic": "int8", "int8": "int8",
                   "int16x8": "int8"}


def to_option() -> ListOption:
    """``--to``: the formats registered now, all of them by default."""
    names = tuple(FORMATS.names())
    return ListOption("to", str, ",".join(names),
                      "the formats to export (" + "; ".join(f"{f.name}: {f.summary}"
                                                            for f in FORMATS.formats()) + ")",
                      choices=names, noun="format", example="onnx,triton")


def option_groups() -> list[tuple[str, tuple[Option, ...]]]:
    """``(owner, options)``: the stage's (owner ""), then each registered format's."""
    return [("", (to_option(), *DATA_OPTIONS)),
            *[(export_format.name, export_format.options) for export_format in FORMATS.formats()],
            ("", CHECK_OPTIONS)]


def declared_options() -> dict[str, Option]:
    """Every export option, name -> declaration, in the config's field order."""
    return {option.name: option for _, options in option_groups() for option in options}


def option_table() -> str:
    """The README's table of ``edgekit export``'s options (``tests/test_docs.py`` compares)."""
    owners = {option.name: owner for owner, options in option_groups() for option in options}
    return markdown_table(declared_options().values(), owners=owners)


class ExportConfig:
    """Everything that decides what ``edgekit export`` writes and how it is checked.

    One attribute per declared option (:func:`declared_options`), its default when not given.
    A None default means "decided from the model folder" (see each option's help): e.g.
    ``triton_precision`` None serves fp32, or int8 for a quantization-aware model;
    ``calibration_samples`` / ``seed`` None take the folder's own, so ONNX int8 calibrates on the
    very samples TFLite int8 did.

    Raises:
        OptionError: for an option no format declares, or a list of a non-number.
    """

    def __init__(self, **values: Any):
        declared = declared_options()
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise OptionError(f"unknown export option(s) {', '.join(unknown)}; "
                              f"expected some of: {', '.join(declared)}")
        self._declared = declared
        for name, option in declared.items():
            value = values.get(name, option.default)
            parse = getattr(option, "parse", None)  # ListOption, PathOption
            setattr(self, name, parse(value) if parse is not None else value)

    @classmethod
    def field_names(cls) -> list[str]:
        return list(declared_options())

    @classmethod
    def from_options(cls, options: dict) -> "ExportConfig":
        """A checked config from plain options (the CLI's strings, or Python values)."""
        config = cls(**options)
        config.validate()
        return config

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._declared}

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in self.values().items()}

    def replace(self, **overrides: Any) -> "ExportConfig":
        return ExportConfig(**{**self.values(), **overrides})

    def validate(self) -> None:
        """Raise OptionError for a value out of range or options that contradict each other."""
        check_values(self._declared.values(), self.values())
        for export_format in FORMATS.formats():
            if export_format.validate is not None:
                export_format.validate(self)

    def to_cli_args(self, formats: tuple | None = None) -> list[str]:
        """The ``edgekit export`` options that reproduce this configuration (defaults left out)."""
        args = []
        for name, option in self._declared.items():
            if name == "to":
                args += option.cli_value(formats if formats is not None else self.to)
                continue
            value = getattr(self, name)
            default = option.parse(option.default) if hasattr(option, "parse") else option.default
            if value != default:
                args += option.cli_value(value)
        return args

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExportConfig) and self.values() == other.values()

    def __repr__(self) -> str:
        given = ", ".join(f"{name}={value!r}" for name, value in self.values().items()
                          if value != getattr(ExportConfig(), name))
        return f"ExportConfig({given})"
