"""The optimizer against hand recipes (issue 14): its pick, the layer fallback, search wall time.

Usage (from the repo root):
    .venv/bin/python benchmarks/optimize_figures.py                    # all, writes RESULTS.md
    .venv/bin/python benchmarks/optimize_figures.py --no-write         # all, prints only
    .venv/bin/python benchmarks/optimize_figures.py --models cnn       # some models
    .venv/bin/python benchmarks/optimize_figures.py --full-search      # + a fine-tuning search
    .venv/bin/python benchmarks/optimize_figures.py --quick            # smoke test, prints only
    (--budgets, --objectives latency,size, --recipes, --bench-runs N, --no-sensitive,
     --sensitive-budget, --train-missing, --retrain: see --help)

Figures (issue 14):

1. **The pick against the hand recipes.** For cnn, resnet8, mobilenet_v2 and ds_cnn on
   Fashion-MNIST, at ``--max-drop`` 0.5 and 1.0: ``edgekit.optimize(parent, max_drop=B,
   finetune=False, objective="latency", runtime="litert")`` (post-training candidates only;
   the optimizer keeps no measurement between runs, so each budget is a search of its own, and
   each is timed). The hand recipes are what a user picks by hand with ``edgekit compress``:
   ``int8``, ``dynamic``, ``fp16`` and ``int16x8``, each an ``edgekit.compress(parent, ...)``
   run of its own. Then one ``edgekit.bench`` run (LiteRT, 1 thread, batch 1, latency only)
   times the optimizer's winner files and the hand recipes' files together, so the comparison
   is same-run (files with the same bytes are timed once). The optimizer decides on the
   validation split, and compress manifests record the test split only, so each hand recipe's
   validation drop is measured here against the same reference: the parent Keras model on the
   validation split the optimizer loads (``edgekit.optimize.source.resolve_source``). Test drops
   (compress manifests) are shown beside them. Target: the pick is at least as fast (latency;
   ``--objectives size``: as small, gzipped) as every hand recipe within budget on validation.
   A hand recipe slower than every pick whose scoring would take long (int16x8 runs LiteRT's
   reference kernels) is not scored on validation: it cannot change the check.
2. **The constructed sensitive model** (as tests/integration/test_optimize.py builds it: unit 0
   of the ``features`` Dense layer is dead, and ``wide_range`` reads it through a weight of 1000,
   harmless in float, fatal to per-channel int8 weights), with two convolutions in front so the
   int8 speed-up is not lost in call overhead, trained briefly on Fashion-MNIST: a post-training
   search at ``--sensitive-budget`` reports full int8's drop, the fallback's drop, the layers it
   keeps in float; the fallback (rebuilt by ``edgekit compress --int8 --float-layers`` when it is
   not the winner), full int8 and the fp32 conversion are then timed in one bench run. Target:
   fp32 p50 / fallback p50 >= 1.3x.
3. **Wall time** of a post-training-only search on cnn / Fashion-MNIST (``time.perf_counter``
   around ``edgekit.optimize``; the process has TensorFlow imported already). Target: <= 3
   minutes on 2 cores. ``--full-search`` adds one search with the fine-tuning candidates on cnn
   at the first budget (not run by default; the section says so).

Parents: the ones ``benchmarks/int8_figures.py`` trains (benchmarks/out/int8/parents/
<model>-28x28x1, Fashion-MNIST), used only when their manifest.json says a finished train run.
A missing one is reported as missed unless ``--train-missing`` (trained here with
int8_figures' epochs into benchmarks/out/optimize/parents/).

Run time (estimated from this machine's compress and search times, not measured end to end):
about 30-40 minutes on 2 shared cores; the int16x8 hand recipe is about 6 of them (compress
measures its .tflite on the 10,000 test samples through LiteRT's reference kernels, about 12 ms
a sample for cnn), ``--recipes int8,dynamic,fp16`` leaves it out.

A missed target is printed as "missed" with its reason. ``--quick`` (digits parents trained
here, 100 calibration samples, short timing) only checks that the script runs; it prints its
section and never touches RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import edgekit  # noqa: E402  (selects Keras 2 first)
from edgekit.bench import ArtifactsFailedError  # noqa: E402
from edgekit.compress.run import ConversionCheckError  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.manifest import machine, read_manifest  # noqa: E402
from edgekit.optimize import NoCandidateWithinBudgetError  # noqa: E402
from results_file import (finished_train, machine_line, relative,  # noqa: E402
                          replace_section, train_parent)

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out" / "optimize"
INT8_PARENTS = Path(__file__).resolve().parent / "out" / "int8" / "parents"
SECTION = "optimize"
HEADING = ("## Optimizer (issue 14): its pick against the hand recipes, the layer fallback, "
           "search time")

MODELS = ("cnn", "resnet8", "mobilenet_v2", "ds_cnn")
BUDGETS = (0.5, 1.0)
OBJECTIVES = ("latency", "size")
OBJECTIVE_FIELD = {"latency": "p50_ms", "size": "gzip_bytes"}
# The post-training recipes a user picks by hand with edgekit compress.
HAND_RECIPES = {"int8": {"int8": True}, "dynamic": {"dynamic": True}, "fp16": {"fp16": True},
                "int16x8": {"int16x8": True}}
# Epochs of a parent trained here (--train-missing): int8_figures.py's, so the parents match.
PARENT_EPOCHS = {"cnn": 2, "resnet8": 2, "mobilenet_v2": 2, "ds_cnn": 3}
QUICK_EPOCHS = 3
QUICK_DATASET = "digits"
QUICK_CALIBRATION = 100
QUICK_TIMING = {"warmup_runs": 2, "warmup_seconds": 0.0, "min_runs": 10, "min_seconds": 0.05,
                "max_windows": 2}
MAX_SEARCH_MINUTES = 3.0
MIN_FALLBACK_SPEEDUP = 1.3
SENSITIVE_BUDGET = 0.5
SENSITIVE_EPOCHS = (1, 15)  # Fashion-MNIST, digits (--quick)
# A hand recipe slower than every pick is not scored on validation when that would take longer
# than this (seconds, estimated from its batch-1 p50): it cannot change the check.
SKIP_SCORING_SECONDS = 20.0
THREADS = 1
TOLERANCE = 1e-9



def sha256(path) -> str | None:
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def budget_tag(budget: float) -> str:
    return f"{budget:g}".replace(".", "p")


# --------------------------------------------------------------------------------------------
# Parents.


def parent_folder(model: str, quick: bool, train_missing: bool) -> tuple[Path | None, dict]:
    """(folder, summary) of a finished train run of ``model``, or (None, {"reason": ...})."""
    if quick:
        folder = OUT / "quick" / "parents" / f"{model}-{QUICK_DATASET}"
        summary = finished_train(folder, model, QUICK_DATASET)
        if summary:
            return folder, {"reused": True, **summary}
        return train_parent(model, QUICK_DATASET, QUICK_EPOCHS, folder, QUICK_DATASET)
    candidates = [INT8_PARENTS / f"{model}-28x28x1", OUT / "parents" / f"{model}-fashion_mnist"]
    for folder in candidates:
        summary = finished_train(folder, model, "fashion_mnist")
        if summary:
            return folder, {"reused": True, **summary}
    if train_missing:
        return train_parent(model, "fashion_mnist", PARENT_EPOCHS[model], candidates[1],
                            "fashion_mnist")
    return None, {"reason": f"no finished parent: {relative(candidates[0])}/manifest.json does not "
                            "exist yet (benchmarks/int8_figures.py trains it); rerun when it "
                            "does, or pass --train-missing"}







# --------------------------------------------------------------------------------------------
# edgekit: compress (hand recipes), optimize (searches), bench (one run per model).


def run_hand(parent, work: Path, recipe: str, quick: bool, **extra) -> dict:
    """``edgekit.compress(parent, <recipe>)``: its file and the manifest's test-split row."""
    options = dict(HAND_RECIPES[recipe], **extra)
    if quick:
        options["calibration_samples"] = QUICK_CALIBRATION
    started = time.perf_counter()
    status, error = "complete", None
    try:
        result = edgekit.compress(str(parent), output_dir=work / recipe, force=True,
                                  progress=False, **options)
    except ConversionCheckError as failure:  # written all the same, marked failed
        result, status, error = failure.result, "failed", str(failure)
    except EdgekitError as failure:
        print(f"compress {recipe}: failed: {failure}", flush=True)
        return {"recipe": recipe, "status": "error", "error": str(failure)}
    rows = {row["label"]: row for row in result.manifest["comparison"]["rows"]}
    tflite = rows["compressed tflite"]
    path = Path(result.output_dir) / "model.tflite"
    found = {"recipe": recipe, "status": status, "error": error,
             "folder": relative(result.output_dir), "path": str(path), "sha256": sha256(path),
             "command": relative(result.manifest.get("command") or ""),
             "seconds": round(time.perf_counter() - started, 1),
             "parent_keras_test": rows["parent keras"]["accuracy"],
             "test_accuracy": tflite["accuracy"], "test_drop": tflite["accuracy_drop_points"],
             "bytes": tflite["bytes"], "gzip_bytes": tflite["gzip_bytes"]}
    print(json.dumps({"compress": recipe, **{key: found[key] for key in
                                             ("status", "test_drop", "bytes", "seconds")}}),
          flush=True)
    return found


