"""Training curves and the confusion matrix as PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    # lazy: matplotlib is needed only for plots
    import matplotlib

    matplotlib.use("Agg")  # files only; never opens a window
    # lazy: matplotlib is needed only for plots
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: dict, path: str | Path, title: str, best_epoch: int | None = None) -> Path:
    """Loss and accuracy per epoch, training and validation, side by side.

    ``best_epoch`` (1-based), the epoch whose weights were kept, is marked with a dotted line.
    """
    # lazy: matplotlib is needed only for plots
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-o"), (f"val_{metric}", "--o")):
            if key in history:
                epochs = range(1, len(history[key]) + 1)
                axis.plot(epochs, history[key], style, markersize=3, label=key)
        if best_epoch:
            axis.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {best_epoch}")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def plot_confusion_matrix(matrix: list[list[int]], class_names: list[str], path: str | Path,
                          title: str) -> Path:
    """Counts of true (rows) against predicted (columns) classes."""

    plt = _pyplot()
    matrix = np.asarray(matrix)
    size = max(4.0, 0.55 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, fraction=0.046)
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    if len(class_names) <= 20:
        for row in ticks:
            for column in ticks:
                axis.text(column, row, int(matrix[row, column]), ha="center", va="center",
                          fontsize=8, color="white" if matrix[row, column] > threshold else "black")
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
