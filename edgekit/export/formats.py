"""The export formats' registry: where TFLite, ONNX, Triton, the mobile bundle and plug-ins join.

A format is one :class:`ExportFormat`: its name, its declared options, the formats it is built
from, and the function that writes it. Registering one is all it takes for ``edgekit export``
to accept it in ``--to``, show its options in ``--help``, check them, write it in its turn and
record it in the manifest.

Example:
    >>> from edgekit.export.formats import ExportFormat, register_format
    >>> def write_npz(job):
    ...     path = job.staging / "weights.npz"
    ...     numpy.savez(path, *job.source.model.get_weights())
    ...     job.add({"name": "npz", "format": "npz", "precision": "fp32"}, file=path)
    >>> register_format(ExportFormat("npz", "the weights as .npz", write_npz,
    ...                              options=(Option("npz_round", int, None, "decimals"),)))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from edgekit.export.common_options import COMMON_OPTIONS
from edgekit.options import Option
from edgekit.registry import Registry


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: the ``--to`` word and the manifest's ``format``.
        summary: what it writes, in a few words (``--to``'s help, the README).
        write: ``write(job)`` writes its files into ``job.staging`` and records each artifact
            with ``job.add`` (:class:`edgekit.export.job.ExportJob`).
        options: its declared options; their names must be new to the export config.
        needs: the formats whose files it is built from (Triton serves an ONNX file). When
            they are exported too they are written first; the writer asks for the file it needs
            (``ensure_onnx``) either way.
        writes_outside: it writes outside the export folder (Triton's repository), so it runs
            after every format that does not, and a failure before it leaves that place as it was.
        validate: ``validate(config)`` checks its options against each other (OptionError).
        preflight: ``preflight(config, source)`` checks, before anything is written, what
            its options say about the model (e.g. a repository inside the model folder).
    """

    name: str
    summary: str
    write: Callable
    options: tuple[Option, ...] = ()
    needs: tuple[str, ...] = ()
    writes_outside: bool = False
    validate: Callable | None = None
    preflight: Callable | None = None


class FormatRegistry(Registry[ExportFormat]):
    """The formats in the order they were registered (the order ``--to`` lists them).

    Registering checks what a format declares: its options must be new to the export config,
    and the formats it needs registered before it.
    """

    def register(self, name: str) -> Callable[[ExportFormat], ExportFormat]:
        add = super().register(name)

        def decorator(export_format: ExportFormat) -> ExportFormat:
            self._check(name, export_format)
            return add(export_format)

        return decorator

    def unregister(self, name: str) -> ExportFormat:
        needed_by = [entry.name for entry in self._entries.values() if name in entry.needs]
        if needed_by:
            raise ValueError(f"export format {name!r} is needed by {', '.join(needed_by)}; "
                             "unregister those first")
        return super().unregister(name)

    def names(self) -> list[str]:
        return list(self._entries)

    def formats(self) -> list[ExportFormat]:
        return list(self._entries.values())

    def ordered(self, names: Iterable[str]) -> list[ExportFormat]:
        """The formats of ``names`` in the order they are written: each after those it needs,
        those that write outside the export folder last, registration order otherwise."""
        wanted = [name for name in self._entries if name in set(names)]
        result: list[str] = []

        def visit(name: str) -> None:
            if name in result:
                return
            for needed in self._entries[name].needs:
                if needed in wanted:
                    visit(needed)
            result.append(name)

        for name in sorted(wanted, key=lambda name: self._entries[name].writes_outside):
            visit(name)
        return [self._entries[name] for name in result]

    def _check(self, name: str, export_format: ExportFormat) -> None:
        if name != export_format.name:
            raise ValueError(f"export format {export_format.name!r} registered as {name!r}")
        taken = {option.name: "export" for option in COMMON_OPTIONS}
        taken["to"] = "export"
        for registered in self._entries.values():
            taken.update({option.name: registered.name for option in registered.options})
        for option in export_format.options:
            if option.name in taken:
                raise ValueError(f"export format {name!r} declares option {option.name!r}, "
                                 f"which {taken[option.name]!r} declares already")
        unknown = [needed for needed in export_format.needs if needed not in self._entries]
        if unknown:
            raise ValueError(f"export format {name!r} needs {', '.join(unknown)}, which is not "
                             "registered; register it first")


FORMATS = FormatRegistry("export format")


def register_format(export_format: ExportFormat) -> ExportFormat:
    """Add a format to ``edgekit export`` (see :class:`ExportFormat`); returns it.

    ``with FORMATS.registered(fmt.name, fmt):`` adds one for a ``with`` block only (a test's).
    """
    return FORMATS.register(export_format.name)(export_format)