def run_search(parent, output: Path, budget: float, objective: str, quick: bool,
               finetune: bool = False, **extra) -> dict:
    """One ``edgekit.optimize`` run, timed with ``time.perf_counter`` around the call."""
    options = dict(max_drop=budget, objective=objective, runtime="litert", threads=THREADS,
                   finetune=finetune, **extra)
    if quick:
        options.update(calibration_samples=QUICK_CALIBRATION, bench_options=QUICK_TIMING)
    print(f"-- optimize {relative(parent)} --max-drop {budget:g} --objective {objective}"
          f"{'' if finetune else ' --no-finetune'}", flush=True)
    started = time.perf_counter()
    error = None
    try:
        result = edgekit.optimize(str(parent), output_dir=output, force=True, progress=True,
                                  **options)
    except NoCandidateWithinBudgetError as failure:  # nothing written; the search is kept
        result, error = failure.result, str(failure)
    except EdgekitError as failure:
        wall = time.perf_counter() - started
        print(f"optimize failed after {wall:.0f} s: {failure}", flush=True)
        return {"budget": budget, "objective": objective, "finetune": finetune,
                "wall_seconds": round(wall, 1), "error": str(failure), "chosen": None,
                "candidates": []}
    wall = time.perf_counter() - started
    print(result.table(), flush=True)
    document = result.document
    chosen = result.chosen
    found = {"budget": budget, "objective": objective, "finetune": finetune,
             "output": relative(output),
             "wall_seconds": round(wall, 1), "search_seconds": document.get("seconds"),
             "error": error, "warnings": list(result.warnings),
             "reference_accuracy_val": document["budget"]["reference_accuracy_val"],
             "stopped_by_time_budget": document.get("stopped_by_time_budget"),
             "candidates": [{key: item[key] for key in
                             ("name", "recipe", "accuracy_val", "drop_points", "size_bytes",
                              "gzip_bytes", "p50_ms", "within_budget", "chosen", "status")}
                            for item in result.candidates],
             "sensitivity": {name: {key: record.get(key) for key in
                                    ("float_layers", "within_budget", "stopped", "trials")}
                             for name, record in (document.get("sensitivity") or {}).items()},
             "chosen": None}
    if chosen is not None and result.output_dir is not None:
        manifest = read_manifest(result.output_dir)
        section = manifest.get("optimize") or {}
        row = manifest["comparison"]["rows"][-1]
        path = Path(result.output_dir) / "model.tflite"
        found["chosen"] = {
            "name": chosen["name"], "recipe": chosen["recipe"],
            "search_drop_val": chosen["drop_points"], "search_p50_ms": chosen["p50_ms"],
            "drop_val": section.get("drop_points_val"), "accuracy_test": chosen["accuracy_test"],
            "test_drop": row.get("accuracy_drop_points"), "bytes": row.get("bytes"),
            "gzip_bytes": row.get("gzip_bytes"), "float_layers": section.get("float_layers"),
            "folder": relative(result.output_dir), "path": str(path), "sha256": sha256(path),
            "command": relative(manifest.get("command") or "")}
    print(f"optimize: {'chosen ' + chosen['name'] if chosen else 'nothing within budget'}; "
          f"wall time {wall:.1f} s (search {document.get('seconds')} s)", flush=True)
    return found


def bench_together(files: dict[str, Path], folder: Path, spec: str, preprocess: str | None,
                   data_dir: str | None, quick: bool, rounds: int = 1) -> dict:
    """p50 / p99 of every file in one ``edgekit.bench`` run (1 thread, batch 1, no accuracy).

    Files with the same bytes are timed once. With ``rounds`` > 1, that run is repeated (the
    files' order rotated each time) and each file's p50 / p99 is the median over the runs.
    Returns label -> {p50_ms, p99_ms, reason, timed_as, p50_per_run}, and ``_run``.
    """
    inputs = folder / "files"
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    by_sha: dict[str, Path] = {}
    timed_as: dict[str, str] = {}
    for label, path in files.items():
        if path is None or not Path(path).is_file():
            continue
        digest = sha256(path)
        if digest not in by_sha:
            by_sha[digest] = inputs / f"{label}.tflite"
            shutil.copyfile(path, by_sha[digest])
        timed_as[label] = by_sha[digest].stem
    if not by_sha:
        return {}
    options = dict(QUICK_TIMING) if quick else {}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    paths = list(by_sha.values())
    measured: dict[Path, list] = {path.resolve(): [] for path in paths}
    for index in range(rounds):
        order = paths[index % len(paths):] + paths[:index % len(paths)]
        try:
            result = edgekit.bench(*[str(path) for path in order],
                                   output_dir=folder / f"bench-run{index + 1}", dataset=spec,
                                   data_dir=data_dir, preprocess=preprocess, accuracy=False,
                                   threads=(THREADS,), batches=(1,), **options)
        except ArtifactsFailedError as failure:  # the others are measured all the same
            result = failure.result
        for row in result.artifacts:
            measured.setdefault(Path(row["path"]).resolve(), []).append(row)
    found = {}
    for label, stem in timed_as.items():
        rows = measured.get((inputs / f"{stem}.tflite").resolve()) or []
        good = [row["metrics"] for row in rows if row.get("status") == "ok"
                and (row.get("metrics") or {}).get("p50_ms") is not None]
        reason = next((row.get("reason") for row in rows if row.get("status") != "ok"), None)
        found[label] = {
            "p50_ms": float(np.median([m["p50_ms"] for m in good])) if good else None,
            "p99_ms": float(np.median([m["p99_ms"] for m in good if m.get("p99_ms") is not None]))
            if good and all(m.get("p99_ms") is not None for m in good) else None,
            "p50_per_run": [m["p50_ms"] for m in good],
            "reason": None if good else (reason or "not measured"), "timed_as": stem}
    found["_run"] = {"load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                     "seconds": round(time.perf_counter() - started, 1), "runs": rounds,
                     "files": len(by_sha),
                     "bench_json": relative(folder / "bench-run1" / "bench.json")}
    print(json.dumps({label: None if value.get("p50_ms") is None else
                      round(value["p50_ms"] * 1000, 1) for label, value in found.items()
                      if label != "_run"} | {"unit": "us p50"}), flush=True)
    return found


