import numpy as np
import pytest

from edgekit.train.evaluate import classification_report, format_report


def test_report_matches_hand_counted_metrics():
    y_true = np.array([0, 0, 1, 1, 2])
    probabilities = np.eye(3)[[0, 1, 1, 1, 0]] * 0.8 + 0.2 / 3
    report = classification_report(y_true, probabilities, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(3 / 5)
    rows = {row["class"]: row for row in report["per_class"]}
    assert rows["a"]["precision"] == pytest.approx(1 / 2) and rows["a"]["recall"] == pytest.approx(1 / 2)
    assert rows["b"]["precision"] == pytest.approx(2 / 3) and rows["b"]["recall"] == 1.0
    assert rows["c"]["f1"] == 0.0 and rows["c"]["support"] == 1
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report["loss"] > 0
    assert "60.00%" in format_report(report)
