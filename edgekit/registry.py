"""Registries: where a model, dataset, technique, format or runtime plugs in by name."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable, Generic, Iterator, TypeVar

from edgekit.errors import OptionError, UnknownNameError, short_reason

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object table whose lookups fail with the list of known names.

    Example:
        >>> models = Registry("model")
        >>> @models.register("mlp")
        ... def build_mlp(...): ...
        >>> models.get("mlp")
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError as error:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}"
            ) from error

    def unregister(self, name: str) -> T:
        """Remove an entry (a plug-in's or a test's) and return it."""
        entry = self.get(name)
        del self._entries[name]
        return entry

    @contextlib.contextmanager
    def registered(self, name: str, obj: T) -> Iterator[T]:
        """Register ``obj`` as ``name`` for the duration of a ``with`` block.

        Example:
            >>> with TECHNIQUES.registered("round", RoundWeights):
            ...     compress("models/cnn-digits", round_weights=3)
        """
        self.register(name)(obj)
        try:
            yield obj
        finally:
            if self._entries.get(name) is obj:
                del self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# Plug-ins: modules that register their own techniques, formats or runtimes when imported.
PLUGINS_VARIABLE = "EDGEKIT_PLUGINS"
PLUGINS_ENTRY_POINTS = "edgekit.plugins"
_loaded_plugins: set[str] = set()


def load_plugins() -> list[str]:
    """Import the plug-in modules named in ``EDGEKIT_PLUGINS`` and the ``edgekit.plugins`` entry
    points, each once; importing a plug-in registers what it declares.

    ``EDGEKIT_PLUGINS`` holds comma-separated module names (``my_package.my_technique``) or
    paths of ``.py`` files; an installed package names its modules in the ``edgekit.plugins``
    entry-point group (``[project.entry-points."edgekit.plugins"] mine = "my_package.mine"``).
    The stages call this before they read their registries, so a plug-in's options reach the
    config, the CLI and the recipe without any other change.

    Returns:
        The plug-ins this call loaded.

    Raises:
        OptionError: for a plug-in that cannot be found or fails while it is imported.
    """
    wanted = [(spec.strip(), PLUGINS_VARIABLE)
              for spec in os.environ.get(PLUGINS_VARIABLE, "").split(",") if spec.strip()]
    if PLUGINS_ENTRY_POINTS not in _loaded_plugins:
        _loaded_plugins.add(PLUGINS_ENTRY_POINTS)
        wanted += [(entry.value, f"entry point {entry.name!r} of {PLUGINS_ENTRY_POINTS}")
                   for entry in importlib.metadata.entry_points(group=PLUGINS_ENTRY_POINTS)]
    loaded = []
    for spec, origin in wanted:
        if spec in _loaded_plugins:
            continue
        _loaded_plugins.add(spec)  # once, even when it fails: the error is reported once
        try:
            _import_plugin(spec)
        except Exception as error:
            raise OptionError(
                f"plug-in {spec!r} (from {origin}) could not be loaded: {short_reason(error)}; "
                f"fix it, or remove it from {PLUGINS_VARIABLE}") from error
        loaded.append(spec)
    return loaded


def _import_plugin(spec: str) -> None:
    if spec.endswith(".py"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        name = f"edgekit_plugin_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return
    importlib.import_module(spec.split(":", 1)[0])
