"""Runtimes that run an exported model on float batches, behind one interface.

Each runtime is a :class:`edgekit.runtimes.base.Runtime` registered in :data:`RUNTIMES` (keras,
keras3, litert, onnxruntime, triton): ``load(path, **options)``, ``run(x)``, ``describe()``,
``prepared_call(batch)``, ``close()``, and what it declares (the artifact format and file
suffixes it runs, the options it honours, its libraries' versions). :func:`runtime_for` finds
the runtime of a file. Importing this package loads no runtime library.

A runtime of your own is one module that defines the class and registers it::

    RUNTIMES.register(MyRuntime.name)(MyRuntime)

named in the ``EDGEKIT_PLUGINS`` environment variable (module names or ``.py`` files, separated
by commas) or in an ``edgekit.plugins`` entry point (:func:`edgekit.registry.load_plugins`), e.g.
``EDGEKIT_PLUGINS=my_runtime.py edgekit bench model.myformat --dataset digits``: ``edgekit bench``
and each of its worker processes load it, and its declared options become ``edgekit bench``
flags.
"""

from __future__ import annotations

import os

from edgekit.errors import OptionError
from edgekit.options import Option
from edgekit.registry import PLUGINS_VARIABLE, Registry
from edgekit.runtimes.base import Runtime
from edgekit.runtimes.keras import KerasModel
from edgekit.runtimes.keras3 import Keras3Model
from edgekit.runtimes.litert import LiteRTModel
from edgekit.runtimes.onnxruntime import OnnxRuntimeModel
from edgekit.runtimes.triton import TritonModel

RUNTIMES: Registry[type[Runtime]] = Registry("runtime")
for _runtime in (KerasModel, Keras3Model, LiteRTModel, OnnxRuntimeModel, TritonModel):
    RUNTIMES.register(_runtime.name)(_runtime)

__all__ = ["RUNTIMES", "Keras3Model", "KerasModel", "LiteRTModel", "OnnxRuntimeModel", "Runtime",
           "TritonModel", "declared_options", "known_suffixes", "runtime_for", "runtime_module"]


def runtime_for(path: str | os.PathLike) -> type[Runtime]:
    """The registered runtime that runs ``path`` (the first by name whose ``accepts`` says yes).

    Raises:
        OptionError: when no registered runtime runs it, naming the suffixes that run.
    """
    for name in RUNTIMES:
        runtime = RUNTIMES.get(name)
        if runtime.accepts(path):
            return runtime
    raise OptionError(
        f"no runtime runs {str(path)!r}; expected a SavedModel folder or a file ending in "
        f"{', '.join(known_suffixes())} (runtimes: {', '.join(RUNTIMES.names())}). A runtime of "
        f"your own plugs in through {PLUGINS_VARIABLE}=my_runtime.py")


def known_suffixes() -> list[str]:
    """Every file suffix a registered runtime runs, in name order."""
    found: list[str] = []
    for name in RUNTIMES:
        found += [suffix for suffix in RUNTIMES.get(name).suffixes if suffix not in found]
    return found


def declared_options() -> dict[str, Option]:
    """``{name: Option}`` of every option some registered runtime honours (first declaration)."""
    found: dict[str, Option] = {}
    for name in RUNTIMES:
        for option in RUNTIMES.get(name).options:
            found.setdefault(option.name, option)
    return found


def runtime_module(name: str) -> str | None:
    """The module another process imports to find runtime ``name`` when loading the plug-ins
    does not register it: None for a built-in runtime, one from a plug-in ``.py`` file, or a
    class defined in ``__main__`` (which no other process can import)."""
    module = RUNTIMES.get(name).__module__
    if module.startswith(("edgekit.", "edgekit_plugin_")) or module == "__main__":
        return None
    return module
