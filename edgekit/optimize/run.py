"""``edgekit.optimize``: the smallest or fastest artifact within an accuracy budget, by measurement."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgekit import manifest as manifest_io
from edgekit import outputs
from edgekit.config import shell_command
from edgekit.data.sources import dataset_inputs
from edgekit.errors import RunFailedError
from edgekit.models.loading import plain_loading_options
from edgekit.optimize import records
from edgekit.optimize.artifacts import Workbench
from edgekit.compress.run import ConversionCheckError
from edgekit.optimize.candidates import FINE_TUNING, build_candidates, select
from edgekit.optimize.config import OPTIONS, OptimizeConfig
from edgekit.optimize.plots import write_plots
from edgekit.optimize.search import Lab, Search, SearchResult
from edgekit.optimize.source import Source, resolve_source
from edgekit.optimize.winner import (OPTIMIZE_FOLDER, build_winner, export_onnx,
                                     finish_manifest)

CANDIDATES_FILE = "candidates.json"


@dataclass
class OptimizeResult:
    """What a search measured and, when a candidate was within budget, the folder it wrote.

    Attributes:
        output_dir: the winner's model folder (None when no candidate was within budget).
        search: every candidate's outcome (:class:`edgekit.optimize.search.SearchResult`).
        document: the candidates.json document.
        files: name -> path of what was written (candidates, pareto, sensitivity plots).
        warnings: lines worth a user's attention (a final artifact off its search figure...).
    """

    output_dir: Path | None
    search: SearchResult
    document: dict
    files: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    config: OptimizeConfig | None = None

    @property
    def candidates(self) -> list[dict]:
        return self.document["candidates"]

    @property
    def chosen(self) -> dict | None:
        return next((item for item in self.candidates if item["chosen"]), None)

    def table(self) -> str:
        return records.terminal_table(self.search)


class NoCandidateWithinBudgetError(RunFailedError):
    """No candidate kept the accuracy within budget (exit code 1); ``result`` holds the search."""

    def __init__(self, message: str, result: OptimizeResult):
        super().__init__(message)
        self.result = result


def default_output_dir(model, root: str | os.PathLike = "models") -> Path:
    """``models/<parent>-optimized``."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser()
        name = path.resolve().name if path.is_dir() else path.stem
    else:
        name = str(getattr(model, "name", "model"))
    return Path(root) / f"{name}-optimized"


