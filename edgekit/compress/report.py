"""The before/after table ``edgekit compress`` prints, from a compress manifest's ``comparison``."""

from __future__ import annotations

_COLUMNS = ("", "accuracy", "drop", "params", "nonzero", "size", "gzipped", "size/fp32",
            "gz/fp32", "zeros in file")


def format_comparison(manifest: dict) -> str:
    """Rows for the parent (Keras, fp32 .tflite) and the result (Keras, .tflite), aligned."""
    rows = [_cells(row) for row in manifest["comparison"]["rows"]]
    table = [_COLUMNS, *rows]
    widths = [max(len(line[index]) for line in table) for index in range(len(_COLUMNS))]
    lines = []
    for line in table:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def summary_lines(manifest: dict) -> list[str]:
    """One-line verdicts under the table: accuracy change and how much smaller the .tflite is."""
    result = manifest["comparison"]["rows"][-1]
    drop = result["accuracy_drop_points"]
    if abs(drop) < 0.005:
        change = "same as the parent"
    else:
        change = f"{abs(drop):.2f} points {'below' if drop > 0 else 'above'} the parent"
    sparsity = result["weights_in_file"]["sparsity"]
    return [
        f"{manifest['recipe']}: {result['accuracy'] * 100:.2f}% test accuracy through LiteRT "
        f"({change}); .tflite {1 / result['size_ratio_to_parent_fp32_tflite']:.1f}x smaller than "
        f"the parent's fp32 .tflite, {1 / result['gzip_ratio_to_parent_fp32_tflite']:.1f}x "
        f"gzipped; {sparsity * 100:.1f}% of its weights are zeros",
    ]


def _cells(row: dict) -> tuple[str, ...]:
    label = row["label"] + (f" ({row['mode']})" if row.get("mode") else "")
    drop = row["accuracy_drop_points"]
    is_tflite = row["format"] == "tflite"
    weights = row.get("weights_in_file")
    zeros = ""
    if weights is not None:
        dtypes = "/".join(sorted(weights["by_dtype"])) or "none"
        zeros = f"{weights['sparsity'] * 100:.1f}% {dtypes}"
    return (
        label,
        f"{row['accuracy'] * 100:.2f}%",
        "" if drop is None else f"{drop:.2f}",
        f"{row['parameters']:,}" if "parameters" in row else "",
        f"{row['nonzero_weights']:,}" if "nonzero_weights" in row else "",
        _size(row["bytes"]),
        _size(row["gzip_bytes"]),
        f"{row['size_ratio_to_parent_fp32_tflite']:.2f}x" if is_tflite else "",
        f"{row['gzip_ratio_to_parent_fp32_tflite']:.2f}x" if is_tflite else "",
        zeros,
    )


def _size(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.2f} MB"
    if count >= 1_000:
        return f"{count / 1_000:.1f} kB"
    return f"{count} B"