class ValidationScorer:
    """The validation split and reference the optimizer uses for ``parent``, and .tflite files
    scored on it through LiteRT at the search's thread count."""

    def __init__(self, parent, **extra):
        from edgekit.optimize.config import OptimizeConfig
        from edgekit.optimize.source import probabilities, resolve_source

        config = OptimizeConfig.from_options({"model": str(parent), "max_drop": 0.0,
                                              "calibration_samples": 1, **extra})
        self.source = resolve_source(str(parent), config)
        self._probabilities = probabilities
        self.x_val, self.y_val = self.source.validation()
        outputs = self.source.model.predict(self.x_val, batch_size=256, verbose=0)
        self.reference = self._accuracy(outputs)

    def _accuracy(self, outputs) -> float:
        scores = self._probabilities(outputs, self.source.from_logits)
        return float((np.asarray(scores).argmax(axis=1) == self.y_val).mean())

    def drop(self, path) -> tuple[float, float]:
        """(validation accuracy, drop in points against the parent Keras model)."""
        from edgekit.runtimes.litert import LiteRTModel

        accuracy = self._accuracy(LiteRTModel.load(path, num_threads=THREADS).run(self.x_val))
        return accuracy, round((self.reference - accuracy) * 100, 4)


# --------------------------------------------------------------------------------------------
# One model: hand recipes, searches, one bench run, validation drops, the checks.


def run_model(model: str, args) -> dict:
    print(f"== {model}", flush=True)
    started = time.time()
    parent, summary = parent_folder(model, args.quick, args.train_missing)
    if parent is None:
        print(f"missed: {model}: {summary['reason']}", flush=True)
        return {"model": model, "parent": None, "reason": summary["reason"], "targets": [
            {"figure": f"{model}: optimizer's pick vs hand recipes", "measured": "not measured",
             "required": "run", "met": False, "gap": summary["reason"]}]}
    work = OUT / ("quick" if args.quick else "") / model
    hand = {recipe: run_hand(parent, work / "hand", recipe, args.quick)
            for recipe in args.recipes}
    searches = []
    for objective in args.objectives:
        for budget in args.budgets:
            output = work / f"optimized-{objective}-drop{budget_tag(budget)}"
            searches.append(run_search(parent, output, budget, objective, args.quick))

    # One bench run: the winners' files and the hand recipes' files together.
    files = {f"hand-{recipe}": Path(entry["path"]) for recipe, entry in hand.items()
             if entry.get("path")}
    for search in searches:
        if search["chosen"]:
            files[pick_label(search)] = Path(search["chosen"]["path"])
    # The optimizer's own view of the parent: its dataset, contract, validation split.
    scorer = ValidationScorer(parent)
    source = scorer.source
    spec = source.spec
    timing = bench_together(files, work, spec, source.preprocess, source.data_dir, args.quick,
                            args.bench_runs)

    # Validation drops of the hand recipes, on the optimizer's split and reference.
    for recipe, entry in hand.items():
        if not entry.get("path"):
            continue
        p50 = (timing.get(f"hand-{recipe}") or {}).get("p50_ms")
        entry["p50_ms"] = p50
        entry["p99_ms"] = (timing.get(f"hand-{recipe}") or {}).get("p99_ms")
        cost = None if p50 is None else p50 / 1000 * len(scorer.y_val)
        if cost is not None and cost > SKIP_SCORING_SECONDS and not could_beat_a_pick(
                entry, searches, timing):
            entry["val_drop"] = None
            entry["val_note"] = (f"not scored: slower and no smaller than every pick in this run, "
                                 f"so its budget status cannot change the check (scoring "
                                 f"{len(scorer.y_val):,} samples would take about {cost:.0f} s)")
            continue
        entry["val_accuracy"], entry["val_drop"] = scorer.drop(entry["path"])
        print(f"{model} hand {recipe}: validation drop {entry['val_drop']:+.2f} points "
              f"(test {entry['test_drop']:+.2f})", flush=True)
    for search in searches:
        if search["chosen"]:
            label = pick_label(search)
            search["chosen"]["p50_ms"] = (timing.get(label) or {}).get("p50_ms")
            search["chosen"]["timed_as"] = (timing.get(label) or {}).get("timed_as")
            search["chosen"]["same_file_as"] = [recipe for recipe, entry in hand.items()
                                                if entry.get("sha256") == search["chosen"][
                                                    "sha256"]]
    entry = {"model": model, "dataset": spec, "parent": relative(parent),
             "parent_summary": summary, "reference_accuracy_val": scorer.reference,
             "hand": hand, "searches": searches, "bench": timing.get("_run"),
             "measured": time.strftime("%Y-%m-%d %H:%M"),
             "seconds": round(time.time() - started, 1)}
    entry["targets"] = model_targets(entry, args.quick)
    for target in entry["targets"]:
        print(f"{target['figure']}: {target['measured']} (target {target['required']}) "
              f"{'met' if target['met'] else 'missed: ' + target['gap']}", flush=True)
    return entry


def pick_label(search: dict) -> str:
    prefix = "full" if search["finetune"] else "pick"
    return f"{prefix}-{search['objective']}-drop{budget_tag(search['budget'])}"


def could_beat_a_pick(hand: dict, searches: list[dict], timing: dict) -> bool:
    """Whether this hand recipe is faster (or smaller) than some pick, or some search has none."""
    for search in searches:
        chosen = search["chosen"]
        if chosen is None:
            return True
        field = OBJECTIVE_FIELD[search["objective"]]
        if field == "p50_ms":
            mine, theirs = hand.get("p50_ms"), (timing.get(pick_label(search)) or {}).get("p50_ms")
        else:
            mine, theirs = hand.get("gzip_bytes"), chosen.get("gzip_bytes")
        if mine is None or theirs is None or mine < theirs:
            return True
    return False


