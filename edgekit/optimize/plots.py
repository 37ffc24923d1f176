"""The search's two figures, as PNG.

* ``pareto.png``: every measured candidate, accuracy drop (validation, points) against p50
  latency (left) and against gzipped size (right); the budget is a dashed line, the Pareto front
  of the candidates (nothing else both drops less and is faster / smaller) is joined, the chosen
  candidate is starred.
* ``sensitivity.png``: each fallback's per-layer int8 error (relative RMS, log scale), most
  sensitive first; the layers kept in float are highlighted.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.bench.plots import pareto_front
from edgekit.optimize.search import SearchResult

_MOST_LAYERS_SHOWN = 30


def write_plots(result: SearchResult, fallbacks: dict, folder: Path, title: str) -> dict:
    """Write the plots that have data into ``folder``; returns name -> path."""
    # lazy: matplotlib takes about 0.5 s to import; only a finished search draws
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    measured = [outcome for outcome in result.outcomes
                if outcome.measured and outcome.drop_points is not None]
    if measured:
        written["pareto"] = _pareto(result, measured, folder / "pareto.png", title)
    rankings = {name: record for name, record in fallbacks.items() if record.get("ranking")}
    if rankings:
        written["sensitivity"] = _sensitivity(rankings, folder / "sensitivity.png", title)
    return written


def _pareto(result: SearchResult, measured: list, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt  # lazy: see write_plots

    figure, axes = plt.subplots(1, 2, figsize=(12, 5))
    for axis, field, label, scale in (
            (axes[0], "p50_ms", "p50 latency, batch 1 (ms)", 1.0),
            (axes[1], "gzip_bytes", "size, gzipped (kB)", 1e-3)):
        usable = [outcome for outcome in measured if outcome.value(field) is not None]
        points = [(outcome.value(field) * scale, -outcome.drop_points) for outcome in usable]
        for outcome, (x, y) in zip(usable, points):
            color = "tab:green" if outcome.within_budget else "tab:red"
            axis.scatter([x], [-y], color=color, marker="*" if outcome.chosen else "o",
                         s=220 if outcome.chosen else 40, zorder=3,
                         edgecolors="black" if outcome.chosen else "none")
            axis.annotate(outcome.name, (x, -y), textcoords="offset points", xytext=(5, 4),
                          fontsize=7)
        front = pareto_front(points)
        if len(front) > 1:
            axis.plot([points[index][0] for index in front], [-points[index][1] for index in front],
                      color="tab:blue", linewidth=1, alpha=0.6, label="Pareto front")
        axis.axhline(result.max_drop, color="gray", linestyle="--",
                     label=f"budget: {result.max_drop:g} points")
        axis.set_xlabel(label)
        # symlog: drops near the budget stay readable beside a candidate that drops 80 points
        axis.set_yscale("symlog", linthresh=max(result.max_drop, 0.5))
        axis.set_ylabel("accuracy drop, validation (points)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="upper right")
    figure.suptitle(f"{title}: candidates (green within budget, red over, star chosen)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _sensitivity(rankings: dict, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt  # lazy: see write_plots

    figure, axes = plt.subplots(1, len(rankings), figsize=(7 * len(rankings), 6), squeeze=False)
    for axis, (name, record) in zip(axes[0], rankings.items()):
        ranking = record["ranking"][:_MOST_LAYERS_SHOWN]
        kept = set(record.get("float_nodes") or [])
        labels = [item["layer"] or f"{item['op']} ({item['node'][:32]})" for item in ranking]
        errors = [max(item["error"], 1e-6) for item in ranking]
        colors = ["tab:orange" if item["node"] in kept else "tab:blue" for item in ranking]
        positions = list(range(len(ranking)))[::-1]
        axis.barh(positions, errors, color=colors)
        axis.set_yticks(positions)
        axis.set_yticklabels(labels, fontsize=7)
        axis.set_xscale("log")
        axis.set_xlabel("int8 error of the layer's output (relative RMS)")
        kept_text = ", ".join(record.get("float_layers") or []) or "none"
        axis.set_title(f"{name}: kept in float (orange): {kept_text}", fontsize=9)
        axis.grid(alpha=0.3, axis="x")
    figure.suptitle(f"{title}: per-layer int8 sensitivity")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