def optimize(model, output_dir: str | os.PathLike | None = None, force: bool = False,
             progress: bool = True, **options) -> OptimizeResult:
    """Search the registered techniques for the fastest (or smallest) artifact within budget.

    Candidates come from the technique registry (:mod:`edgekit.optimize.candidates`): fp32,
    fp16, dynamic range, int8, int16x8, int8 with its most sensitive layers in float, and,
    unless ``finetune=False``, pruning (50%, 80%, 2:4) with QAT, clustering (16, 32) with int8
    and QAT alone, for LiteRT and / or ONNX Runtime. Each is scored on the validation split
    against the parent's Keras model (the budget), timed by the bench harness in a process of its
    own, cheap before expensive (:mod:`edgekit.optimize.search`). The winner is written as a
    compress model folder with ``optimize/candidates.json`` and the plots; its test accuracy is
    measured once, on that folder.

    Args:
        model: a model folder from ``edgekit train`` / ``compress``, a .keras / .h5 /
            SavedModel path (with ``dataset``), or a live Keras model (with ``dataset``).
        output_dir: the winner's folder (default ``models/<parent>-optimized``).
        force: replace an existing output folder (only one edgekit wrote).
        progress: print one line per candidate as it is measured.
        **options: fields of :class:`edgekit.optimize.config.OptimizeConfig`: ``max_drop``
            (required), ``objective``, ``runtime``, ``threads``, ``time_budget`` (minutes),
            ``finetune``, ``candidates``, ...

    Returns:
        An :class:`OptimizeResult`.

    Raises:
        OptionError: (exit 2) a budget below zero, an unknown objective, runtime or candidate.
        NoCandidateWithinBudgetError: (exit 1) nothing within budget; the closest are named and
            ``error.result`` holds every measurement. Nothing is written.
        EdgekitError: a model or dataset that cannot be used, an output that exists.

    Example:
        >>> result = edgekit.optimize("models/cnn-digits", max_drop=0.5, finetune=False)
        >>> result.chosen["name"], result.chosen["p50_ms"], result.output_dir
    """
    started = time.monotonic()
    options = dict(options)
    plain_loading_options(options)
    shown = str(model) if isinstance(model, (str, os.PathLike)) else \
        f"<in-memory model {getattr(model, 'name', '?')}>"
    config = OptimizeConfig.from_options({"model": shown, **options})
    candidates, notes = build_candidates(config.runtimes)
    candidates = select(candidates, config.candidate_names())
    final = Path(output_dir) if output_dir is not None else default_output_dir(model)
    given_path = model if isinstance(model, (str, os.PathLike)) else None
    outputs.check_output(final, force, ("compress",),
                         inputs=(given_path, *dataset_inputs(config.dataset, config.data_dir)))
    say = (lambda line: print(line, flush=True)) if progress else None
    with outputs.OutputLock(final):
        source = resolve_source(model, config)
        outputs.check_output_path(final, source.inputs())
        if say:
            say(source.dataset.contract.line())
        work = Path(tempfile.mkdtemp(prefix="edgekit-optimize-"))
        try:
            lab = Lab(Workbench(source, config, work), config)
            search = Search(config, candidates, lab, started=started, say=say).run()
            return _finish(source, config, search, lab, final, notes)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _finish(source: Source, config: OptimizeConfig, search: SearchResult, lab: Lab, final: Path,
            notes: list) -> OptimizeResult:
    parent = _parent_record(source)
    staging = outputs.staging_path(final)
    warnings: list[str] = []
    try:
        winner = None
        for chosen in search.ranked():
            search.choose(chosen)
            try:
                winner = _build(source, config, search, lab, chosen, staging, final)
                break
            except ConversionCheckError as error:
                # Fine-tuning is not bit-for-bit repeatable: the folder's own compress run can
                # lose what the search's run kept. The next candidate within budget wins.
                if chosen.candidate.stage != FINE_TUNING:
                    raise
                chosen.status = f"failed: its model folder's edgekit compress run: {error}"
                chosen.within_budget = False
                warnings.append(f"{chosen.name} was within budget in the search, but edgekit "
                                f"compress refused its model folder's run ({error}); the next "
                                "candidate within budget is written instead")
        if winner is None:
            search.choose(None)
            document = records.document(search, config, parent, notes, lab.fallbacks, None)
            result = OptimizeResult(output_dir=None, search=search, document=document,
                                    config=config, warnings=warnings)
            raise NoCandidateWithinBudgetError(_nothing_within_budget(search, config), result)
        chosen.accuracy_test = winner.accuracy_test
        final_drop = (search.reference_accuracy - winner.accuracy_val) * 100
        if final_drop > config.max_drop + 1e-9:
            warnings.append(f"the winner's final artifact drops {final_drop:.2f} points on "
                            f"validation (the search measured {chosen.drop_points:.2f}): "
                            "fine-tuning is not bit-for-bit repeatable; check it with edgekit "
                            "bench")
        winner_record = {"folder": str(final), "command": winner.command,
                         "accuracy_val": winner.accuracy_val, "accuracy_test": winner.accuracy_test}
        document = records.document(search, config, parent, notes, lab.fallbacks, winner_record)
        folder = staging / OPTIMIZE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        with outputs.writing(folder / CANDIDATES_FILE):
            (folder / CANDIDATES_FILE).write_text(json.dumps(document, indent=1,
                                                             default=_plain) + "\n")
        plots = write_plots(search, lab.fallbacks, folder, source.name)
        finish_manifest(winner, _section(search, config, chosen, winner, plots, final,
                                         lab.fallbacks.get(chosen.name), source, warnings))
        outputs.publish(staging, final)
    except BaseException:
        outputs.discard(staging)
        raise
    files = {"candidates": final / OPTIMIZE_FOLDER / CANDIDATES_FILE,
             **{name: final / OPTIMIZE_FOLDER / path.name for name, path in plots.items()}}
    if winner.onnx_precision is not None:
        problem = export_onnx(final, winner.onnx_precision, winner.onnx_fallback)
        if problem:
            warnings.append(problem)
    return OptimizeResult(output_dir=final, search=search, document=document, files=files,
                          warnings=warnings, config=config)