def model_targets(entry: dict, quick: bool) -> list[dict]:
    """The pick-vs-hand check of every search, and the wall time of cnn's searches."""
    found = []
    for search in entry["searches"]:
        found.append(pick_target(entry, search))
        if entry["model"] == "cnn" and not search["finetune"]:
            found.append(wall_target(entry, search, quick))
    return found


def pick_target(entry: dict, search: dict) -> dict:
    model, budget, objective = entry["model"], search["budget"], search["objective"]
    field = OBJECTIVE_FIELD[objective]
    word = "fast" if objective == "latency" else "small"
    figure = f"{model}: --max-drop {budget:g} --objective {objective}: pick vs hand recipes"
    required = f"at least as {word} as every hand recipe within {budget:g} points (validation)"
    within = {recipe: hand for recipe, hand in entry["hand"].items()
              if hand.get("val_drop") is not None and hand["val_drop"] <= budget + TOLERANCE}
    unscored = [recipe for recipe, hand in entry["hand"].items()
                if hand.get("path") and hand.get("val_drop") is None]
    missing = [recipe for recipe, hand in entry["hand"].items() if not hand.get("path")]
    note = ""
    if unscored:
        note += f"; {', '.join(unscored)} not scored (slower and larger than the pick)"
    if missing:
        note += f"; {', '.join(missing)}: compress failed"
    chosen = search["chosen"]

    def value(item):
        return item.get(field)

    if search.get("error") and chosen is None and not search.get("candidates"):
        return {"figure": figure, "measured": "search failed", "required": required, "met": False,
                "gap": f"edgekit.optimize raised: {search['error']}"}
    if chosen is None:
        if within:
            best = min(within, key=lambda recipe: within[recipe]["val_drop"])
            return {"figure": figure, "measured": "no pick", "required": required, "met": False,
                    "gap": f"the optimizer found nothing within budget, while hand {best} drops "
                           f"{within[best]['val_drop']:.2f} points on validation{note}"}
        return {"figure": figure, "measured": "no pick, no hand recipe within budget",
                "required": required, "met": True, "gap": ""}
    pick_value = value(chosen)
    shown_pick = _shown(field, pick_value)
    over = chosen.get("drop_val")
    if over is not None and over > budget + TOLERANCE:
        return {"figure": figure, "measured": f"{chosen['name']} drops {over:.2f} points",
                "required": required, "met": False,
                "gap": f"the winner's final artifact is over budget on validation ({over:.2f} > "
                       f"{budget:g}){note}"}
    if not within:
        return {"figure": figure, "measured": f"{chosen['name']} {shown_pick}; no hand recipe "
                f"within budget", "required": required, "met": True, "gap": note.lstrip("; ")}
    timed = {recipe: hand for recipe, hand in within.items() if value(hand) is not None}
    if not timed or pick_value is None:
        return {"figure": figure, "measured": f"{chosen['name']} {shown_pick}",
                "required": required, "met": False,
                "gap": "not measured in the shared bench run (see bench.json)" + note}
    best = min(timed, key=lambda recipe: value(timed[recipe]))
    best_value = value(timed[best])
    measured = (f"{chosen['name']} {shown_pick} vs hand {best} {_shown(field, best_value)}")
    if chosen.get("sha256") and chosen["sha256"] == timed[best].get("sha256"):
        return {"figure": figure, "measured": measured + " (the same file)", "required": required,
                "met": True, "gap": note.lstrip("; ")}
    if pick_value <= best_value:
        return {"figure": figure, "measured": measured, "required": required, "met": True,
                "gap": note.lstrip("; ")}
    return {"figure": figure, "measured": measured, "required": required, "met": False,
            "gap": miss_reason(entry, search, best, field, pick_value, best_value) + note}


def miss_reason(entry: dict, search: dict, best: str, field: str, pick_value, best_value) -> str:
    """Why the pick lost to a hand recipe: the search's own figures for both."""
    chosen = search["chosen"]
    candidates = {item["name"]: item for item in search["candidates"]}
    twin = candidates.get(f"tflite-{best}") or {}
    gap = (pick_value / best_value - 1) * 100
    parts = [f"hand {best} is {gap:.1f}% {'faster' if field == 'p50_ms' else 'smaller'} in this "
             f"run"]
    if twin:
        status = twin.get("status")
        if status != "measured":
            parts.append(f"the search left tflite-{best} {status}")
        elif not twin.get("within_budget"):
            parts.append(f"the search scored tflite-{best} at {twin['drop_points']:.2f} points on "
                         f"validation, over budget (here: {entry['hand'][best]['val_drop']:.2f})")
        elif field == "p50_ms":
            rounds = ("in separate bench runs (the optimizer times the layer fallback in a run "
                      "of its own, after the post-training candidates' run)"
                      if chosen["name"].endswith("-fallback") else "in the same bench run")
            parts.append(f"the search measured {chosen['name']} at "
                         f"{_shown(field, chosen.get('search_p50_ms'))} and tflite-{best} at "
                         f"{_shown(field, twin.get('p50_ms'))} {rounds}; on these shared cores "
                         "(load average in the hand-recipe table) the two orders disagree")
    return "; ".join(parts)


def wall_target(entry: dict, search: dict, quick: bool) -> dict:
    wall = search["wall_seconds"]
    met = wall <= MAX_SEARCH_MINUTES * 60
    scope = QUICK_DATASET if quick else "Fashion-MNIST"
    return {"figure": f"cnn / {scope}: post-training-only search wall time, --max-drop "
                      f"{search['budget']:g}",
            "measured": f"{wall / 60:.2f} min", "required": f"<= {MAX_SEARCH_MINUTES:g} min",
            "met": met, "gap": "" if met else wall_gap(search)}


def wall_gap(search: dict) -> str:
    """Where a long search spent its time (what candidates.json says)."""
    wall = search["wall_seconds"]
    inside = search.get("search_seconds")
    parts = [f"{(wall - MAX_SEARCH_MINUTES * 60) / 60:.2f} min over"]
    if inside is not None:
        parts.append(f"the candidates took {inside:.0f} s, loading the parent and building the "
                     f"winner's folder (compress, test split) the other {wall - inside:.0f} s")
    fallback = search.get("sensitivity", {}).get("tflite-int8-fallback")
    if fallback and fallback.get("trials"):
        parts.append(f"the layer fallback tried {len(fallback['trials'])} set(s)")
    return "; ".join(parts)


def short_recipe(chosen: dict) -> str:
    """``int8`` / ``dynamic``..., or ``int8 + N float layers (a, b, c, ...)`` for a fallback."""
    layers = chosen.get("float_layers") or []
    if not layers:
        return f"`{chosen['recipe']}`"
    shown = ", ".join(layers[:3]) + (", ..." if len(layers) > 3 else "")
    return f"int8 + {len(layers)} float layer(s): {shown}"


