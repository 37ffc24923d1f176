"""``edgekit report MODEL``: one self-contained HTML page a person opens about a model folder.

It follows the folder's lineage (:meth:`edgekit.models.folder.ModelFolder.chain`) and gathers
what each stage wrote, in words and units rather than manifest keys: the training curves and
confusion matrix (of the folder, or of the ancestor that was trained, named as such), what
compression cost against the parent (accuracy in %, change in points, size in kB / MB, ratio,
zeros, latency when benchmarked), each exported artifact's fidelity, the benchmark table and
plots, and, for a folder ``edgekit optimize`` wrote, its candidates, plots and why the winner won.
Images are embedded, so the page can be mailed or attached to a CI run as one file. A section
whose stage has not run says which command fills it.

Example:
    >>> write_report("models/cnn-digits")
    PosixPath('models/cnn-digits/report.html')
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgekit import manifest as manifest_io
from edgekit.bench.html_format import (STYLE, as_dict, change_text, diff_text, escape, figure_html,
                                       format_name, html_table, is_number, missing_html, ms_text,
                                       percent_text, size_text, when_text)
from edgekit.bench.report import load_report
from edgekit.errors import DataError, ModelError, OptionError, OutputExistsError
from edgekit.models.folder import ModelFolder
from edgekit.outputs import OutputLock, writing

REPORT_NAME = "report.html"
GENERATOR = "edgekit report"
OPTIMIZE_FOLDER, CANDIDATES_FILE = "optimize", "candidates.json"
_OBJECTIVES = {"latency": ("p50_ms", "fastest p50"), "size": ("gzip_bytes", "smallest gzipped size")}


def write_report(model: str | os.PathLike, output: str | os.PathLike | None = None,
                 bench_json: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Write the page for a model folder; returns its path (default ``<model>/report.html``).

    The page is written beside its final path and renamed into place, so a failed rewrite keeps
    the previous page. An existing file that is not an edgekit report is never replaced; an
    earlier edgekit report at a path other than the default needs ``force``.

    Raises:
        ModelError: when ``model`` is not a model folder with a manifest, or its manifest is broken.
        DataError: for a bench.json that is not edgekit's.
        OptionError: for an output that is not a .html path, or one of the model's own files.
        OutputExistsError: for an existing file that edgekit did not write as a report, or an
            earlier report at a chosen path without ``force``.
    """
    folder = Path(model)
    if not (folder / manifest_io.MANIFEST_NAME).is_file():
        raise ModelError(f"{str(model)!r} is not a model folder (no {manifest_io.MANIFEST_NAME}); "
                         "expected a folder written by edgekit train or compress")
    path = Path(output) if output else folder / REPORT_NAME
    _check_report_output(path, folder, default=output is None, force=force)
    with OutputLock(path):  # one writer per page: a second report at once fails naming the first
        return _write_page(ModelFolder.open(folder), path, bench_json)