def _build(source, config, search, lab, chosen, staging, final):
    twin = search.outcome("tflite-int8-fallback")
    return build_winner(source, config, chosen, staging, final, lab.fallbacks.get(chosen.name),
                        lab.workbench,
                        (twin, lab.fallbacks.get("tflite-int8-fallback")) if twin else None)


def time_budget_line(search: SearchResult, config) -> str:
    """The line that says the time budget stopped the search, and what it left out."""
    return (f"optimize: the time budget of {config.time_budget:g} minute(s) stopped the search; "
            f"not measured: {', '.join(search.skipped_for_time)}")


def _section(search, config, chosen, winner, plots, final, fallback, source, warnings) -> dict:
    """The manifest's ``optimize`` section: why this folder won, and how to get it again."""
    return {
        "chosen": chosen.name,
        "recipe": chosen.candidate.recipe,
        "runtime": chosen.candidate.runtime,
        "objective": config.objective,
        "max_drop_points": config.max_drop,
        "split_that_decided": "val",
        "reference_accuracy_val": search.reference_accuracy,
        "accuracy_val": winner.accuracy_val,
        "drop_points_val": round((search.reference_accuracy - winner.accuracy_val) * 100, 4),
        "accuracy_test": winner.accuracy_test,
        "p50_ms": chosen.value("p50_ms"),
        "p99_ms": chosen.value("p99_ms"),
        "threads": config.threads,
        "float_layers": (fallback or {}).get("float_layers"),
        "candidates": f"{OPTIMIZE_FOLDER}/{CANDIDATES_FILE}",
        "plots": {name: f"{OPTIMIZE_FOLDER}/{path.name}" for name, path in plots.items()},
        "search_command": search_command(source, config, final),
        "stopped_by_time_budget": search.stopped_by_time_budget,
        "seconds": search.seconds,
        "warnings": list(warnings),
        "note": _note(chosen),
    }


def _note(chosen) -> str | None:
    candidate = chosen.candidate
    if candidate.fallback and candidate.format == "tflite":
        return "model.tflite keeps float_layers in float (edgekit compress --int8 --float-layers)"
    if candidate.precision == "fp32" and candidate.format == "tflite":
        return "model.tflite is the fp32 conversion (compress ran with --dynamic for the rest)"
    if candidate.format == "onnx":
        return "the winner is the ONNX file edgekit export wrote into export/ (see command)"
    return None


def search_command(source: Source, config: OptimizeConfig, final: Path) -> str | None:
    """The ``edgekit optimize`` command that repeats this search (None for a live model)."""
    if not source.is_path:
        return None
    values = config.to_dict()
    args = ["optimize", str(source.given)]
    for option in OPTIONS:
        value = values.get(option.name)
        if option.cli and value != option.default:
            args += option.cli_value(value)
    if not config.finetune:
        args.append("--no-finetune")
    for name in ("preprocess", "custom_objects"):
        if values.get(name):
            args += ["--" + name.replace("_", "-"), str(values[name])]
    if config.unsafe_deserialization:
        args.append("--unsafe-deserialization")
    return shell_command("edgekit", [*args, "--output", str(final)])


def _parent_record(source: Source) -> dict:
    entry = {"path": str(source.given) if source.is_path else source.name, "name": source.name,
             "dataset": source.spec, "seed": source.seed,
             "validation_fraction": source.validation_fraction,
             "input_contract": source.dataset.contract.to_dict()}
    if source.model_file is not None and Path(source.model_file).is_file():
        entry["sha256"] = manifest_io.sha256_file(source.model_file)
    return entry


def _nothing_within_budget(search: SearchResult, config: OptimizeConfig) -> str:
    closest = records.closest_lines(search)
    hints = ["raise --max-drop"]
    if not config.finetune:
        hints.append("allow fine-tuning (drop --no-finetune)")
    if search.stopped_by_time_budget:
        hints.append("give a longer --time-budget")
    shown = "; ".join(closest) if closest else "none could be measured"
    return (f"no candidate keeps the validation accuracy within {config.max_drop:g} points of "
            f"the parent's {search.reference_accuracy:.2%}; the closest: {shown}. "
            f"{', or '.join(hints).capitalize()}")


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} to candidates.json")