def _shown(field: str, value) -> str:
    if value is None:
        return "n/a"
    return f"{value * 1000:.1f} us" if field == "p50_ms" else f"{value:,} B gzipped"


# --------------------------------------------------------------------------------------------
# The constructed sensitive model.


def sensitive_model(quick: bool, retrain: bool) -> tuple[Path, dict]:
    """A .keras file whose layer ``wide_range`` ruins full int8 (built as the integration test
    builds it, with two convolutions in front), and how it was made."""
    folder = OUT / ("quick" if quick else "") / "sensitive"
    path, record = folder / "sensitive.keras", folder / "sensitive.json"
    if path.is_file() and record.is_file() and not retrain:
        return path, {**json.loads(record.read_text()), "reused": True}
    from edgekit._compat import keras

    spec = QUICK_DATASET if quick else "fashion_mnist"
    scale = 0.0625 if quick else 1 / 255
    epochs = SENSITIVE_EPOCHS[1 if quick else 0]
    tf_keras = keras()
    tf_keras.utils.set_random_seed(0)
    dataset = edgekit.load_dataset(spec, seed=0)
    started = time.perf_counter()
    inputs = tf_keras.Input(tuple(dataset.sample_shape), name="input")
    x = tf_keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = tf_keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = tf_keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = tf_keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = tf_keras.layers.Flatten(name="flatten")(x)
    x = tf_keras.layers.Dense(128, activation="relu", name="features")(x)
    x = tf_keras.layers.Dense(128, activation="relu", name="wide_range")(x)
    outputs = tf_keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = tf_keras.Model(inputs, outputs, name="sensitive")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x_train = np.asarray(dataset.x_train, dtype=np.float32) * scale
    model.fit(x_train, dataset.y_train, epochs=epochs, batch_size=32 if quick else 64, verbose=0)
    kernel, bias = model.get_layer("features").get_weights()
    kernel[:, 0], bias[0] = 0.0, -1.0  # unit 0 of features is dead: always 0 after its ReLU
    model.get_layer("features").set_weights([kernel, bias])
    kernel, bias = model.get_layer("wide_range").get_weights()
    kernel[0, :] = 1000.0  # harmless in float (it multiplies 0), fatal to int8 weight scales
    model.get_layer("wide_range").set_weights([kernel, bias])
    folder.mkdir(parents=True, exist_ok=True)
    model.save(path)
    info = {"dataset": spec, "preprocess": f"scale={scale!r}", "epochs": epochs,
            "train_samples": int(len(dataset.y_train)), "parameters": int(model.count_params()),
            "seconds": round(time.perf_counter() - started, 1)}
    record.write_text(json.dumps(info, indent=2))
    print(f"built the sensitive model: {info}", flush=True)
    return path, {**info, "reused": False}


def run_sensitive(args) -> dict:
    print("== the constructed sensitive model", flush=True)
    started = time.time()
    path, info = sensitive_model(args.quick, args.retrain)
    folder = path.parent
    data = {"dataset": info["dataset"], "preprocess": info["preprocess"]}
    budget = args.sensitive_budget
    search = run_search(path, folder / "optimized", budget, "latency", args.quick, **data)
    candidates = {item["name"]: item for item in search["candidates"]}
    int8 = candidates.get("tflite-int8") or {}
    fallback = candidates.get("tflite-int8-fallback") or {}
    record = (search.get("sensitivity") or {}).get("tflite-int8-fallback") or {}
    layers = list(record.get("float_layers") or [])
    chosen = search["chosen"]

    # The files timed together: fp32, full int8 (compress --int8) and the fallback.
    extra = {**data, "seed": 0}
    full = run_hand(path, folder / "hand", "int8", args.quick, **extra)
    fallback_file, rebuilt = None, None
    if chosen and chosen["name"] == "tflite-int8-fallback":
        fallback_file = Path(chosen["path"])
    elif layers:
        rebuilt = run_hand(path, folder / "hand-fallback", "int8", args.quick,
                           float_layers=",".join(layers), **extra)
        fallback_file = Path(rebuilt["path"]) if rebuilt.get("path") else None
    from edgekit._compat import keras
    from edgekit.formats.tflite import convert_to_tflite

    fp32_file = folder / "fp32.tflite"
    fp32_file.write_bytes(convert_to_tflite(keras().models.load_model(path, compile=False),
                                            "fp32"))
    timing = bench_together({"fp32": fp32_file, "int8": Path(full["path"]) if full.get("path")
                             else None, "fallback": fallback_file}, folder, info["dataset"],
                            info["preprocess"], None, args.quick, args.bench_runs)
    p50 = {name: (timing.get(name) or {}).get("p50_ms") for name in ("fp32", "int8", "fallback")}
    test_drop = (chosen or {}).get("test_drop") if chosen and \
        chosen["name"] == "tflite-int8-fallback" else (rebuilt or {}).get("test_drop")
    entry = {"model_info": info, "path": relative(path), "budget": budget, "search": search,
             "int8_drop_val": int8.get("drop_points"), "fallback_drop_val":
             fallback.get("drop_points"), "fallback_status": fallback.get("status"),
             "fallback_within_budget": fallback.get("within_budget"), "float_layers": layers,
             "fallback_trials": len(record.get("trials") or []),
             "fallback_test_drop": test_drop, "int8_test_drop": full.get("test_drop"),
             "int8_compress_status": full.get("status"),
             "fallback_file": relative(fallback_file) if fallback_file else None,
             "fallback_from": "the winner's model.tflite" if rebuilt is None and fallback_file
             else "edgekit compress --int8 --float-layers (the fallback was not the winner)",
             "p50_ms": p50, "bench": timing.get("_run"),
             "speedup": p50["fp32"] / p50["fallback"] if p50["fp32"] and p50["fallback"] else None,
             "measured": time.strftime("%Y-%m-%d %H:%M"),
             "seconds": round(time.time() - started, 1)}
    entry["targets"] = sensitive_targets(entry)
    for target in entry["targets"]:
        print(f"{target['figure']}: {target['measured']} (target {target['required']}) "
              f"{'met' if target['met'] else 'missed: ' + target['gap']}", flush=True)
    return entry


def sensitive_targets(entry: dict) -> list[dict]:
    found = []
    budget = entry["budget"]
    drop = entry["fallback_drop_val"]
    within = bool(entry["fallback_within_budget"])
    found.append({"figure": "sensitive model: the fallback brings int8 within budget",
                  "measured": "not measured" if drop is None else
                  f"{drop:.2f} points, {len(entry['float_layers'])} layer(s) in float",
                  "required": f"<= {budget:g} points (validation)", "met": within,
                  "gap": "" if within else (entry["fallback_status"] or "no fallback measured")})
    speedup = entry["speedup"]
    met = speedup is not None and speedup >= MIN_FALLBACK_SPEEDUP
    if speedup is None:
        gap = "no p50 for " + ", ".join(name for name, value in entry["p50_ms"].items()
                                        if value is None)
    elif not met:
        p50 = entry["p50_ms"]
        gap = (f"{MIN_FALLBACK_SPEEDUP - speedup:.2f}x short; full int8 runs at "
               f"{p50['fp32'] / p50['int8']:.2f}x fp32" if p50.get("int8") else
               f"{MIN_FALLBACK_SPEEDUP - speedup:.2f}x short")
        gap += (f", so the {len(entry['float_layers'])} float layer(s) "
                f"({', '.join(entry['float_layers'])}) and their quantize / dequantize ops cost "
                f"{(p50['fallback'] - p50['int8']) * 1000:.1f} us of the fallback's "
                f"{p50['fallback'] * 1000:.1f} us" if p50.get("int8") else "")
    else:
        gap = ""
    found.append({"figure": "sensitive model: fp32 p50 / fallback p50 (LiteRT, 1 thread)",
                  "measured": "not measured" if speedup is None else f"{speedup:.2f}x",
                  "required": f">= {MIN_FALLBACK_SPEEDUP}x", "met": met, "gap": gap})
    return found


