"""Declared options: a technique, format or runtime says what it takes, once, in its own module.

An :class:`Option` has a name, a type, a default, a range or choices and a help text. From a
module's declarations come the flat config's fields and their checks (:func:`check_values`),
the CLI's click options (:func:`click_options`) and the README's option tables
(:func:`markdown_table`), so none of them is written by hand a second time.

Example:
    >>> CLUSTER = Option("cluster", int, None, "weight clusters per layer", minimum=2,
    ...                  example="16")
    >>> CLUSTER.check(1)
    Traceback (most recent call last):
    edgekit.errors.OptionError: --cluster takes weight clusters per layer, an integer >= 2; ...
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import click

from edgekit.errors import OptionError

_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "a flag (true/false)"}
# How a declared option's value reaches the command line (click is imported by the CLI only).
_CLICK_PATHS = {"folder": {"file_okay": False}, "file": {"dir_okay": False}}


@dataclass(frozen=True)
class Option:
    """One declared option.

    Args:
        name: the config field (``prune_structure``); the CLI flag is ``--prune-structure``.
        type: ``bool`` (a flag), ``int``, ``float``, ``str`` (or ``dict``, set from Python only).
        default: the value when the option is not given (``None``: not given).
        help: what it does, in a few words (the CLI help and the README table).
        choices: the allowed values, if it is a choice.
        minimum, maximum: an inclusive range; ``above`` makes ``minimum`` exclusive, ``below``
            makes ``maximum`` exclusive.
        example: a value for the "Example: --flag VALUE" hint of an error message.
        cli: False for an option the CLI does not show (set from Python only, or a flag the
            command adds itself).
        label: how an error names the option: ``"flag"`` (``--cluster takes weight clusters
            per layer, an integer >= 2; received 1``) or ``"field"`` (``finetune_epochs must be
            an integer >= 1; received 0``), for an option of a whole stage rather than of one
            technique.
        aliases: more CLI spellings (``("--lr",)``, ``("-d",)``).
        metavar: the CLI's name for the value (``SPARSITY``).
        default_text: the default in words when it is not a constant (``"the parent's"``).
        path: ``"folder"`` or ``"file"`` for an option naming one (the CLI checks its kind).
    """

    name: str
    type: type
    default: Any = None
    help: str = ""
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    below: bool = False
    example: str | None = None
    cli: bool = True
    above: bool = False
    label: str = "flag"
    aliases: tuple = ()
    metavar: str | None = None
    default_text: str | None = None
    path: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def expected(self) -> str:
        """What a valid value looks like, for messages and the README table.

        A range says the type of an integer (``an integer >= 2``) and stands alone for a number
        (``in [0, 1)``, ``> 0``).
        """
        if self.choices:
            return "one of: " + ", ".join(str(choice) for choice in self.choices)
        words = {"folder": "a folder", "file": "a file"}.get(self.path) or \
            _TYPE_WORDS.get(self.type, self.type.__name__)
        prefix = "" if self.type is float else words + " "
        if self.minimum is not None and self.maximum is not None:
            opening = "(" if self.above else "["
            closing = ")" if self.below else "]"
            return f"{prefix}in {opening}{self.minimum:g}, {self.maximum:g}{closing}"
        if self.minimum is not None:
            return f"{prefix}{'>' if self.above else '>='} {self.minimum:g}"
        if self.maximum is not None:
            return f"{prefix}{'<' if self.below else '<='} {self.maximum:g}"
        return words

    def check(self, value: Any) -> None:
        """Raise OptionError naming the option, what was received and what is expected."""
        if value is None or (self.type is bool and value is False):
            return
        if self._has_type(value) and self._in_range(value):
            return
        named = self.flag if self.label == "flag" else self.name
        hint = f". Example: {self.flag} {self.example}" if self.example else ""
        if self.choices and self._has_type(value):
            raise OptionError(f"unknown {named} {value!r}; {'expected ' + self.expected()}{hint}")
        if self.label == "flag":
            raise OptionError(f"{named} takes {self.help + ', ' if self.help else ''}"
                              f"{self.expected()}; received {value!r}{hint}")
        raise OptionError(f"{named} must be {self.expected()}; received {value!r}{hint}")

    def _has_type(self, value: Any) -> bool:
        if self.type is bool:
            return isinstance(value, bool)
        if isinstance(value, bool):
            return False
        if self.type is int:
            return isinstance(value, numbers.Integral)
        if self.type is float:
            return isinstance(value, numbers.Real)
        return isinstance(value, self.type)

    def _in_range(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if self.minimum is not None and (value <= self.minimum if self.above else value < self.minimum):
            return False
        if self.maximum is not None and (value >= self.maximum if self.below else value > self.maximum):
            return False
        return True

    def cli_value(self, value: Any) -> list[str]:
        """The command-line words that give ``value`` (none for the default or an unset flag)."""
        if value is None or value is False:
            return []
        if value is True:
            return [self.flag]
        return [self.flag, f"{value:g}" if isinstance(value, float) else str(value)]

    def default_words(self) -> str | None:
        """The default for help texts and tables (None when there is nothing to say)."""
        if self.default_text is not None:
            return self.default_text
        if self.type is bool or self.default is None:
            return None
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)

    def sentence(self) -> str:
        """The help as a sentence (capitalised, with its full stop), for help texts and tables."""
        text = self.help.strip()
        if not text:
            return ""
        return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")

    def click_help(self) -> str:
        """The help text of the CLI option: what it does, then its range and default."""
        notes = []
        if not self.choices and (self.minimum is not None or self.maximum is not None):
            notes.append(self.expected())
        default = self.default_words()
        if default is not None:
            notes.append(f"default {default}")
        return f"{self.sentence()}{' [' + '; '.join(notes) + ']' if notes else ''}"

    def click_parameter(self):
        """A ``click.Option`` for this declaration (the type and range are checked by
        :meth:`check`, so a bad value gets edgekit's one-line message, not click's)."""
        declarations = [self.flag, *self.aliases, self.name]
        if self.type is bool:
            return click.Option(declarations, is_flag=True, default=None, help=self.click_help())
        if self.choices and self.type is str:
            click_type = click.Choice([str(choice) for choice in self.choices])
        elif self.path in _CLICK_PATHS:
            click_type = click.Path(**_CLICK_PATHS[self.path])
        else:
            click_type = {int: int, float: float}.get(self.type, str)
        return click.Option(declarations, type=click_type, default=None, metavar=self.metavar,
                            help=self.click_help())

    def click_option(self) -> Callable:
        """A click option decorator for this declaration (see :meth:`click_parameter`)."""
        parameter = self.click_parameter()

        def decorate(command):
            if hasattr(command, "params") and not callable(command.params):
                command.params.append(parameter)  # a click.Command already
            else:
                command.__dict__.setdefault("__click_params__", []).append(parameter)
            return command

        return decorate


def check_values(options: Iterable[Option], values: Mapping[str, Any]) -> None:
    """Check every declared option's value in ``values`` (missing ones are not checked)."""
    for option in options:
        if option.name in values:
            option.check(values[option.name])


