"""``optimize/candidates.json`` and the terminal table: one record per candidate.

Every record has exactly the fields of :data:`FIELDS` (issue 14), ``null`` where a figure was
not measured:

- ``name``, ``recipe`` (compress's recipe; ``int8+float-layers`` for the fallback),
  ``runtime`` (litert / onnxruntime);
- ``accuracy_val`` (the split that decides), ``drop_points`` (against the parent's Keras model
  on that split), ``accuracy_test`` (the chosen candidate only, from its final model folder:
  choosing never sees the test split);
- ``size_bytes``, ``gzip_bytes``, ``p50_ms``, ``p99_ms`` (bench harness, batch 1);
- ``within_budget``, ``chosen``, ``status`` (``measured``, ``skipped: why``, ``failed: why``).

The document around the records says what was searched and how (schema
:data:`SCHEMA_NAME` version :data:`SCHEMA_VERSION`): the budget and its reference accuracy,
the objective, the time budget and whether it stopped the search, each candidate's options and
stage (``details``), the per-layer sensitivity of the fallback candidates, the machine.
"""

from __future__ import annotations

from edgekit import manifest as manifest_io
from edgekit.optimize.candidates import option_flags
from edgekit.optimize.search import Outcome, SearchResult

SCHEMA_NAME = "edgekit.optimize.candidates"
SCHEMA_VERSION = 1
FIELDS = ("name", "recipe", "accuracy_val", "accuracy_test", "drop_points", "size_bytes",
          "gzip_bytes", "p50_ms", "p99_ms", "runtime", "within_budget", "chosen", "status")


def record(outcome: Outcome) -> dict:
    """The candidate's record: exactly :data:`FIELDS`."""
    artifact = outcome.artifact
    return {
        "name": outcome.name,
        "recipe": recipe_of(outcome),
        "accuracy_val": artifact.accuracy_val if artifact else None,
        "accuracy_test": outcome.accuracy_test,
        "drop_points": outcome.drop_points,
        "size_bytes": artifact.size_bytes if artifact else None,
        "gzip_bytes": artifact.gzip_bytes if artifact else None,
        "p50_ms": outcome.value("p50_ms"),
        "p99_ms": outcome.value("p99_ms"),
        "runtime": outcome.candidate.runtime,
        "within_budget": bool(outcome.within_budget),
        "chosen": bool(outcome.chosen),
        "status": outcome.status,
    }


def recipe_of(outcome: Outcome) -> str:
    """compress's recipe; the fallback's names the layers kept in float."""
    layers = (outcome.artifact.details.get("float_layers") if outcome.artifact else None) or []
    if outcome.candidate.fallback and layers:
        return f"int8+float:{','.join(layers)}"
    return outcome.candidate.recipe


def document(result: SearchResult, config, parent: dict, notes: list[str],
             fallbacks: dict, winner: dict | None) -> dict:
    """The whole candidates.json."""
    return {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "created": manifest_io.now(),
        "parent": parent,
        "budget": {"max_drop_points": config.max_drop, "split": "val",
                   "reference": "parent Keras model",
                   "reference_accuracy_val": result.reference_accuracy},
        "objective": {"name": config.objective, "field": config.objective_field},
        "runtime": config.runtime,
        "threads": config.threads,
        "finetune": config.finetune,
        "time_budget_minutes": config.time_budget,
        "stopped_by_time_budget": result.stopped_by_time_budget,
        "skipped_for_time": list(result.skipped_for_time),
        "seconds": result.seconds,
        "chosen": result.chosen.name if result.chosen else None,
        "winner": winner,
        "notes": list(notes),
        "candidates": [record(outcome) for outcome in result.outcomes],
        "details": {outcome.name: _details(outcome) for outcome in result.outcomes},
        "sensitivity": fallbacks,
        "machine": manifest_io.machine(),
    }


def _details(outcome: Outcome) -> dict:
    candidate = outcome.candidate
    found = {"stage": candidate.stage, "technique": candidate.technique,
             "precision": candidate.precision, "options": dict(candidate.options),
             "compress_flags": option_flags(candidate.options)}
    if outcome.artifact is not None:
        kept = {key: value for key, value in outcome.artifact.details.items()
                if key in ("seconds", "compress_folder", "float_layers", "float_nodes",
                           "excluded_nodes")}
        found.update(kept)
    if outcome.latency is not None and outcome.latency.reason:
        found["latency_reason"] = outcome.latency.reason
    return found


def _number(value, form: str) -> str:
    return "—" if value is None else form.format(value)


def terminal_table(result: SearchResult) -> str:
    """The candidates as a fixed-width table; the chosen one marked ``*``, the budget's side."""
    headers = ["", "candidate", "val acc", "drop", "size", "gzip", "p50", "p99", "status"]
    rows = []
    for outcome in result.outcomes:
        item = record(outcome)
        status = item["status"] if item["status"] != "measured" else (
            "within budget" if item["within_budget"] else "over budget")
        rows.append(["*" if item["chosen"] else "", item["name"],
                     _number(item["accuracy_val"], "{:.2%}"),
                     _number(item["drop_points"], "{:+.2f}"),
                     _number(item["size_bytes"], "{:,} B"), _number(item["gzip_bytes"], "{:,} B"),
                     _number(item["p50_ms"], "{:.4f} ms"), _number(item["p99_ms"], "{:.4f} ms"),
                     status if len(status) <= 70 else status[:67] + "..."])
    widths = [max(len(str(row[index])) for row in [headers, *rows]) for index in range(len(headers))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append(f"drop: points of validation accuracy against the parent's Keras model "
                 f"({result.reference_accuracy:.2%}); budget {result.max_drop:g} points; "
                 "* = chosen")
    return "\n".join(lines)


def closest_lines(result: SearchResult, count: int = 3) -> list[str]:
    """One short line per candidate nearest to the budget (for the exit-1 message)."""
    return [f"{outcome.name} drops {outcome.drop_points:.2f} points"
            + (f", p50 {outcome.value('p50_ms'):.4f} ms" if outcome.value("p50_ms") else "")
            for outcome in result.closest(count)]