# --------------------------------------------------------------------------------------------
# The full search (fine-tuning candidates too), behind --full-search.


def run_full_search(args, objective: str = "latency") -> dict:
    print(f"== full search (fine-tuning candidates), --objective {objective}, on cnn", flush=True)
    parent, summary = parent_folder("cnn", args.quick, args.train_missing)
    budget = args.budgets[0]
    if parent is None:
        return {"budget": budget, "error": summary["reason"], "wall_seconds": None}
    work = OUT / ("quick" if args.quick else "") / "cnn"
    extra = {"finetune_epochs": 1} if args.quick else {}
    suffix = "" if objective == "latency" else f"-{objective}"
    search = run_search(parent, work / f"optimized-full-drop{budget_tag(budget)}{suffix}", budget,
                        objective, args.quick, finetune=True, **extra)
    search["parent"] = relative(parent)
    search["measured"] = time.strftime("%Y-%m-%d %H:%M")
    return search


# --------------------------------------------------------------------------------------------
# The section.


def _pct(value) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _pts(value) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def _us(value_ms) -> str:
    return "n/a" if value_ms is None else f"{value_ms * 1000:.1f} us"


def _bytes(value) -> str:
    return "n/a" if value is None else f"{value:,} B"


def _met(target: dict | None) -> str:
    if target is None:
        return "n/a"
    return ("met" + (f" ({target['gap']})" if target["gap"] else "")) if target["met"] \
        else f"**missed**: {target['gap']}"