def click_options(options: Iterable[Option]) -> Callable:
    """One decorator adding every declared CLI option, in declaration order."""
    declared = [option for option in options if option.cli]

    def decorate(command):
        for option in reversed(declared):
            command = option.click_option()(command)
        return command

    return decorate


def markdown_table(options: Iterable[Option], owner: str = "",
                   owners: Mapping[str, str] | None = None) -> str:
    """The README table of some declared options: flag, values, default, what it does.

    Args:
        options: the declarations, in the order of the table.
        owner: a word after every flag (the technique, format or runtime that declares it).
        owners: an owner per option name, for a table that gathers several declarers.
    """
    rows = ["| Option | Values | Default | What it does |", "| --- | --- | --- | --- |"]
    for option in options:
        if not option.cli:
            continue
        values = "flag" if option.type is bool else option.expected()
        if option.type is float and not option.choices and values != "a number":
            values = f"a number {values}"
        default = option.default_words()
        if option.type is bool:
            default = "off"
        elif default is None or option.default_text is not None:
            default = default or "—"  # words, not a value to type
        else:
            default = f"`{default}`"
        who = (owners or {}).get(option.name, owner)
        flags = ", ".join(f"`{flag}`" for flag in (option.flag, *option.aliases))
        rows.append(f"| {flags}{' (' + who + ')' if who else ''} | {values} | {default} | "
                    f"{option.sentence()} |")
    return "\n".join(rows)
