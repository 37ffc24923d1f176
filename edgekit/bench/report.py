"""The benchmark's outputs: a versioned JSON (with its schema), a Markdown table, a terminal table.

JSON layout (``schema_version`` 1)::

    {schema, schema_version, created, command, seconds, machine, versions, config, datasets,
     artifacts: [{name, subject, format, runtime, path, precision, bytes, sha256, status, reason,
                  accuracy, accuracy_drop, fidelity, metrics, speedup?,
                  runs: [{threads, status, load_ms, first_inference_ms, memory, describe,
                          measurements: [{batch, threads, concurrency, timed, warmup, runs,
                                          seconds, latency_ms, throughput_per_s, stability,
                                          samples_ms, errors?, wrong_answers?, server?}]}]}],
     gates: {checked, broken}, warnings}

``metrics`` flattens the primary measurement (first batch, first thread count, first concurrency)
with accuracy, fidelity, size and memory: the names ``--fail-if`` gates and plots use. A
compressed artifact (precision other than fp32) measured beside an fp32 artifact of the same
runtime gets ``speedup`` (``{ratio, baseline, p50_ms, baseline_p50_ms, batch, threads}``: the
fp32 artifact's p50 over its own, at the primary setting) and ``metrics.speedup``; a ratio below 1
adds a line to ``warnings`` ("onnx-int8 runs at 0.62x the speed of onnx-fp32 on this machine"). A Triton
load test adds ``concurrency`` levels, ``errors``, ``wrong_answers`` and ``server`` (Triton's
per-request queue / compute ms and mean batch size over the measured windows) to its
measurements, and ``errors`` / ``wrong_answers`` (summed over every level) to ``metrics``; the rest
of the layout does not change.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekit import manifest as manifest_io
from edgekit import outputs
from edgekit.bench.latency import stability_warning
from edgekit.bench.plots import write_plots
from edgekit.errors import DataError, OutputExistsError
from edgekit.runtimes import RUNTIMES

SCHEMA_NAME = "edgekit.bench"
SCHEMA_VERSION = 1
TRACKED = ("ai-edge-litert", "onnxruntime", "tritonclient", "tensorflow", "tf-keras", "onnx")

_NUMBER = {"type": ["number", "null"]}
_LATENCY = {"type": "object", "required": ["count", "min", "mean", "std", "p50", "p90", "p99", "max"],
            # p90 / p99 are null only where a tool reports no raw timings (benchmark_model).
            "properties": {key: {"type": "number"} if key not in ("p90", "p99") else _NUMBER
                           for key in ("min", "mean", "std", "p50", "p90", "p99", "max")}}
_MEASUREMENT = {
    "type": "object",
    "required": ["batch", "threads", "concurrency", "timed", "warmup", "runs", "seconds",
                 "latency_ms", "throughput_per_s", "stability", "samples_ms"],
    "properties": {
        "batch": {"type": "integer"}, "threads": {"type": ["integer", "null"]},
        "concurrency": {"type": "integer"}, "timed": {"type": "string"},
        "runs": {"type": "integer"}, "latency_ms": _LATENCY, "throughput_per_s": _NUMBER,
        "stability": {"type": "object", "required": ["stable", "windows", "window_p50_ms",
                                                     "tolerance", "spread"],
                      "properties": {"stable": {"type": "boolean"}}},
        "samples_ms": {"type": "array", "items": {"type": "number"}},
        "errors": {"type": "integer"}, "wrong_answers": {"type": "integer"},
        "first_error": {"type": ["string", "null"]},
        "server": {"type": "object",
                   "required": ["queue_ms", "compute_infer_ms", "requests", "executions",
                                "mean_batch"],
                   "properties": {"queue_ms": _NUMBER, "compute_infer_ms": _NUMBER,
                                  "requests": {"type": "integer"},
                                  "executions": {"type": "integer"}, "mean_batch": _NUMBER}},
    },
}
_RUN = {"type": "object", "required": ["status"],
        "properties": {"status": {"enum": ["ok", "failed"]}, "threads": {"type": ["integer", "null"]},
                       "load_ms": _NUMBER, "first_inference_ms": _NUMBER,
                       "memory": {"type": "object"},
                       "measurements": {"type": "array", "items": _MEASUREMENT}}}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "edgekit benchmark report",
    "type": "object",
    "required": ["schema", "schema_version", "created", "machine", "versions", "config",
                 "datasets", "artifacts", "gates", "warnings"],
    "properties": {
        "schema": {"enum": [SCHEMA_NAME]},
        "schema_version": {"enum": [SCHEMA_VERSION]},
        "created": {"type": "string"},
        "command": {"type": ["string", "null"]},
        "machine": {"type": "object", "required": ["cpu", "cpu_flags", "cores", "os"],
                    "properties": {"cpu_flags": {"type": "array", "items": {"type": "string"}},
                                   "cores": {"type": "integer"}}},
        "versions": {"type": "object"},
        "config": {"type": "object"},
        "datasets": {"type": "object"},
        "artifacts": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "subject", "format", "runtime", "status", "reason", "accuracy",
                         "accuracy_drop", "fidelity", "metrics", "runs"],
            "properties": {
                # keras, tflite, onnx, triton, or what a plug-in runtime declares
                "name": {"type": "string"}, "format": {"type": "string"},
                "status": {"enum": ["ok", "failed"]}, "reason": {"type": ["string", "null"]},
                "bytes": {"type": ["integer", "null"]}, "accuracy": _NUMBER,
                "accuracy_drop": _NUMBER, "fidelity": {"type": ["object", "null"]},
                "metrics": {"type": "object"}, "runs": {"type": "array", "items": _RUN},
                "speedup": {"type": ["object", "null"],
                            "required": ["ratio", "baseline", "batch", "threads"],
                            "properties": {"ratio": {"type": "number"},
                                           "baseline": {"type": "string"}}},
            }}},
        "gates": {"type": "object", "required": ["checked", "broken"]},
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}


def validate(document, schema: dict = SCHEMA, where: str = "$") -> list[str]:
    """Problems of ``document`` against the JSON-Schema subset used in :data:`SCHEMA`."""
    problems = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is_type(document, kind) for kind in kinds):
            return [f"{where}: expected {' or '.join(kinds)}, got {type(document).__name__}"]
    if "enum" in schema and document not in schema["enum"]:
        problems.append(f"{where}: {document!r} not one of {schema['enum']}")
    if isinstance(document, dict):
        problems += [f"{where}: missing {key!r}" for key in schema.get("required", [])
                     if key not in document]
        for key, child in schema.get("properties", {}).items():
            if key in document:
                problems += validate(document[key], child, f"{where}.{key}")
    if isinstance(document, list) and "items" in schema:
        for index, item in enumerate(document):
            problems += validate(item, schema["items"], f"{where}[{index}]")
    return problems


def _is_type(value, kind: str) -> bool:
    return {"object": isinstance(value, dict), "array": isinstance(value, list),
            "string": isinstance(value, str), "boolean": isinstance(value, bool),
            "null": value is None,
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool)}[kind]


def metrics(row: dict) -> dict:
    """The flat figures of an artifact (its primary measurement): what gates and plots read."""
    found = {"accuracy": row.get("accuracy"), "accuracy_drop": row.get("accuracy_drop"),
             "bytes": row.get("bytes"),
             "size_mb": row["bytes"] / 1e6 if row.get("bytes") is not None else None}
    if row.get("fidelity"):
        found.update({key: row["fidelity"][key]
                      for key in ("agreement", "max_abs_diff", "mean_abs_diff")})
    run = next((run for run in row.get("runs", []) if run.get("status") == "ok"), None)
    if run is not None:
        found.update(load_ms=run.get("load_ms"), first_inference_ms=run.get("first_inference_ms"),
                     peak_rss_mb=(run.get("memory") or {}).get("peak_rss_mb"))
        if run.get("measurements"):
            primary = run["measurements"][0]
            for key in ("min", "mean", "std", "p50", "p90", "p99", "max"):
                found[f"{key}_ms"] = primary["latency_ms"][key]
            found["throughput_per_s"] = primary["throughput_per_s"]
            counted = [m for m in run["measurements"] if "errors" in m]
            if counted:  # a load test: what went wrong at any level
                found["errors"] = sum(m["errors"] for m in counted)
                found["wrong_answers"] = sum(m.get("wrong_answers", 0) for m in counted)
    return {key: value for key, value in found.items() if value is not None}


def speedups(rows: list[dict]) -> list[str]:
    """Give each compressed artifact its speed ratio to the fp32 artifact of its runtime.

    The ratio is the fp32 artifact's p50 over the artifact's own, both at the primary setting
    (first batch, first thread count) of the same run: above 1 faster, below 1 slower. The
    baseline is the fp32 artifact of the same runtime in the same subject, else the only one in
    the run. Sets ``row["speedup"]`` and ``row["metrics"]["speedup"]``.

    Returns:
        One line per artifact slower than its baseline, e.g. "onnx-int8 runs at 0.62x the speed
        of onnx-fp32 on this machine (p50, batch 1, 1 thread)".
    """
    lines = []
    for row in rows:
        if row.get("precision") in (None, "fp32") or not row["metrics"].get("p50_ms"):
            continue
        baseline = _fp32_baseline(row, rows)
        setting = _primary_setting(row)
        if baseline is None or setting != _primary_setting(baseline):
            continue
        ratio = baseline["metrics"]["p50_ms"] / row["metrics"]["p50_ms"]
        batch, threads = setting
        row["speedup"] = {"ratio": ratio, "baseline": baseline["name"],
                          "p50_ms": row["metrics"]["p50_ms"],
                          "baseline_p50_ms": baseline["metrics"]["p50_ms"],
                          "batch": batch, "threads": threads}
        row["metrics"]["speedup"] = ratio
        if ratio < 1:
            lines.append(f"{row['name']} runs at {ratio:.2f}x the speed of {baseline['name']} on "
                         f"this machine (p50, {_setting_text(batch, threads)}); its "
                         f"{row['precision']} does not pay for speed here")
    return lines


def _fp32_baseline(row: dict, rows: list[dict]) -> dict | None:
    candidates = [other for other in rows if other is not row and other["runtime"] == row["runtime"]
                  and other.get("precision") == "fp32" and other["metrics"].get("p50_ms")]
    same_subject = [other for other in candidates if other["subject"] == row["subject"]]
    if same_subject:
        return same_subject[0]
    return candidates[0] if len(candidates) == 1 else None


def _primary_setting(row: dict) -> tuple | None:
    """(batch, threads) of the measurement ``metrics`` flattens."""
    run = next((run for run in row.get("runs", []) if run.get("status") == "ok"), None)
    if run is None or not run.get("measurements"):
        return None
    primary = run["measurements"][0]
    return primary["batch"], primary["threads"]


def _setting_text(batch, threads) -> str:
    if not threads:
        return f"batch {batch}"
    return f"batch {batch}, {threads} thread{'s' if threads != 1 else ''}"


def build_report(rows: list[dict], subjects, config, seconds: float, command: str | None) -> dict:
    warnings = []
    for row in rows:
        row["metrics"] = metrics(row)
    warnings += speedups(rows)
    for row in rows:
        if row.get("integrity") == "mismatch":
            warnings.append(f"{row['name']}: its sha256 differs from the one its manifest recorded "
                            "(the file changed after edgekit wrote it); the figures are the "
                            "changed file's. Export it again to measure what edgekit made")
        for run in row["runs"]:
            for measurement in run.get("measurements", []):
                label = (f"{row['name']} batch {measurement['batch']}"
                         + (f", {measurement['threads']} threads" if measurement['threads'] else "")
                         + (f", concurrency {measurement['concurrency']}"
                            if measurement["concurrency"] > 1 else ""))
                warning = stability_warning(label, measurement)
                if warning:
                    warnings.append(warning)
    return {
        "schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, "created": manifest_io.now(),
        "command": command, "seconds": round(seconds, 2),
        "machine": manifest_io.machine(), "versions": manifest_io.versions(_libraries(rows)),
        "config": config.to_dict(),
        "datasets": {subject.name: subject.dataset_record for subject in subjects},
        "artifacts": rows, "gates": {"checked": [], "broken": []}, "warnings": warnings,
    }


def _libraries(rows: list[dict]) -> tuple[str, ...]:
    """The tracked packages, then the libraries each runtime of the run declares."""
    found = list(TRACKED)
    for name in dict.fromkeys(row["runtime"] for row in rows):
        if name in RUNTIMES:
            found += [library for library in RUNTIMES.get(name).libraries if library not in found]
    return tuple(found)


def write_outputs(report: dict, output: Path) -> dict:
    """bench.json, bench.md and plots/*.png in ``output``; returns name -> path."""
    # Written whole in a staging folder, then renamed into place: a failed write (a full disk)
    # leaves the previous benchmark as it was, never a 0-byte plot or a cut JSON.
    staging = outputs.staging_path(output)
    outputs.discard(staging)
    staging.mkdir(parents=True)
    try:
        with outputs.writing(output):
            plots = write_plots(report, staging / "plots")
            report["plots"] = {name: str(path.relative_to(staging))
                               for name, path in plots.items()}
            (staging / "bench.json").write_text(json.dumps(report, indent=1, default=_plain) + "\n")
            (staging / "bench.md").write_text(markdown(report))
            outputs.publish(staging, output)
    except BaseException:
        outputs.discard(staging)
        raise
    files = {"json": output / "bench.json", "markdown": output / "bench.md"}
    files.update({f"plot:{name}": output / relative for name, relative in report["plots"].items()})
    return files


def check_bench_output(output: Path, inputs: tuple = ()) -> None:
    """An existing output must be an earlier benchmark (bench.json inside), never anything else.

    Raises:
        OptionError / OutputExistsError: see :func:`edgekit.outputs.check_output`.
    """
    outputs.check_output_path(output, inputs)
    if output.exists() and not output.is_dir():
        raise OutputExistsError(f"output {output} exists and is a file; expected a folder path "
                                "for bench.json, bench.md and plots/. Choose another --output")
    if output.is_dir() and any(output.iterdir()) and not (output / "bench.json").is_file():
        raise OutputExistsError(
            f"output folder {output} exists and holds no bench.json (it is not an earlier "
            "benchmark); edgekit replaces only its own benchmark folders. Choose another --output")


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the benchmark JSON")


# --- tables -------------------------------------------------------------------------------

COLUMNS = [  # (header, metric key, format)
    ("artifact", "name", "{}"), ("size", "size_mb", "{:.3f} MB"), ("accuracy", "accuracy", "{:.2%}"),
    ("change", "accuracy_drop", "{:+.2f} pt"), ("agree", "agreement", "{:.2%}"),
    ("max diff", "max_abs_diff", "{:.1e}"), ("p50", "p50_ms", "{:.3f} ms"),
    ("p99", "p99_ms", "{:.3f} ms"), ("vs fp32", "speedup", "{:.2f}x"),
    ("thru", "throughput_per_s", "{:,.0f}/s"),
    ("load", "load_ms", "{:.0f} ms"), ("peak RSS", "peak_rss_mb", "{:.0f} MB"),
]


def _cells(row: dict) -> list[str]:
    cells = []
    for header, key, form in COLUMNS:
        if key == "name":
            cells.append(row["name"])
            continue
        value = row["metrics"].get(key)
        if key == "accuracy_drop" and value is not None:
            value = 0.0 - value  # shown as a change: a drop of 0.3 points reads -0.30 pt
        cells.append("-" if value is None else form.format(value))
    return cells


def column_headers(report: dict) -> list[str]:
    """The column headers; the speed ratio's says at which setting it was measured."""
    config = report.get("config") or {}
    batch = (config.get("batches") or [1])[0]
    threads = (config.get("threads") or [1])[0]
    return [f"vs fp32 (p50, {_setting_text(batch, threads)})" if key == "speedup" else header
            for header, key, _ in COLUMNS]


def _rows_text(report: dict) -> tuple[list[str], list[list[str]]]:
    rows = []
    for row in report["artifacts"]:
        cells = _cells(row)
        if row["status"] != "ok" and not row["metrics"].get("p50_ms"):
            cells = [row["name"], "failed: " + (row["reason"] or "")[:70]] + [""] * (len(cells) - 2)
        rows.append(cells)
    return column_headers(report), rows


def terminal_table(report: dict) -> str:
    """A fixed-width table of every artifact, then what each figure means and any warnings."""
    headers, rows = _rows_text(report)
    measured = [r for r in rows if not r[1].startswith("failed")]
    # max() of the header alone when every artifact failed: the table still prints, with reasons.
    widths = [max([len(headers[i]), *(len(r[i]) for r in measured)])
              for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    for cells in rows:
        if cells[1].startswith("failed"):
            lines.append(f"{cells[0].ljust(widths[0])}  {cells[1]}")
        else:
            lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    lines.append(_caption(report))
    load = load_rows(report)
    if load:
        headers = ["served model", "batch", "conc", "p50 ms", "p90 ms", "p99 ms", "samples/s",
                   "errors", "queue ms", "infer ms", "mean batch"]
        widths = [max([len(h), *(len(r[i]) for r in load)]) for i, h in enumerate(headers)]
        lines += ["", "Load test (Triton; queue / infer: the server's own times per request)",
                  "  ".join(h.ljust(w) for h, w in zip(headers, widths))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in load]
    lines += [f"warning: {warning}" for warning in report.get("warnings", [])]
    return "\n".join(lines)


def load_rows(report: dict) -> list[list[str]]:
    """One row of text per (served model, batch, concurrency) of a Triton load test."""
    def number(value, form: str) -> str:
        return "-" if value is None else form.format(value)

    rows = []
    for row in report["artifacts"]:
        for run in row["runs"]:
            for m in run.get("measurements", []):
                if "errors" not in m:
                    continue
                server = m.get("server") or {}
                latency = m["latency_ms"]
                errors = f"{m['errors']}" + (f" ({m['wrong_answers']} wrong)"
                                             if m.get("wrong_answers") else "")
                rows.append([row["name"], str(m["batch"]), str(m["concurrency"]),
                             number(latency["p50"], "{:.3f}"), number(latency["p90"], "{:.3f}"),
                             number(latency["p99"], "{:.3f}"),
                             number(m["throughput_per_s"], "{:,.0f}"), errors,
                             number(server.get("queue_ms"), "{:.3f}"),
                             number(server.get("compute_infer_ms"), "{:.3f}"),
                             number(server.get("mean_batch"), "{:.2f}")])
    return rows


def _caption(report: dict) -> str:
    config = report["config"]
    machine = report["machine"]
    return (f"batch {config['batches'][0]}, {config['threads'][0]} thread(s); latency of one call "
            f"(p50 / p99 over {config['min_runs']}+ runs and {config['min_seconds']}+ s per window); "
            f"change (test accuracy points; -0.30 pt = 0.3 points lost) and agreement against "
            f"the Keras model (a served model: the in-process ONNX file when measured too); "
            f"vs fp32: a compressed artifact's speed against the fp32 artifact of its runtime "
            f"(fp32 p50 / its p50; below 1x: slower). {machine['cpu']}, {machine['cores']} cores, "
            f"{' '.join(machine['cpu_flags'])}")


def markdown(report: dict) -> str:
    """The main table, then throughput per batch / threads / concurrency, then the machine."""
    headers, rows = _rows_text(report)
    lines = ["# Benchmark", "", f"`{report.get('command') or 'edgekit.bench(...)'}`", "",
             "| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |" for cells in rows]
    lines += ["", _caption(report), "", "## Latency and throughput per configuration", "",
              "| artifact | threads | batch | concurrency | p50 ms | p90 ms | p99 ms | samples/s | "
              "stable |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in report["artifacts"]:
        for run in row["runs"]:
            for m in run.get("measurements", []):
                latency = m["latency_ms"]
                figures = " | ".join("-" if latency.get(key) is None else f"{latency[key]:.3f}"
                                     for key in ("p50", "p90", "p99"))
                lines.append(f"| {row['name']} | {m['threads'] or '-'} | {m['batch']} | "
                             f"{m['concurrency']} | {figures} | {m['throughput_per_s'] or 0:,.0f} | "
                             f"{'yes' if m['stability']['stable'] else '**no**'} |")
    load = load_rows(report)
    if load:
        lines += ["", "## Load test (Triton)", "",
                  "Concurrent clients each send their next request when the last one answers; "
                  "errors include wrong answers. Queue, infer and mean batch are Triton's own "
                  "statistics over the measured windows.", "",
                  "| served model | batch | concurrency | p50 ms | p90 ms | p99 ms | samples/s | "
                  "errors | queue ms | infer ms | mean batch |", "|" + " --- |" * 11]
        lines += ["| " + " | ".join(cells) + " |" for cells in load]
    machine = report["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in report["versions"].items()
                         if version)
    lines += ["", f"Machine: {machine['cpu']}, {machine['cores']} cores, flags: "
              f"{' '.join(machine['cpu_flags']) or 'none of note'}, {machine['os']}.",
              f"Versions: {versions}."]
    if report.get("gates", {}).get("broken"):
        lines += ["", "## Broken gates", ""] + [f"- {line}" for line in report["gates"]["broken"]]
    if report.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {line}" for line in report["warnings"]]
    for name, path in (report.get("plots") or {}).items():
        lines += ["", f"![{name}]({path})"]
    return "\n".join(lines) + "\n"


def load_report(path) -> dict:
    """Read a bench.json, refusing another schema or version."""
    try:
        document = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not JSON ({type(error).__name__}); expected the bench.json "
                        "edgekit bench writes; re-run edgekit bench") from error
    if not isinstance(document, dict) or document.get("schema") != SCHEMA_NAME \
            or document.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"{path} is not an edgekit benchmark report of schema version "
                        f"{SCHEMA_VERSION}; re-run edgekit bench")
    return document
