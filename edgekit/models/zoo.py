"""Build a zoo model by name, with its options checked against the builder's signature.

A builder's keyword-only arguments are its config: their names are the option names, their
defaults the defaults and their annotations (``int``, ``float``, ``bool``, ``str`` or
``X | None``) the types. Options given as strings (``"0.5"``, from a ``--option key=value`` on the
command line) are converted to that type, so the CLI and a recipe file build the same config.
"""

from __future__ import annotations

import inspect
import math
import numbers
import types
import typing
from typing import Any

from edgekit.errors import ModelError, OptionError
from edgekit.models.base import MODELS, sample_kind

_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}
_NONE_WORDS = {"none", "null", "auto", ""}


def model_names() -> list[str]:
    """Return the names of every model in the zoo, sorted.

    Example:
        >>> model_names()
        ['cnn', 'ds_cnn', 'lstm', 'mlp', 'mobilenet_v2', 'resnet8']
    """
    return MODELS.names()


def model_options(name: str) -> dict[str, Any]:
    """Return a model's options and their defaults, ``{option: default}``.

    A default of ``None`` means "chosen from the input shape" (e.g. mobilenet_v2's input_size).

    Raises:
        UnknownNameError: if ``name`` is not a zoo model.

    Example:
        >>> model_options("mlp")
        {'hidden_units': 128, 'dropout': 0.2}
    """
    return {option: parameter.default for option, parameter in _option_parameters(name).items()}


def build_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    options: dict[str, Any] | None = None,
):
    """Build an untrained zoo model for samples of ``input_shape`` and ``num_classes`` classes.

    The model is a functional tf-keras (Keras 2) model with one float32 input named ``"input"``
    and one float32 softmax output named ``"probabilities"`` of shape ``(None, num_classes)``.
    Build it after setting any mixed-precision global policy: layers pick their dtype then.

    Args:
        name: a zoo model name, see :func:`model_names` (``"cnn"`` is the default elsewhere).
        input_shape: one sample's shape without the batch axis: ``(H, W, C)`` or ``(T, F)``.
        num_classes: number of classes, at least 2.
        options: option -> value, see :func:`model_options`; missing options take defaults.
            String values are converted to the option's type.

    Returns:
        The ``tf_keras.Model``, not compiled.

    Raises:
        UnknownNameError: if ``name`` is not a zoo model.
        OptionError: for an unknown option, a value of the wrong type or out of range, or
            ``num_classes < 2``.
        ModelError: for a sample shape that is not 2-D or 3-D positive integers.

    Example:
        >>> model = build_model("cnn", (28, 28, 1), 10, {"filters": 16})
        >>> model.output_shape
        (None, 10)
    """
    builder = MODELS.get(name)
    parameters = _option_parameters(name)
    given = dict(options or {})
    unknown = [option for option in given if option not in parameters]
    if unknown:
        known = ", ".join(parameters) or "(none)"
        raise OptionError(
            f"unknown option {unknown[0]!r} for model {name!r}; expected one of: {known}"
        )
    hints = typing.get_type_hints(builder)
    checked = {
        option: _coerce(name, option, value, hints[option], parameters[option].default)
        for option, value in given.items()
    }
    shape = _check_input_shape(input_shape)
    _check_num_classes(num_classes)
    try:
        return builder(shape, int(num_classes), **checked)
    except OptionError as error:
        raise OptionError(f"model {name!r}: {error}") from error


def _option_parameters(name: str) -> dict[str, inspect.Parameter]:
    builder = MODELS.get(name)
    return {
        option: parameter
        for option, parameter in inspect.signature(builder).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _check_input_shape(input_shape) -> tuple[int, ...]:
    try:
        dimensions = tuple(input_shape)
    except TypeError as error:
        raise ModelError(
            f"input_shape={input_shape!r} is not a shape; expected a tuple such as (28, 28, 1) "
            f"or (49, 10)"
        ) from error
    if not all(_is_integer(size) and size > 0 for size in dimensions):
        raise ModelError(
            f"input_shape={dimensions!r} must hold positive integers; expected e.g. (28, 28, 1), "
            f"without the batch axis"
        )
    dimensions = tuple(int(size) for size in dimensions)
    sample_kind(dimensions)
    return dimensions


def _check_num_classes(num_classes) -> None:
    if not _is_integer(num_classes) or num_classes < 2:
        raise OptionError(
            f"num_classes={num_classes!r} is not a class count; expected an integer >= 2; "
            f"check the dataset's labels"
        )


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _coerce(model: str, option: str, value, annotation, default):
    """Return ``value`` as the annotated plain type, or raise OptionError."""
    allowed = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    if type(None) in allowed and (value is None or _is_none_word(value)):
        return None
    for kind in (kind for kind in allowed if kind is not type(None)):
        converted = _convert(value, kind)
        if converted is not _FAILED:
            return converted
    expected = " or ".join(kind.__name__ for kind in allowed).replace("NoneType", "None")
    raise OptionError(
        f"option {option}={value!r} for model {model!r} has the wrong type; expected {expected}; "
        f"pass e.g. the default, {option}={default!r}"
    )


_FAILED = object()


def _convert(value, kind):
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
            return value.strip().lower() in _TRUE_WORDS
        return _FAILED
    if isinstance(value, bool):  # True is an int in Python, never a size or a rate here
        return _FAILED
    if kind is int:
        if _is_integer(value):
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                return _FAILED
        return _FAILED
    if kind is float:
        if isinstance(value, numbers.Real):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                return _FAILED
        else:
            return _FAILED
        return number if math.isfinite(number) else _FAILED
    if kind is str:
        return value if isinstance(value, str) else _FAILED
    return value if isinstance(value, kind) else _FAILED


def _is_union(annotation) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _is_none_word(value) -> bool:
    return isinstance(value, str) and value.strip().lower() in _NONE_WORDS