def _write_page(folder: ModelFolder, path: Path, bench_json) -> Path:
    chain = folder.chain(strict=False)  # a broken ancestor ends the lineage; the page says so
    if folder.is_export and len(chain) > 1:  # an export folder's page is its model's, one export
        chain = chain[1:]
    bench_path = Path(bench_json) if bench_json else folder.path / "bench" / "bench.json"
    bench = load_report(bench_path) if bench_path.is_file() else None
    sections = [_header(chain), _training(chain), _compression(chain, bench), _fidelity(folder),
                _speed(folder, bench, bench_path), _optimizer(folder)]
    page = (f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<meta name='generator' content='{GENERATOR}'><title>edgekit report: "
            f"{escape(folder.path.name)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(section for section in sections if section) + "</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        with writing(path):
            temporary.write_text(page)
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _check_report_output(path: Path, folder: Path, default: bool, force: bool) -> None:
    if path.suffix.lower() not in (".html", ".htm"):
        raise OptionError(f"report --output {str(path)!r} is not a .html path; the report is one "
                          "HTML page. Pass e.g. --output report.html")
    recorded = manifest_io.read_manifest(folder).get("files") or {}
    resolved = path.resolve()
    if any((folder / name).resolve() == resolved for name in recorded if name != REPORT_NAME):
        raise OptionError(f"report --output {str(path)!r} is one of the model folder's own files; "
                          "writing it would destroy it. Choose another --output")
    if not path.exists():
        return
    if path.is_dir():
        raise OutputExistsError(f"report --output {str(path)!r} is a folder; expected a .html file path")
    if not _is_report(path):
        raise OutputExistsError(f"report --output {str(path)!r} exists and is not an edgekit report; "
                                "edgekit never replaces it. Choose another --output")
    if not default and not force:
        raise OutputExistsError(f"report {str(path)!r} exists; pass --force to replace it, or "
                                "choose another --output")


def _is_report(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(400)
    except OSError:
        return False
    return GENERATOR.encode() in head or b"<title>edgekit report" in head


# --- sections -----------------------------------------------------------------------------

def _made(folder: ModelFolder, parent: str = "") -> str:
    """How a folder was made, in a few words: 'trained', 'compressed with int8 from cnn-digits'."""
    if folder.stage == "compress":
        chosen = ", chosen by edgekit optimize" if folder.manifest.get("optimize") else ""
        source = f" from {parent}" if parent else ""
        return f"compressed with {folder.manifest.get('recipe') or '?'}{source}{chosen}"
    return {"train": "trained", "export": "exported"}.get(folder.stage or "", folder.kind)


def _origin(root: ModelFolder) -> str:
    """Where the oldest folder of a lineage came from, when it was not trained from scratch."""
    record = root.parent_record
    given = record.get("path")
    if not given:
        return ""
    path = Path(str(record.get("absolute_path") or given))
    if "absolute_path" not in record and not path.exists():
        return f"made from the live model {given}, trained outside edgekit"
    if (path / manifest_io.MANIFEST_NAME).is_file():
        return f"made from {given}, whose manifest cannot be read"
    if path.exists():
        return f"made from the model file {given}, trained outside edgekit"
    return f"made from {given}, which is no longer there"


def _header(chain: list[ModelFolder]) -> str:
    folder, manifest = chain[0], chain[0].manifest
    model = as_dict(manifest.get("model")).get("name", "?")
    dataset = as_dict(manifest.get("dataset")).get("name", "?")
    lineage = " &rarr; ".join(f"<b>{escape(item.path.name)}</b> ({escape(_made(item))})"
                              for item in reversed(chain))
    origin = _origin(chain[-1])
    made = _made(folder, chain[1].path.name if len(chain) > 1 else "")
    return (f"<h1>{escape(folder.path.name)}</h1><p>Model <b>{escape(model)}</b> on <b>{escape(dataset)}</b>, "
            f"{escape(made)}; written {escape(when_text(folder.created))}.</p>"
            f"<p>Lineage: {lineage}{'; ' + escape(origin) if origin else ''}.</p>"
            f"<p class='note'>Command: <code>{escape(manifest.get('command') or '(not recorded)')}"
            "</code></p>")


def _training(chain: list[ModelFolder]) -> str:
    index, trained = next(((i, f) for i, f in enumerate(chain) if f.stage == "train"), (None, None))
    if trained is None:
        origin = _origin(chain[-1])
        why = f"it was {origin}" if origin else "no folder of its lineage was trained by edgekit"
        return ("<h2 id='training'>Training</h2><p class='note'>No training record to show: "
                f"{escape(why)}. <code>edgekit train</code> writes training curves and a confusion "
                "matrix into the folder it trains.</p>")
    name = trained.path.name
    if index == 0:
        parts = ["<h2 id='training'>Training</h2>"]
    else:
        relation = "parent" if index == 1 else "ancestor"
        parts = [f"<h2 id='training'>Training (of the {relation}, {escape(name)})</h2>",
                 f"<p>This model was not trained itself: it descends from <b>{escape(name)}</b>. "
                 f"The curves and confusion matrix below are those of its {relation}, "
                 f"{escape(name)}.</p>"]
    test = as_dict(as_dict(trained.manifest.get("evaluation")).get("test"))
    history = as_dict(trained.manifest.get("training"))
    words = []
    if is_number(test.get("accuracy")):
        words.append(f"Test accuracy of {escape(name)}: <b>{percent_text(test['accuracy'])}</b>"
                     + (f" on {escape(test['samples'])} samples" if test.get("samples") else "")
                     + (f", macro F1 {test['macro_f1']:.3f}" if is_number(test.get("macro_f1")) else "")
                     + ".")
    if history.get("epochs_run"):
        words.append(f"{escape(history['epochs_run'])} epochs"
                     + (", stopped early" if history.get("stopped_early") else "")
                     + (f"; it keeps the weights of epoch {escape(history['best_epoch'])}, the best on "
                        "validation" if history.get("best_epoch") else "") + ".")
    if words:
        parts.append(f"<p>{' '.join(words)}</p>")
    plots = as_dict(trained.manifest.get("plots"))
    figures = [figure_html(trained.path / str(file), key, name) for key, file in plots.items()]
    figures = [figure for figure in figures if figure]
    parts.append(f"<div class='grid wide'>{''.join(figures)}</div>" if figures else
                 missing_html(f"training curves for {name}", f"edgekit train --output {trained.path} --force"))
    return "\n".join(parts)


def _compression(chain: list[ModelFolder], bench: dict | None) -> str:
    heading = "<h2 id='compression'>Compression: what it cost</h2>"
    folder = chain[0]
    rows = [row for row in as_dict(folder.manifest.get("comparison")).get("rows") or []
            if isinstance(row, dict)]
    if not rows:
        if folder.stage == "train":
            return heading + ("<p class='note'>This model is not compressed: "
                              f"<code>edgekit compress {escape(folder.path)} --int8</code> writes a "
                              "compressed child whose report compares the two here.</p>")
        return heading + missing_html("compression comparison", "edgekit compress MODEL --int8")
    parent = chain[1] if len(chain) > 1 else None
    parent_name = parent.path.name if parent else as_dict(folder.parent_record).get("name", "the parent")
    latencies = {"parent": _p50s(_bench_of(parent)), "compressed": _p50s(bench)}
    table = []
    for row in rows:
        side = "parent" if str(row.get("label", "")).startswith("parent") else "compressed"
        artifact = "keras" if row.get("format") == "keras" else f"{row.get('format')}-{row.get('mode')}"
        zeros = as_dict(row.get("weights_in_file")).get("sparsity")
        if zeros is None and is_number(row.get("parameters")) and is_number(row.get("nonzero_weights")):
            zeros = 1 - row["nonzero_weights"] / max(row["parameters"], 1)
        ratio = row.get("size_ratio_to_parent_fp32_tflite")
        table.append([f"{f'Parent ({parent_name})' if side == 'parent' else 'This model'}, "
                      f"{format_name(row.get('format'))} {row.get('mode') or ''}".strip(),
                      percent_text(row.get("accuracy")),
                      "reference" if row.get("accuracy_drop_points") is None and side == "parent"
                      else change_text(row.get("accuracy_drop_points")),
                      size_text(row.get("bytes")), size_text(row.get("gzip_bytes")),
                      f"{ratio:.2f}x" if is_number(ratio) else "—", percent_text(zeros),
                      ms_text(latencies[side].get(artifact))])
    headers = ["Model", "Test accuracy", "Change", "Size", "Gzipped", "Size vs the parent's fp32 "
               "TFLite", "Zero weights", "p50 latency"]
    if all(row[-1] == "—" for row in table):
        headers, table = headers[:-1], [row[:-1] for row in table]
    stages = as_dict(folder.manifest.get("stages")).values()
    how = ", then ".join(str(as_dict(stage).get("summary") or as_dict(stage).get("technique"))
                         for stage in stages if as_dict(stage).get("summary") or as_dict(stage).get("technique"))
    parts = [heading, f"<p>Recipe <b>{escape(folder.manifest.get('recipe') or '?')}</b>"
             + (f" ({escape(how)})" if how else "") + f", applied to <b>{escape(parent_name)}</b>; "
             "measured on the test split.</p>", _verdict(rows), html_table(headers, table)]
    agreement = as_dict(folder.manifest.get("comparison")).get("tflite_top1_agreement_with_keras")
    if is_number(agreement):
        parts.append(f"<p class='note'>This model's TFLite file picks the same class as its Keras "
                     f"model on {percent_text(agreement)} of the test samples. p50 latency: from each "
                     "folder's own <code>edgekit bench</code>, where one ran.</p>")
    return "\n".join(parts)


def _verdict(rows: list[dict]) -> str:
    """One sentence: how much smaller the compressed TFLite file is, and what accuracy it kept."""
    def find(side):
        return next((row for row in rows if str(row.get("label", "")).startswith(side)
                     and row.get("format") == "tflite"), None)

    before, after = find("parent"), find("compressed")
    if not before or not after or not is_number(after.get("bytes")) or not before.get("bytes"):
        return ""
    factor = before["bytes"] / max(after["bytes"], 1)
    smaller = f"{factor:.1f}x smaller" if factor >= 1 else f"{1 / factor:.1f}x larger"
    return (f"<p>The {escape(after.get('mode') or '')} TFLite file is <b>{size_text(after['bytes'])}</b> "
            f"against {size_text(before['bytes'])} for the parent's {escape(before.get('mode') or '')} "
            f"TFLite: <b>{smaller}</b>; test accuracy {percent_text(before.get('accuracy'))}"
            f" &rarr; <b>{percent_text(after.get('accuracy'))}</b> "
            f"({escape(change_text(after.get('accuracy_drop_points')))}).</p>")


def _bench_of(folder: ModelFolder | None) -> dict | None:
    path = folder.path / "bench" / "bench.json" if folder else None
    if path is None or not path.is_file():
        return None
    try:
        return load_report(path)
    except DataError:  # the parent's own bench is only a latency column here
        return None


def _p50s(bench: dict | None) -> dict:
    if not bench:
        return {}
    return {row.get("name"): as_dict(row.get("metrics")).get("p50_ms")
            for row in bench.get("artifacts") or [] if row.get("status") == "ok"}


def _fidelity(folder: ModelFolder) -> str:
    heading = "<h2 id='fidelity'>Fidelity of each artifact</h2>"
    exports = folder.exports()
    if not exports:
        return heading + missing_html("exported artifacts", f"edgekit export {folder.path}")
    rows, samples = [], []
    for export in exports:
        for entry in as_dict(export.manifest.get("artifacts")).values():
            entry, check = as_dict(entry), as_dict(as_dict(entry).get("fidelity"))
            agreement = check.get("top1_agreement", check.get("agreement"))
            count = check.get("samples")
            samples.append(count)
            shown = percent_text(agreement)
            if is_number(agreement) and is_number(count) and agreement < 1:
                shown += f" ({round((1 - agreement) * count)} of {count} differ)"
            limits = as_dict(check.get("thresholds"))
            required = "; ".join(
                text for text, value in ((f"agreement ≥ {percent_text(limits.get('min_top1_agreement'))}",
                                          limits.get("min_top1_agreement")),
                                         (f"|difference| ≤ {diff_text(limits.get('max_abs_diff'))}",
                                          limits.get("max_abs_diff"))) if is_number(value))
            rows.append([str(entry.get("name", "?")), format_name(entry.get("format")),
                         str(entry.get("precision") or "—"), size_text(entry.get("bytes")), shown,
                         diff_text(check.get("max_abs_diff")), required or "—",
                         str(entry.get("status") or "not checked")])
    counted = sorted({count for count in samples if is_number(count)})
    on = f"the same {counted[0]} test samples" if len(counted) == 1 else "the test samples"
    return (heading + "<p>Fidelity to the Keras model: each exported artifact ran on "
            f"{on} as the Keras model it came from. Top-1 agreement is the share of samples on "
            "which both pick the same class; max |difference| the largest gap between their "
            "output probabilities. An artifact below what its precision requires fails the export.</p>"
            + html_table(["Artifact", "Format", "Precision", "Size", "Top-1 agreement",
                      "Max |difference|", "Required", "Verdict"], rows, wrap=(6, 7)))


def _speed(folder: ModelFolder, bench: dict | None, bench_path: Path) -> str:
    heading = "<h2 id='speed'>Speed on this machine</h2>"
    if bench is None:
        return heading + missing_html("benchmark", f"edgekit bench {folder.path}")
    config, machine = as_dict(bench.get("config")), as_dict(bench.get("machine"))
    batch, threads = (config.get("batches") or [1])[0], (config.get("threads") or [1])[0]
    setting = f"batch {batch}, {threads or 'default'} thread{'s' if threads != 1 else ''}"
    rows, failed = [], []
    for row in bench.get("artifacts") or []:
        figures = as_dict(row.get("metrics"))
        if row.get("status") != "ok" and not figures.get("p50_ms"):
            failed.append(f"{row.get('name')}: {row.get('reason') or 'failed'}")
            continue
        throughput = figures.get("throughput_per_s")
        rows.append([str(row.get("name")), format_name(row.get("runtime")), size_text(figures.get("bytes")),
                     percent_text(figures.get("accuracy")), change_text(figures.get("accuracy_drop")),
                     percent_text(figures.get("agreement")), ms_text(figures.get("p50_ms")),
                     ms_text(figures.get("p99_ms")),
                     f"{figures['speedup']:.2f}x" if is_number(figures.get("speedup")) else "—",
                     f"{throughput:,.0f}/s" if is_number(throughput) else "—",
                     ms_text(figures.get("load_ms")),
                     f"{figures['peak_rss_mb']:.0f} MB" if is_number(figures.get("peak_rss_mb")) else "—"])
    timed = {name: p50 for name, p50 in _p50s(bench).items() if is_number(p50)}
    fastest = min(timed, key=timed.get, default=None)
    parts = [heading, f"<p>Benchmark of every artifact with <code>edgekit bench</code>, each in its "
             f"own process, on {escape(machine.get('cpu', '?'))} ({machine.get('cores', '?')} cores"
             + (f", {escape(' '.join(machine['cpu_flags']))}" if machine.get("cpu_flags") else "")
             + f"), {escape(when_text(bench.get('created')))}, at {setting}."
             + (f" Fastest: <b>{escape(fastest)}</b>, p50 {ms_text(timed[fastest])}." if fastest else "")
             + "</p>"]
    parts.append(html_table(["Artifact", "Runtime", "Size", "Test accuracy", "Change vs Keras",
                         "Top-1 agreement", "p50 latency", "p99 latency",
                         "Speed vs fp32", "Throughput", "Load time", "Peak memory"], rows))
    parts.append(f"<p class='note'>p50 / p99: median and 99th percentile of one call over at least "
                 f"{config.get('min_runs', '?')} runs and {config.get('min_seconds', '?')} s per "
                 f"window at {setting}; speed vs fp32: the p50 of the fp32 artifact of the same "
                 "runtime over this one's (above 1x: faster); throughput in samples per second.</p>")
    lines = [f"Failed: {line}" for line in failed] + list(as_dict(bench.get("gates")).get("broken") or [])
    lines += list(bench.get("warnings") or [])
    if lines:
        parts.append("<ul class='warn'>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>")
    figures = [figure_html(bench_path.parent / str(relative), name)
               for name, relative in as_dict(bench.get("plots")).items()]
    parts.append("<div class='grid'>" + "".join(figure for figure in figures if figure) + "</div>")
    return "\n".join(parts)


def _optimizer(folder: ModelFolder) -> str:
    """The optimizer's candidates, plots and choice; nothing for a folder it did not write."""
    where = folder.path / OPTIMIZE_FOLDER
    plots = sorted(where.glob("*.png")) if where.is_dir() else []
    record = where / CANDIDATES_FILE
    if not plots and not record.is_file():
        return ""
    parts = ["<h2 id='optimizer'>How the optimizer chose</h2>"]
    document = None
    if record.is_file():
        try:
            document = json.loads(record.read_text())
        except (ValueError, UnicodeDecodeError, OSError) as error:
            parts.append(f"<p class='warn'>The optimizer's record {escape(record)} cannot be read "
                         f"({escape(type(error).__name__)}); run <code>edgekit optimize</code> again.</p>")
    else:
        parts.append(f"<p class='note'>No candidates table beside these plots ({escape(record)} is "
                     "missing): run <code>edgekit optimize</code> again.</p>")
    if document is not None:
        parts += _candidates(document if isinstance(document, dict) else {"candidates": document},
                             as_dict(folder.manifest.get("optimize")))
    figures = [figure_html(path, path.stem) for path in plots]
    parts += [figure for figure in figures if figure]
    return "\n".join(parts)


def _candidates(document: dict, section: dict) -> list[str]:
    candidates = [item for item in document.get("candidates") or [] if isinstance(item, dict)]
    budget = as_dict(document.get("budget"))
    limit = budget.get("max_drop_points", section.get("max_drop_points"))
    objective = as_dict(document.get("objective")).get("name") or section.get("objective") or "latency"
    field, best = _OBJECTIVES.get(objective, _OBJECTIVES["latency"])
    show = ms_text if field == "p50_ms" else (lambda value: f"{size_text(value)} gzipped")
    budget_text = f"the {limit:g}-point budget" if is_number(limit) else "the budget"
    measured = [item for item in candidates if item.get("status") == "measured"]
    reference = budget.get("reference_accuracy_val", section.get("reference_accuracy_val"))
    parts = [f"<p><code>edgekit optimize</code> measured {len(measured)} of {len(candidates)} "
             f"candidates on the validation split, against the parent's Keras model"
             + (f" ({percent_text(reference)})" if is_number(reference) else "")
             + (f"; each may lose at most {limit:g} points of validation accuracy" if is_number(limit) else "")
             + ".</p>"]
    chosen = next((item for item in candidates if item.get("chosen")), None)
    within = sorted((item for item in candidates if item.get("within_budget") and is_number(item.get(field))),
                    key=lambda item: item[field])
    if chosen is None:
        parts.append(f"<p><b>No candidate was chosen</b>: none stayed within {budget_text}.</p>")
    else:
        others = [item for item in within if item is not chosen]
        why = (f"the only candidate within {budget_text}" if not others else
               f"{best} among the {len(within)} candidates within {budget_text}")
        value = f" ({show(chosen[field])})" if is_number(chosen.get(field)) else ""
        runner = (f"; next came {escape(others[0].get('name'))} at {show(others[0][field])}"
                  if others and is_number(others[0].get(field)) else "")
        test = chosen.get("accuracy_test", section.get("accuracy_test"))
        parts.append(f"<p><b>{escape(chosen.get('name'))}</b> won: {escape(why)}{escape(value)}{runner}."
                     + (f" Its test accuracy, measured once on this folder: {percent_text(test)}."
                        if is_number(test) else "") + "</p>")
    if document.get("stopped_by_time_budget"):
        parts.append("<p class='warn'>The time budget stopped the search; not measured: "
                     f"{escape(', '.join(map(str, document.get('skipped_for_time') or [])) or 'none named')}.</p>")
    rows, classes = [], []
    for item in candidates:
        status = str(item.get("status") or "—")
        if status == "measured":
            status = "within budget" if item.get("within_budget") else "over budget"
        if item.get("chosen"):
            status += ", chosen"
        rows.append([("★ " if item.get("chosen") else "") + str(item.get("name", "?")),
                     str(item.get("recipe") or "—"), format_name(item.get("runtime")),
                     percent_text(item.get("accuracy_val")), change_text(item.get("drop_points")),
                     size_text(item.get("size_bytes")), size_text(item.get("gzip_bytes")),
                     ms_text(item.get("p50_ms")), ms_text(item.get("p99_ms")), status])
        classes.append("chosen" if item.get("chosen") else "")
    parts.append(html_table(["Candidate", "Recipe", "Runtime", "Validation accuracy", "Change",
                         "Size", "Gzipped", "p50 latency", "p99 latency", "Verdict"], rows, classes,
                        wrap=(1, 9)))
    notes = [str(note) for note in [*(document.get("notes") or []), *(section.get("warnings") or [])]]
    if section.get("search_command"):
        notes.append(f"Search again: {section['search_command']}")
    parts += [f"<p class='note'>{escape(note)}</p>" for note in notes]
    return parts
