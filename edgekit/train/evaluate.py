"""Test-set metrics of a classifier: accuracy, per-class precision / recall / F1, confusion."""

from __future__ import annotations

import numpy as np


def classification_report(y_true: np.ndarray, probabilities: np.ndarray,
                          class_names: list[str]) -> dict:
    """Metrics of predicted class probabilities against integer labels.

    Returns:
        ``{"accuracy", "loss", "per_class": [{"class", "precision", "recall", "f1", "support"}],
        "macro_f1", "confusion_matrix"}``; ``loss`` is the mean cross-entropy.
    """
    # lazy: scikit-learn takes about a second to import; only data loading needs it
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = probabilities.argmax(axis=1)
    labels = np.arange(len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, predicted, labels=labels, zero_division=0
    )
    picked = np.clip(probabilities[np.arange(len(y_true)), y_true], 1e-12, 1.0)
    return {
        "accuracy": float((predicted == y_true).mean()),
        "loss": float(-np.log(picked).mean()),
        "samples": int(len(y_true)),
        "macro_f1": float(f1.mean()),
        "per_class": [
            {"class": name, "precision": float(p), "recall": float(r), "f1": float(f),
             "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        ],
        "confusion_matrix": confusion_matrix(y_true, predicted, labels=labels).tolist(),
    }


def format_report(report: dict) -> str:
    """The per-class table printed at the end of training."""
    width = max(12, *(len(row["class"]) for row in report["per_class"]))
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for row in report["per_class"]:
        lines.append(
            f"{row['class']:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  "
            f"{row['f1']:5.3f}  {row['support']:7d}"
        )
    lines.append(
        f"{'accuracy':<{width}}  {report['accuracy'] * 100:8.2f}%  (macro F1 {report['macro_f1']:.3f}, "
        f"{report['samples']} test samples)"
    )
    return "\n".join(lines)
