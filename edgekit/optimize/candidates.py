"""The candidates a search measures, built from the compression technique registry.

Every technique registered in :data:`edgekit.compress.stages.TECHNIQUES` contributes candidates,
so a newly registered technique joins the search:

- a technique class may declare ``search_candidates``: a list of option dicts for
  ``edgekit.compress`` (``[{"round_weights": 3, "int8": True}]``), each one candidate;
- the built-in techniques' candidates are the table :data:`SEARCH_SETTINGS` below (a
  ``search_candidates`` attribute on the class wins over the table);
- a technique with neither is not searched; :func:`build_candidates` says so in its notes.

A candidate is what ``edgekit compress`` would be asked for (its options), the runtime whose
artifact is measured (``litert``: the .tflite; ``onnxruntime``: the .onnx ``edgekit export``
writes for that precision) and the stage it belongs to, which decides the order of the search:
post-training candidates (seconds), then the per-layer float fallback of int8, then the
fine-tuning candidates (minutes). ``fp32`` (no technique) is a candidate too: the reference
every other candidate has to beat.

Example:
    >>> [candidate.name for candidate in build_candidates(("litert",))[0]][:3]
    ['tflite-fp32', 'tflite-fp16', 'tflite-dynamic']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edgekit.compress import TECHNIQUES, CompressConfig
from edgekit.errors import EdgekitError, OptionError

POST_TRAINING, LAYER_FALLBACK, FINE_TUNING = "post-training", "layer-fallback", "fine-tuning"
STAGES = (POST_TRAINING, LAYER_FALLBACK, FINE_TUNING)
FORMAT_OF_RUNTIME = {"litert": "tflite", "onnxruntime": "onnx"}
# The precisions edgekit export writes for ONNX Runtime; dynamic range and 16x8 are TFLite's own.
ONNX_PRECISIONS = ("fp32", "fp16", "int8")
FALLBACK_SUFFIX = "-fallback"


@dataclass(frozen=True)
class SearchSetting:
    """One built-in candidate: compress options and its optimistic gzip-size factor.

    ``size_factor`` bounds, from below, the gzipped size of the result against the post-training
    candidate of the same precision (pruning to 80% zeros can at best leave 20% of it; 16
    clusters at best 4 of 8 bits): what dominance skipping compares with the best candidate so
    far when the objective is size. None: no bound, the candidate is always measured.
    """

    options: dict
    size_factor: float | None = None


# The built-in techniques' candidates (issue 14): post-training quantization in every mode,
# pruning (50%, 80%, 2:4) with QAT, clustering (16, 32) with int8, QAT alone.
SEARCH_SETTINGS: dict[str, tuple[SearchSetting, ...]] = {
    "ptq": (SearchSetting({}), SearchSetting({"fp16": True}), SearchSetting({"dynamic": True}),
            SearchSetting({"int8": True}), SearchSetting({"int16x8": True})),
    "prune": (SearchSetting({"prune": 0.5, "qat": True}, 0.5),
              SearchSetting({"prune": 0.8, "qat": True}, 0.2),
              SearchSetting({"prune_structure": "2:4", "qat": True}, 0.5)),
    "cluster": (SearchSetting({"cluster": 16, "int8": True}, math.log2(16) / 8),
                SearchSetting({"cluster": 32, "int8": True}, math.log2(32) / 8)),
    "qat": (SearchSetting({"qat": True}, 1.0),),
}


@dataclass(frozen=True)
class Candidate:
    """One artifact the search may measure.

    Attributes:
        name: unique in a search: ``<format>-<recipe>`` (``tflite-int8``, ``onnx-fp16``,
            ``tflite-prune80-qat``), ``tflite-int8-fallback`` for the per-layer fallback.
        runtime: ``litert`` or ``onnxruntime``.
        options: the ``edgekit.compress`` options that make it (``{}``: fp32, no technique).
        technique: the registered technique it came from (``ptq``, ``prune``, ...).
        stage: post-training, layer-fallback or fine-tuning.
        precision: the artifact's precision (fp32, fp16, dynamic, int8, int16x8).
        recipe: compress's recipe (``int8``, ``prune80-qat``), ``fp32`` for no technique.
        size_factor: see :class:`SearchSetting`.
    """

    name: str
    runtime: str
    options: dict = field(hash=False)
    technique: str
    stage: str
    precision: str
    recipe: str
    size_factor: float | None = None

    @property
    def format(self) -> str:
        return FORMAT_OF_RUNTIME[self.runtime]

    @property
    def fallback(self) -> bool:
        return self.stage == LAYER_FALLBACK

    def compress_args(self) -> list[str]:
        """The ``edgekit compress`` flags of its options (none for fp32)."""
        return option_flags(self.options)


def option_flags(options: dict) -> list[str]:
    """``{"prune": 0.8, "qat": True}`` -> ``["--prune", "0.8", "--qat"]`` (compress's flags)."""
    flags = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        flags += [flag] if value is True else [flag, f"{value:g}" if isinstance(value, float)
                                               else str(value)]
    return flags


def settings_of(name: str, technique_class) -> tuple[list[SearchSetting], str | None]:
    """A technique's search settings and, when it has none, why it is not searched."""
    declared = getattr(technique_class, "search_candidates", None)
    if declared is not None:
        if not isinstance(declared, (list, tuple)) or not all(isinstance(item, dict)
                                                               for item in declared):
            raise OptionError(
                f"compression technique {name!r} declares search_candidates "
                f"{declared!r}; expected a list of option dicts for edgekit.compress, e.g. "
                "[{'int8': True}]. Fix the technique's declaration")
        return [SearchSetting(dict(item)) for item in declared], None
    if name in SEARCH_SETTINGS:
        return list(SEARCH_SETTINGS[name]), None
    return [], (f"technique {name!r} declares no search_candidates (a list of edgekit.compress "
                "option dicts); it is not searched")


def build_candidates(runtimes: tuple[str, ...],
                     registry=TECHNIQUES) -> tuple[list[Candidate], list[str]]:
    """Every candidate of the registered techniques for ``runtimes``, in search order.

    Returns:
        ``(candidates, notes)``: post-training ones first, then the per-layer fallback of int8
        (one per runtime), then the fine-tuning ones; notes name techniques left out.

    Raises:
        OptionError: for a technique whose declared candidates compress would refuse.
    """
    found: dict[str, Candidate] = {}
    notes = []
    for name in registry.names():
        settings, note = settings_of(name, registry.get(name))
        if note:
            notes.append(note)
        for setting in settings:
            for runtime in runtimes:
                candidate = _candidate(name, setting, runtime)
                if candidate is not None and candidate.name not in found:
                    found[candidate.name] = candidate
    for runtime in runtimes:  # int8 with its most sensitive layers kept in float
        base = found.get(f"{FORMAT_OF_RUNTIME[runtime]}-int8")
        if base is not None:
            found[base.name + FALLBACK_SUFFIX] = Candidate(
                name=base.name + FALLBACK_SUFFIX, runtime=runtime, options=dict(base.options),
                technique=base.technique, stage=LAYER_FALLBACK, precision="int8",
                recipe="int8+float-layers")
    ordered = sorted(found.values(), key=lambda candidate: (STAGES.index(candidate.stage),
                                                            runtimes.index(candidate.runtime)))
    return ordered, notes


def select(candidates: list[Candidate], names: list[str] | None) -> list[Candidate]:
    """The candidates named (all when ``names`` is None); OptionError for an unknown name."""
    if names is None:
        return candidates
    known = [candidate.name for candidate in candidates]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise OptionError(f"unknown candidate {unknown[0]!r} in --candidates; expected some of: "
                          f"{', '.join(known)}")
    return [candidate for candidate in candidates if candidate.name in names]


def _candidate(technique: str, setting: SearchSetting, runtime: str) -> Candidate | None:
    precision, recipe, fine_tunes = _describe(technique, setting.options)
    if runtime == "onnxruntime" and precision not in ONNX_PRECISIONS:
        return None
    return Candidate(name=f"{FORMAT_OF_RUNTIME[runtime]}-{recipe}", runtime=runtime,
                     options=dict(setting.options), technique=technique,
                     stage=FINE_TUNING if fine_tunes else POST_TRAINING, precision=precision,
                     recipe=recipe, size_factor=setting.size_factor)


def _describe(technique: str, options: dict) -> tuple[str, str, bool]:
    """(precision, recipe, fine-tunes) of compress options, as compress itself reads them."""
    if not options:
        return "fp32", "fp32", False
    try:
        config = CompressConfig.from_options({"model": "MODEL", **options})
    except EdgekitError as error:
        raise OptionError(f"compression technique {technique!r} declares the search candidate "
                          f"{options!r}, which edgekit compress refuses: {error}. Fix the "
                          "technique's search_candidates") from error
    return config.tflite_mode, config.recipe(), bool(config.fine_tunes)
