"""Words and units for the report page: percentages, changes in points, sizes, times, tables and
embedded figures, so no manifest key or bare fraction reaches the page a person reads."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;
line-height:1.4}h2{border-bottom:1px solid #ddd;padding-bottom:2px;margin-top:1.6em}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.88em}td,th{border:1px solid #ccc;
padding:3px 7px;text-align:right;white-space:nowrap}th{background:#f3f3f3;white-space:normal}
.w{white-space:normal}.t{text-align:left}tr.chosen td{background:#e7f4e4;font-weight:600}
figure{margin:0.4em 0}figcaption{color:#555;font-size:0.85em}img{max-width:100%;
border:1px solid #eee}.grid{display:grid;grid-template-columns:1fr 1fr;gap:10px;
align-items:start}.grid.wide{grid-template-columns:3fr 2fr}.note{color:#666;font-size:0.9em}
.warn{color:#8a5300}code{background:#f6f6f6;padding:1px 4px;font-size:0.85em;word-break:break-all}"""
FORMAT_NAMES = {"keras": "Keras", "tflite": "TFLite", "onnx": "ONNX", "saved_model": "SavedModel",
            "triton": "Triton (ONNX)", "mobile": "mobile bundle", "keras3": "Keras 3",
            "litert": "LiteRT", "onnxruntime": "ONNX Runtime"}
FIGURE_CAPTIONS = {
    "training_curves": "Training curves of {name}: loss and accuracy per epoch, training and validation",
    "confusion_matrix": "Confusion matrix of {name} on the test split",
    "accuracy_vs_latency": "Accuracy against p50 latency", "accuracy_vs_size": "Accuracy against size",
    "latency_distribution": "Distribution of one call's latency", "throughput": "Throughput by batch and threads",
    "pareto": "Accuracy drop against p50 latency and gzipped size: green within budget, red over, "
              "star the chosen one, a line along the Pareto front",
    "sensitivity": "How much int8 hurts each layer (kept in float: orange)"}
NUMERIC_CELL = re.compile(r"^([-+]?\d|—$|no change$|reference$)")  # right-aligned cells


def escape(value) -> str:
    return html.escape(str(value))


def as_dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def percent_text(fraction) -> str:
    return f"{fraction:.2%}" if is_number(fraction) else "—"


def change_text(drop_points) -> str:
    """A drop in points as the change a person reads: 0.28 -> '-0.28 points'."""
    if not is_number(drop_points):
        return "—"
    return "no change" if abs(drop_points) < 0.005 else f"{-drop_points:+.2f} points"


def size_text(count) -> str:
    if not is_number(count):
        return "—"
    if count >= 1e6:
        return f"{count / 1e6:.2f} MB"
    return f"{count / 1e3:.1f} kB" if count >= 1e3 else f"{count:.0f} B"


def ms_text(value) -> str:
    if not is_number(value):
        return "—"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"


def diff_text(value) -> str:
    return f"{value:.2g}" if is_number(value) else "—"


def format_name(name) -> str:
    return FORMAT_NAMES.get(name, str(name or "?"))


def when_text(created: str) -> str:
    """'2026-11-30T08:47:35+00:00' -> '2026-11-30 08:47 UTC'."""
    text = str(created or "")
    if len(text) >= 16 and text[10] == "T":
        return text[:10] + " " + text[11:16] + (" UTC" if text.endswith("+00:00") else "")
    return text or "an unrecorded time"


def html_table(headers: list[str], rows: list[list[str]], classes: list[str] | None = None,
           wrap: tuple[int, ...] = ()) -> str:
    """A table of plain-text cells (escaped here); ``classes`` marks rows (``chosen``).

    Figures are right-aligned, words left-aligned (a header as its first cell); only the cells of
    the ``wrap`` columns break across lines.
    """
    def kind(cell: str, index: int) -> str:
        names = ([] if NUMERIC_CELL.match(cell) else ["t"]) + (["w"] if index in wrap else [])
        return f" class='{' '.join(names)}'" if names else ""

    first = rows[0] if rows else headers
    head = "".join(f"<th{kind(first[index], -1) if index < len(first) else ''}>{escape(header)}</th>"
                   for index, header in enumerate(headers))
    body = ""
    for index, row in enumerate(rows):
        marked = f" class='{classes[index]}'" if classes and classes[index] else ""
        body += f"<tr{marked}>" + "".join(f"<td{kind(cell, column)}>{escape(cell)}</td>"
                                          for column, cell in enumerate(row)) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def figure_html(path: Path, key: str, name: str = "") -> str:
    """The PNG at ``path`` embedded with its caption; nothing for a missing file or another kind."""
    data = path.read_bytes() if path.is_file() else b""
    if not data.startswith(PNG_SIGNATURE):  # a manifest names only PNGs: never embed another file
        return ""
    caption = FIGURE_CAPTIONS.get(key, key.replace("_", " ").capitalize()).replace("{name}", name)
    data = base64.b64encode(data).decode()
    return (f"<figure><img alt='{escape(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def missing_html(what: str, command: str) -> str:
    return f"<p class='note'>No {what} yet: run <code>{escape(command)}</code>.</p>"