def render(figures: dict, args) -> str:
    results = figures["results"]
    sensitive = figures.get("sensitive")
    full = figures.get("full_search")
    quick = args.quick
    dataset = QUICK_DATASET if quick else "Fashion-MNIST"
    models = ", ".join(entry["model"] for entry in results)
    lines = [
        HEADING,
        "",
        f"Machine: {machine_line(figures['machine'])}. Script: `benchmarks/optimize_figures.py`"
        f"{' --quick' if quick else ''}. Measured {time.strftime('%Y-%m-%d')}; the last "
        f"invocation took {figures['seconds'] / 60:.1f} min. Other engineers share these cores: "
        "the load average (1 min) before / after each bench run is shown.",
        "",
        f"Models: {models} on {dataset}. Every search is `edgekit.optimize(parent, "
        "max_drop=B, finetune=False, objective=..., runtime=\"litert\")` (the CLI's "
        "`--no-finetune`): the post-training candidates (fp32, fp16, dynamic, int8, int16x8) "
        "and, when full int8 is over budget, int8 with its most sensitive layers kept in "
        "float. The optimizer keeps no measurement between runs, so each budget is a search "
        "of its own. The hand recipes are "
        "`edgekit.compress(parent, int8=True)` / `dynamic` / `fp16` / `int16x8`, run on their "
        "own. Latency: one `edgekit.bench` run per model holds the winners' files and the hand "
        "recipes' files (LiteRT, XNNPACK, 1 thread, batch 1, "
        + ("short windows" if quick else "bench's default windows") + "; files with the same "
        "bytes timed once), so pick and hand recipes are compared within one run"
        + (f"; {args.bench_runs} such runs, files' order rotated, p50 = the median over them"
           if args.bench_runs > 1 else "") + ". "
        "Drops are points against the parent Keras model. The optimizer decides on the "
        "validation split and the compress manifests record only the test split, so the hand "
        "recipes' validation drops are measured here on the optimizer's own split and reference "
        "(`resolve_source`: the parent's seed and validation fraction); their test drops "
        "(compress manifests) are beside them. A hand recipe is within budget when its "
        "validation drop is.",
        "",
        "### Parents",
        "",
        "| model | parameters | epochs | Keras test accuracy | Keras validation accuracy (the "
        "budget's reference) | folder | measured | whole model (compress, searches, bench) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in results:
        if entry.get("parent") is None:
            lines.append(f"| {entry['model']} | - | - | - | - | **missed**: {entry['reason']} "
                         "| - | - |")
            continue
        summary = entry["parent_summary"]
        lines.append(f"| {entry['model']} | {summary['parameters']:,} | {summary['epochs_run']} | "
                     f"{_pct(summary['test_accuracy'])} | {_pct(entry['reference_accuracy_val'])}"
                     f" | `{entry['parent']}` | {entry.get('measured', 'n/a')} | "
                     f"{entry['seconds'] / 60:.1f} min |")
    objectives = list(dict.fromkeys(search["objective"] for entry in results
                                    for search in entry.get("searches", [])))
    for objective in objectives:
        field = OBJECTIVE_FIELD[objective]
        word = "fastest" if objective == "latency" else "smallest (gzipped)"
        lines += [
            "",
            f"### The pick against the hand recipes: --objective {objective}",
            "",
            f"Target: the pick is at least as {'fast' if objective == 'latency' else 'small'} as "
            f"every hand recipe within budget. \"hand / pick\" is the {word} hand recipe's "
            f"{'p50' if objective == 'latency' else 'gzipped size'} over the pick's (>= 1.00x: "
            "the pick is no worse).",
            "",
            "| model | budget | optimizer's pick | its val drop | its test drop | its p50 | its "
            "gzipped size | " + word + " hand recipe within budget (val drop) | its p50 "
            "| its gzipped size | hand / pick | search wall time | met |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for entry in results:
            for search in entry.get("searches", []):
                if search["objective"] != objective:
                    continue
                target = next((t for t in entry["targets"] if t["figure"].startswith(
                    f"{entry['model']}: --max-drop {search['budget']:g} --objective {objective}")),
                    None)
                chosen = search["chosen"]
                within = {recipe: hand for recipe, hand in entry["hand"].items()
                          if hand.get("val_drop") is not None
                          and hand["val_drop"] <= search["budget"] + TOLERANCE
                          and hand.get(field) is not None}
                best = min(within, key=lambda recipe: within[recipe][field]) if within else None
                if chosen:
                    same = chosen.get("same_file_as") or []
                    pick = f"{chosen['name']} ({short_recipe(chosen)})" + (
                        f", same file as hand {', '.join(same)}" if same else "")
                else:
                    pick = "none within budget" if not search.get("error") or \
                        search.get("candidates") else f"failed: {search['error']}"
                ratio = "n/a"
                if chosen and best and chosen.get(field) and within[best].get(field):
                    ratio = f"{within[best][field] / chosen[field]:.2f}x"
                hand_cell = "none" if best is None else \
                    f"{best} ({_pts(within[best]['val_drop'])})"
                lines.append(
                    f"| {entry['model']} | {search['budget']:g} | {pick} | "
                    f"{_pts((chosen or {}).get('drop_val'))} | "
                    f"{_pts((chosen or {}).get('test_drop'))} | "
                    f"{_us((chosen or {}).get('p50_ms'))} | "
                    f"{_bytes((chosen or {}).get('gzip_bytes'))} | {hand_cell} | "
                    f"{_us(within[best]['p50_ms']) if best else '-'} | "
                    f"{_bytes(within[best]['gzip_bytes']) if best else '-'} | {ratio} | "
                    f"{search['wall_seconds'] / 60:.2f} min | {_met(target)} |")
    lines += [
        "",
        "### Hand recipes (edgekit compress), each model's one bench run",
        "",
        "\"search's val drop\" is what the first search measured for the same recipe "
        "(`tflite-<recipe>` in its candidates.json; `—`: not scored there). Bench load "
        "average before / after is per model.",
        "",
        "| model | recipe | .tflite | gzipped | test drop (compress manifest) | val drop (here) "
        "| search's val drop | p50 | within " + " / ".join(f"{b:g}" for b in args.budgets)
        + " | bench load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in results:
        if entry.get("parent") is None:
            continue
        first = (entry["searches"] or [{}])[0]
        candidates = {item["name"]: item for item in first.get("candidates", [])}
        load = " / ".join(f"{value:.2f}" for value in (entry.get("bench") or {}).get(
            "load_average", [])) or "n/a"
        for recipe, hand in entry["hand"].items():
            if not hand.get("path"):
                lines.append(f"| {entry['model']} | {recipe} | compress failed: {hand['error']} "
                             "| | | | | | | |")
                continue
            twin = candidates.get(f"tflite-{recipe}") or {}
            val = _pts(hand.get("val_drop")) if hand.get("val_drop") is not None else \
                (hand.get("val_note") or "n/a")
            within = " / ".join(
                "n/a" if hand.get("val_drop") is None else
                ("yes" if hand["val_drop"] <= budget + TOLERANCE else "no")
                for budget in args.budgets)
            status = "" if hand["status"] == "complete" else f" ({hand['status']})"
            searched = "—" if twin.get("drop_points") is None else _pts(twin["drop_points"])
            lines.append(f"| {entry['model']} | {recipe}{status} | {_bytes(hand['bytes'])} | "
                         f"{_bytes(hand['gzip_bytes'])} | {_pts(hand['test_drop'])} | {val} | "
                         f"{searched} | {_us(hand.get('p50_ms'))} | {within} | {load} |")
    lines += render_sensitive(sensitive, quick)
    lines += [
        "",
        "### Search wall time",
        "",
        f"`time.perf_counter()` around `edgekit.optimize(...)` in this script's process "
        "(TensorFlow already imported: the CLI pays its import on top), from loading the parent "
        "to the winner's published folder (an `edgekit compress` run measured on the test "
        "split); \"candidates\" is the search alone (candidates.json `seconds`). LiteRT, 1 "
        f"thread, {os.cpu_count()} cores.",
        "",
        "| search | model | budget | wall time | candidates | chosen | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in results:
        for search in entry.get("searches", []):
            target = None
            if entry["model"] == "cnn":
                target = next((t for t in entry["targets"] if "wall time" in t["figure"]
                               and f"--max-drop {search['budget']:g}" in t["figure"]
                               and search["objective"] == "latency"), None)
            inside = search.get("search_seconds")
            lines.append(
                f"| post-training, --objective {search['objective']} | {entry['model']} | "
                f"{search['budget']:g} | {search['wall_seconds'] / 60:.2f} min | "
                f"{'n/a' if inside is None else f'{inside / 60:.2f} min'} | "
                f"{(search['chosen'] or {}).get('name', 'none')} | "
                + (f"<= {MAX_SEARCH_MINUTES:g} min | {_met(target)} |" if target else "- | - |"))
    fulls = [(objective, search) for objective, search in (
        ("latency", full), ("size", figures.get("full_search_size"))) if search]
    for objective, search in fulls:
        if search.get("wall_seconds") is not None:
            inside = search.get("search_seconds")
            lines.append(f"| full (fine-tuning candidates too), --objective {objective} | cnn | "
                         f"{search['budget']:g} | {search['wall_seconds'] / 60:.2f} min | "
                         f"{'n/a' if inside is None else f'{inside / 60:.2f} min'} | "
                         f"{(search.get('chosen') or {}).get('name', 'none')} | not targeted | - |")
    for objective, search in fulls:
        if search.get("candidates"):
            lines += ["", f"Full search, --objective {objective}, every candidate: " + "; ".join(
                f"{item['name']} {item['status']}" + (
                    f" ({_pts(item['drop_points'])}, {_us(item['p50_ms'])}, "
                    f"{_bytes(item.get('gzip_bytes'))} gzipped)"
                    if item["status"] == "measured" else "") for item in search["candidates"])
                + "."]
        elif search.get("error"):
            lines += ["", f"Full search, --objective {objective}: failed: {search['error']}."]
    if not fulls:
        lines += ["", "The full search (fine-tuning candidates: pruning + QAT, clustering + "
                  "int8, QAT) was **not run** in this invocation; `--full-search` runs it on cnn "
                  f"at --max-drop {args.budgets[0]:g}."]
    targets = [target for entry in results for target in entry.get("targets", [])] + \
        (sensitive or {}).get("targets", [])
    lines += ["", "### Targets", "", "| target | measured | required | met |",
              "| --- | --- | --- | --- |"]
    for target in targets:
        lines.append(f"| {target['figure']} | {target['measured']} | {target['required']} | "
                     + ("met" if target["met"] else f"**missed**: {target['gap']}") + " |")
    first = next((entry for entry in results if entry.get("parent")), None)
    lines += ["", "Rerun (from the repo root): `.venv/bin/python benchmarks/optimize_figures.py` "
              "(`--models`, `--budgets`, `--objectives latency,size`, `--full-search`, "
              "`--train-missing`, `--no-write`)."]
    if first:
        search = first["searches"][0] if first["searches"] else None
        lines += ["By hand, for " + first["model"] + " (the search, the hand recipes, the "
                  "command the winner's manifest records):", "", "```"]
        if search:
            lines.append(f"edgekit optimize {first['parent']} --max-drop {search['budget']:g} "
                         f"--objective {search['objective']} --no-finetune --output "
                         f"{search.get('output', '...')}")
        lines += [hand["command"] for hand in first["hand"].values() if hand.get("command")]
        if search and search["chosen"]:
            lines.append(search["chosen"]["command"])
        lines.append("```")
    return "\n".join(lines)


def render_sensitive(entry: dict | None, quick: bool) -> list[str]:
    lines = ["", "### The constructed sensitive model: int8 ruined by one layer", ""]
    if not entry:
        return lines + ["Not run in this invocation (`--no-sensitive`)."]
    info = entry["model_info"]
    search = entry["search"]
    p50 = entry["p50_ms"]
    lines += [
        f"Built as tests/integration/test_optimize.py builds its `wide_range` model: unit 0 of "
        f"the `features` Dense layer is dead (zero kernel column, bias -1: always 0 after its "
        f"ReLU), and `wide_range` reads it through weights of 1000: harmless in float, fatal to "
        f"int8 weight scales. Two convolutions (32 and 64 filters) sit in front so int8 has "
        f"arithmetic to speed up; {info['parameters']:,} parameters, trained "
        f"{info['epochs']} epoch(s) on {info['dataset']} ({info['train_samples']:,} samples, "
        f"`--preprocess {info['preprocess']}`){', reused' if info.get('reused') else ''}. "
        f"Search: `edgekit.optimize(sensitive.keras, max_drop={entry['budget']:g}, "
        f"finetune=False)` (LiteRT, objective latency): chosen "
        f"{(search['chosen'] or {}).get('name', 'none')}, "
        f"{search['wall_seconds'] / 60:.2f} min. The fallback file timed is "
        f"{entry['fallback_from']}; fp32 is the parent's plain conversion; full int8 is "
        f"`edgekit compress --int8` (compress {entry['int8_compress_status'] or 'n/a'}: "
        "its own check refuses a .tflite that disagrees with its Keras model). One bench run, "
        "1 thread, batch 1.",
        "",
        "| parent Keras val accuracy | full int8 val drop | fallback val drop | layers kept in "
        "float | fallback test drop | fp32 p50 | full int8 p50 | fallback p50 | fp32 / fallback "
        "| bench load | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    speed = next((t for t in entry["targets"] if "p50" in t["figure"]), None)
    load = " / ".join(f"{value:.2f}" for value in (entry.get("bench") or {}).get(
        "load_average", [])) or "n/a"
    layers = entry["float_layers"]
    lines.append(
        f"| {_pct(search.get('reference_accuracy_val'))} | {_pts(entry['int8_drop_val'])} | "
        f"{_pts(entry['fallback_drop_val'])} | {len(layers)}"
        f"{' (' + ', '.join(layers) + ')' if layers else ''} | "
        f"{_pts(entry['fallback_test_drop'])} | {_us(p50['fp32'])} | {_us(p50['int8'])} | "
        f"{_us(p50['fallback'])} | "
        f"{'n/a' if entry['speedup'] is None else format(entry['speedup'], '.2f') + 'x'} | "
        f"{load} | >= {MIN_FALLBACK_SPEEDUP}x | {_met(speed)} |")
    return lines


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"some of {', '.join(MODELS)}, or none")
    parser.add_argument("--budgets", default=",".join(f"{b:g}" for b in BUDGETS),
                        help="--max-drop values, comma-separated [default 0.5,1]")
    parser.add_argument("--objectives", default="latency",
                        help="latency and/or size, comma-separated [default latency]")
    parser.add_argument("--recipes", default=",".join(HAND_RECIPES),
                        help=f"hand recipes, some of {', '.join(HAND_RECIPES)}")
    parser.add_argument("--full-search", action="store_true",
                        help="also a search with the fine-tuning candidates on cnn (first budget), "
                             "one per --objectives")
    parser.add_argument("--no-sensitive", action="store_true",
                        help="leave out the constructed sensitive model")
    parser.add_argument("--sensitive-budget", type=float, default=SENSITIVE_BUDGET,
                        help=f"--max-drop of the sensitive model's search [default "
                             f"{SENSITIVE_BUDGET}]")
    parser.add_argument("--retrain", action="store_true",
                        help="build the sensitive model again instead of reusing it")
    parser.add_argument("--train-missing", action="store_true",
                        help="train a parent int8_figures.py has not finished (its epochs)")
    parser.add_argument("--bench-runs", type=int, default=1,
                        help="edgekit.bench runs per model, each holding every file (order "
                             "rotated); p50 = the median over them [default 1]")
    parser.add_argument("--no-write", action="store_true",
                        help="print the section instead of writing RESULTS.md")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_DATASET} parents trained here ({QUICK_EPOCHS} epochs), "
                             f"{QUICK_CALIBRATION} calibration samples, short timing; prints only")
    args = parser.parse_args()
    models = [] if args.models == "none" else args.models.split(",")
    args.budgets = [float(value) for value in args.budgets.split(",")]
    args.objectives = args.objectives.split(",")
    args.recipes = args.recipes.split(",")
    if (any(model not in MODELS for model in models)
            or any(value not in OBJECTIVES for value in args.objectives)
            or any(value not in HAND_RECIPES for value in args.recipes)):
        parser.error(f"expected --models among {', '.join(MODELS)}, --objectives among "
                     f"{', '.join(OBJECTIVES)}, --recipes among {', '.join(HAND_RECIPES)}")
    started = time.time()
    folder = OUT / "quick" if args.quick else OUT
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "optimize_figures.json"
    previous = json.loads(record.read_text()) if record.exists() else {}
    results = {entry["model"]: entry for entry in previous.get("results", [])}
    state = {key: previous.get(key) for key in ("sensitive", "full_search", "full_search_size")}

    def save() -> dict:
        """The record so far (written after every part: a later failure keeps the others)."""
        figures = {"machine": machine(), "quick": args.quick,
                   "seconds": round(time.time() - started, 1),
                   "results": [results[model] for model in MODELS if model in results],
                   **state}
        record.write_text(json.dumps(figures, indent=2, default=str))
        return figures

    for model in models:
        results[model] = run_model(model, args)
        save()
    if not args.no_sensitive:
        state["sensitive"] = run_sensitive(args)
        save()
    if args.full_search:
        for objective in args.objectives:
            key = "full_search" if objective == "latency" else f"full_search_{objective}"
            state[key] = run_full_search(args, objective)
            save()
    figures = save()
    # Targets are derived figures: recomputed here, so entries kept from an earlier invocation
    # are judged (and explained) by the same rules as the fresh ones.
    for entry in figures["results"]:
        if entry.get("parent"):
            entry["targets"] = model_targets(entry, args.quick)
    if figures.get("sensitive"):
        figures["sensitive"]["targets"] = sensitive_targets(figures["sensitive"])
    section = render(figures, args)
    targets = [target for entry in figures["results"] for target in entry.get("targets", [])] + \
        (figures.get("sensitive") or {}).get("targets", [])
    missed = [target for target in targets if not target["met"]]
    if args.quick or args.no_write:
        print(section)
        print(f"\n{'--quick' if args.quick else '--no-write'}: not written to RESULTS.md "
              f"(figures in {relative(record)})")
    else:
        written = replace_section(SECTION, section)
        print(f"wrote {relative(written)} (figures in {relative(record)})")
    print(f"{len(missed)} target(s) missed" + "".join(
        f"\n  missed: {target['figure']}: {target['measured']} (target {target['required']}): "
        f"{target['gap']}" for target in missed))
    print(f"total {(time.time() - started) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
