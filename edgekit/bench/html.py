"""``edgekit report MODEL``: one self-contained HTML page about a model folder.

It gathers what the stages wrote: training curves and the confusion matrix (train), the
before / after table (compress), each artifact's fidelity (export) and the benchmark table and plots
(bench). Images are embedded, so the page can be mailed or attached to a CI run as one file.
Sections whose stage has not run say which command fills them.

Example:
    >>> write_report("models/cnn-digits")
    PosixPath('models/cnn-digits/report.html')
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from edgekit import manifest as manifest_io
from edgekit.bench.report import COLUMNS, _cells, column_headers, load_report
from edgekit.errors import ModelError, OptionError, OutputExistsError
from edgekit.outputs import OutputLock, writing

REPORT_NAME = "report.html"
_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;
padding:4px 8px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}.note{color:#666;font-size:0.9em}
code{background:#f6f6f6;padding:1px 4px}"""


GENERATOR = "edgekit report"


def write_report(model: str | os.PathLike, output: str | os.PathLike | None = None,
                 bench_json: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Write the page for a model folder; returns its path (default ``<model>/report.html``).

    The page is written beside its final path and renamed into place, so a failed rewrite keeps
    the previous page. An existing file that is not an edgekit report is never replaced; an
    earlier edgekit report at a path other than the default needs ``force``.

    Raises:
        ModelError: when ``model`` is not a model folder with a manifest.
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
        return _write_page(folder, manifest_io.read_manifest(folder), path, bench_json)


def _write_page(folder: Path, manifest: dict, path: Path, bench_json) -> Path:
    manifest = manifest_io.read_manifest(folder)
    bench_path = Path(bench_json) if bench_json else folder / "bench" / "bench.json"
    sections = [_header(folder, manifest), _training(folder, manifest),
                _compression(manifest), _export(folder), _benchmark(bench_path)]
    page = (f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<meta name='generator' content='{GENERATOR}'><title>edgekit report: "
            f"{html.escape(folder.name)}</title><style>{_STYLE}</style></head><body>"
            + "\n".join(sections) + "</body></html>\n")
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


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_text(cell))}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _missing(what: str, command: str) -> str:
    return f"<p class='note'>No {what} yet: run <code>{html.escape(command)}</code>.</p>"


def _header(folder: Path, manifest: dict) -> str:
    dataset = manifest.get("dataset") or {}
    model = manifest.get("model") or {}
    return (f"<h1>{html.escape(folder.name)}</h1><p>Stage <b>{html.escape(str(manifest.get('stage')))}"
            f"</b>, model <b>{html.escape(str(model.get('name', '?')))}</b> on "
            f"<b>{html.escape(str(dataset.get('name', '?')))}</b>; created "
            f"{html.escape(str(manifest.get('created', '?')))}.</p>"
            f"<p class='note'><code>{html.escape(str(manifest.get('command', '')))}</code></p>")


def _training(folder: Path, manifest: dict) -> str:
    parts = ["<h2>Training</h2>"]
    test = (manifest.get("evaluation") or {}).get("test") or {}
    if "accuracy" in test:
        parts.append(f"<p>Test accuracy: <b>{test['accuracy'] * 100:.2f}%</b></p>")
    plots = manifest.get("plots") or {}
    images = [_image(folder / name, key) for key, name in plots.items()]
    parts += [image for image in images if image] or \
        [_missing("training curves", f"edgekit train --output {folder}")]
    return "\n".join(parts)


def _compression(manifest: dict) -> str:
    rows = (manifest.get("comparison") or {}).get("rows")
    if not rows:
        return "<h2>Compression</h2>" + _missing("compression results",
                                                 "edgekit compress MODEL --int8")
    keys = [key for key in ("label", "format", "mode", "accuracy", "accuracy_drop_points", "bytes",
                            "gzip_bytes", "size_ratio_to_parent_fp32_tflite",
                            "gzip_ratio_to_parent_fp32_tflite")
            if any(key in row for row in rows)]
    return ("<h2>Compression</h2>"
            f"<p>Recipe: <code>{html.escape(json.dumps(manifest.get('recipe')))}</code></p>"
            + _table(keys, [[row.get(key) for key in keys] for row in rows]))


def _export(folder: Path) -> str:
    path = folder / "export" / manifest_io.MANIFEST_NAME
    if not path.is_file():
        return "<h2>Fidelity</h2>" + _missing("export", f"edgekit export {folder}")
    artifacts = (json.loads(path.read_text()).get("artifacts") or {}).values()
    rows = []
    for entry in artifacts:
        fidelity = entry.get("fidelity") or {}
        rows.append([entry.get("name"), entry.get("precision"), entry.get("bytes"),
                     fidelity.get("top1_agreement", fidelity.get("agreement")),
                     fidelity.get("max_abs_diff"), entry.get("status")])
    return ("<h2>Fidelity to the Keras model</h2>"
            + _table(["artifact", "precision", "bytes", "top-1 agreement", "max abs diff",
                      "status"], rows))


def _benchmark(path: Path) -> str:
    if not path.is_file():
        return "<h2>Benchmark</h2>" + _missing("benchmark", f"edgekit bench {path.parent.parent}")
    report = load_report(path)
    rows = [_cells(row) if row["status"] == "ok" else [row["name"], f"failed: {row['reason']}"]
            for row in report["artifacts"]]
    width = len(COLUMNS)
    rows = [row + [""] * (width - len(row)) for row in rows]
    machine = report["machine"]
    images = [_image(path.parent / relative, name)
              for name, relative in (report.get("plots") or {}).items()]
    return ("<h2>Benchmark</h2>" + _table(column_headers(report), rows)
            + f"<p class='note'>{html.escape(machine['cpu'])}, {machine['cores']} cores, "
            f"{html.escape(' '.join(machine['cpu_flags']))}; {html.escape(report['created'])}</p>"
            + "".join(images))
