"""The runtime interface: what every runtime declares, and the five things it does.

A runtime runs one exported artifact (a file, or a model served at a URL) on float32, model-ready
batches. It is one class, registered once in :data:`edgekit.runtimes.RUNTIMES`, that declares as
class attributes:

* ``name``: its registry key, and the ``runtime`` of a benchmark row ("litert");
* ``format``: the kind of artifact it runs, the ``format`` of a benchmark row ("tflite");
* ``suffixes``: the file suffixes it runs (".tflite",); :meth:`Runtime.accepts` says yes to them;
* ``options``: the :class:`edgekit.options.Option` it honours in :meth:`Runtime.load`
  (``num_threads``, LiteRT's ``xnnpack``, ...), so a benchmark checks and passes them without
  knowing the runtime;
* ``libraries``: the distributions whose versions say what ran it (:meth:`Runtime.versions`);
* ``modules``: what :meth:`Runtime.import_library` imports up front, so that the timed load is the
  model's, not the library's import.

and does: :meth:`Runtime.load` (a classmethod), :meth:`Runtime.run`, :meth:`Runtime.describe`,
:meth:`Runtime.prepared_call` (one inference with its inputs already set: what a benchmark
times) and :meth:`Runtime.close`. Nothing outside a runtime touches its private state.

Runtimes of your own plug in the same way: a module that defines the class and registers it,
named in the ``EDGEKIT_PLUGINS`` environment variable or an ``edgekit.plugins`` entry point
(:func:`edgekit.registry.load_plugins`), so that ``edgekit bench`` and each of its worker
processes load it; its declared options become ``edgekit bench`` flags.

Example:
    >>> class NumpyLinear(Runtime):
    ...     name, format, suffixes = "numpylinear", "numpylinear", (".npl",)
    ...     @classmethod
    ...     def load(cls, path, num_threads=None): ...
    ...     def run(self, x, batch_size=256): ...
    ...     def describe(self): ...
    >>> RUNTIMES.register(NumpyLinear.name)(NumpyLinear)
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from edgekit.options import Option, check_values

NUM_THREADS = Option("num_threads", int, None, "threads the runtime may use (None: its own choice)",
                     minimum=1, example="1", cli=False)  # edgekit bench sets it from --threads


class Runtime:
    """Base class of every runtime (see the module docstring for what a runtime declares).

    Subclasses implement :meth:`load`, :meth:`run` and :meth:`describe`; :meth:`prepared_call`,
    :meth:`close`, :attr:`input_shape` and :attr:`input_dtype` have working defaults.
    """

    name: ClassVar[str] = ""
    format: ClassVar[str] = ""
    suffixes: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[tuple[Option, ...]] = (NUM_THREADS,)
    libraries: ClassVar[tuple[str, ...]] = ()
    modules: ClassVar[tuple[str, ...]] = ()

    # --- what a runtime declares ------------------------------------------------------------
    @classmethod
    def accepts(cls, path: str | os.PathLike) -> bool:
        """True when this runtime runs ``path`` (by default: its suffix is one of ``suffixes``)."""
        return Path(path).suffix.lower() in cls.suffixes

    @classmethod
    def option_values(cls, values: Mapping[str, Any]) -> dict:
        """The values of the options this runtime declares, checked (others, and None, left out).

        Raises:
            OptionError: for a declared option whose value is out of its range or choices.
        """
        chosen = {option.name: values[option.name] for option in cls.options
                  if values.get(option.name) is not None}
        check_values(cls.options, chosen)
        return chosen

    @classmethod
    def versions(cls) -> dict[str, str | None]:
        """``{distribution: version}`` of the libraries it runs on (None: not installed)."""
        found = {}
        for distribution in cls.libraries:
            try:
                found[distribution] = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                found[distribution] = None
        return found

    @classmethod
    def import_library(cls) -> None:
        """Import the runtime's library now (a benchmark times this apart from the load)."""
        for module in cls.modules:
            importlib.import_module(module)

    # --- what a runtime does ----------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, **options) -> "Runtime":
        """Open ``path`` with ``options`` (the declared ones); ModelError when it cannot."""
        raise NotImplementedError(f"runtime {cls.name!r} does not implement load(path, **options)")

    @classmethod
    def open(cls, path: str | os.PathLike, values: Mapping[str, Any] | None = None) -> "Runtime":
        """:meth:`load` with the options of ``values`` this runtime declares (a flat config's
        values, e.g. a benchmark's); the others are left out."""
        return cls.load(path, **cls.option_values(values or {}))

    def run(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Float32 outputs ``(N, classes)`` for float32 model-ready samples ``(N, *input_shape)``."""
        raise NotImplementedError(f"runtime {self.name!r} does not implement run(x)")

    def describe(self) -> dict:
        """``{"runtime", "input": {name, shape (-1: any), dtype, quantization}, "output": {...}}``
        and whatever else says how it runs (threads, delegates, versions)."""
        raise NotImplementedError(f"runtime {self.name!r} does not implement describe()")

    def prepared_call(self, batch: np.ndarray) -> tuple[Callable[[], object], str]:
        """A zero-argument call running one inference on ``batch``, and what it times.

        The default runs :meth:`run` (input conversion included); a runtime that can set its
        inputs once and time the bare inference overrides it.
        """
        batch = np.asarray(batch, dtype=np.float32)
        return (lambda: self.run(batch, batch_size=len(batch))), "runtime.run(batch)"

    def close(self) -> None:
        """Release what the runtime holds (a connection, a session); the default holds nothing."""

    @property
    def input_shape(self) -> tuple:
        """One sample's shape (without the batch axis)."""
        return tuple(int(size) for size in self.describe()["input"]["shape"][1:])

    @property
    def input_dtype(self) -> str:
        return str(self.describe()["input"]["dtype"])

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
