"""PNG plots of a benchmark: the trade-offs (with their Pareto front) and the latency distributions.

* ``accuracy_vs_latency.png`` and ``accuracy_vs_size.png``: one point per artifact; the Pareto
  front (no other artifact is both at least as accurate and at least as fast / small) is joined
  and its points ringed.
* ``latency_distribution.png``: each artifact's primary measurement as a box plot over its raw
  timings (log scale when they span more than a decade).
* ``throughput.png``: samples per second against batch size (or concurrency for a load test),
  when more than one was measured.
* ``throughput_vs_latency.png``: a Triton load test's curve, one line per served model and
  protocol (``-nobatch`` dashed), p50 latency against throughput with each point's concurrency
  written beside it; the p99 of each level is a faint marker on the same line.
"""

from __future__ import annotations

from pathlib import Path


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates (lower x and higher y are better).

    Example:
        >>> pareto_front([(1.0, 0.9), (2.0, 0.95), (3.0, 0.9)])
        [0, 1]
    """
    front = []
    for index, (x, y) in enumerate(points):
        dominated = any((ox <= x and oy >= y) and (ox < x or oy > y)
                        for other, (ox, oy) in enumerate(points) if other != index)
        if not dominated:
            front.append(index)
    return sorted(front, key=lambda i: points[i][0])


def write_plots(report: dict, folder: Path) -> dict:
    """Write every plot that has data; returns name -> path."""
    import matplotlib  # lazy: a heavy library, needed only when plots are written

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    rows = [row for row in report["artifacts"] if row.get("metrics")]
    written = {}
    for name, metric, label in (("accuracy_vs_latency", "p50_ms", "p50 latency (ms)"),
                                ("accuracy_vs_size", "size_mb", "size (MB)")):
        usable = [row for row in rows if row["metrics"].get(metric) is not None
                  and row["metrics"].get("accuracy") is not None]
        if usable:
            written[name] = _tradeoff(usable, metric, label, folder / f"{name}.png", report)
    measured = [row for row in rows if _primary(row) is not None]
    if measured:
        written["latency_distribution"] = _distribution(measured, folder / "latency_distribution.png",
                                                        report)
        if any(len(_series(row)) > 1 for row in measured):
            written["throughput"] = _throughput(measured, folder / "throughput.png", report)
        curves = [row for row in measured if len(_load_levels(row)) > 1]
        if curves:
            written["throughput_vs_latency"] = _throughput_vs_latency(
                curves, folder / "throughput_vs_latency.png", report)
    return written


def _load_levels(row: dict) -> list[dict]:
    """The primary batch's load-test measurements of a row, by concurrency."""
    run = next((run for run in row.get("runs", []) if run.get("status") == "ok"), None)
    if run is None or not run.get("measurements"):
        return []
    batch = run["measurements"][0]["batch"]
    levels = [m for m in run["measurements"] if m["batch"] == batch and "errors" in m]
    return sorted(levels, key=lambda m: m["concurrency"])


def _throughput_vs_latency(rows: list[dict], path: Path, report: dict) -> Path:
    import matplotlib.pyplot as plt  # lazy: a heavy library

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        levels = _load_levels(row)
        x = [m["latency_ms"]["p50"] for m in levels]
        y = [m["throughput_per_s"] or 0.0 for m in levels]
        style = "--" if row["name"].endswith("-nobatch") else "-"
        (line,) = axes.plot(x, y, style, marker="o", label=f"{row['name']} (p50)")
        p99 = [m["latency_ms"]["p99"] for m in levels]
        if all(value is not None for value in p99):
            axes.scatter(p99, y, marker="x", color=line.get_color(), alpha=0.45, s=20)
        for m, px, py in zip(levels, x, y):
            axes.annotate(f"c{m['concurrency']}", (px, py), textcoords="offset points",
                          xytext=(4, 4), fontsize=7, color=line.get_color())
    axes.set_xscale("log")
    axes.set_xlabel("latency per request (ms): p50 (line), p99 (x)")
    axes.set_ylabel("samples per second")
    axes.set_title(f"Throughput vs latency, concurrency c1..cN\n{_subtitle(report)}", fontsize=9)
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _primary(row: dict) -> dict | None:
    run = next((run for run in row.get("runs", []) if run.get("status") == "ok"), None)
    return run["measurements"][0] if run and run.get("measurements") else None


def _series(row: dict) -> list[tuple[int, float]]:
    run = next((run for run in row.get("runs", []) if run.get("status") == "ok"), None)
    if run is None:
        return []
    key = "concurrency" if len({m["concurrency"] for m in run["measurements"]}) > 1 else "batch"
    return [(m[key], m["throughput_per_s"] or 0.0) for m in run["measurements"]]


def _subtitle(report: dict) -> str:
    config, machine = report["config"], report["machine"]
    return (f"batch {config['batches'][0]}, {config['threads'][0]} thread(s) · {machine['cpu']} · "
            f"{machine['cores']} cores")


def _tradeoff(rows: list[dict], metric: str, label: str, path: Path, report: dict) -> Path:
    import matplotlib.pyplot as plt  # lazy: a heavy library

    points = [(row["metrics"][metric], row["metrics"]["accuracy"] * 100) for row in rows]
    front = pareto_front(points)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for index, (row, (x, y)) in enumerate(zip(rows, points)):
        axes.scatter([x], [y], s=40, zorder=3)
        # Staggered labels: artifacts of one model often share an accuracy to the last digit.
        axes.annotate(row["name"], (x, y), textcoords="offset points",
                      xytext=(5, 4 + 10 * (index % 4)), fontsize=8)
    axes.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="grey",
              zorder=2, label="Pareto front")
    axes.scatter([points[i][0] for i in front], [points[i][1] for i in front], s=140,
                 facecolors="none", edgecolors="black", zorder=4)
    xs = [x for x, _ in points if x > 0]
    if xs and max(xs) / min(xs) > 10:
        axes.set_xscale("log")
    axes.set_xlabel(label)
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"Accuracy vs {label.split(' (')[0]}\n{_subtitle(report)}", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _distribution(rows: list[dict], path: Path, report: dict) -> Path:
    import matplotlib.pyplot as plt  # lazy: a heavy library

    samples = [_primary(row)["samples_ms"] for row in rows]
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.8))
    style = {"whis": (1, 99), "showfliers": True, "flierprops": {"markersize": 2, "alpha": 0.4}}
    try:  # matplotlib >= 3.10 says orientation=; older ones only know vert=
        axes.boxplot(samples, orientation="horizontal", **style)
    except TypeError:
        axes.boxplot(samples, vert=False, **style)
    axes.set_yticks(range(1, len(rows) + 1), [row["name"] for row in rows], fontsize=8)
    low = min(min(values) for values in samples if values)
    high = max(max(values) for values in samples if values)
    if low > 0 and high / low > 10:
        axes.set_xscale("log")
    axes.set_xlabel("latency per call (ms); whiskers p1 / p99")
    axes.set_title(f"Latency distribution\n{_subtitle(report)}", fontsize=9)
    axes.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _throughput(rows: list[dict], path: Path, report: dict) -> Path:
    import matplotlib.pyplot as plt  # lazy: a heavy library

    figure, axes = plt.subplots(figsize=(7, 4.5))
    key = "batch"
    for row in rows:
        series = _series(row)
        if series:
            run = next(run for run in row["runs"] if run.get("status") == "ok")
            if len({m["concurrency"] for m in run["measurements"]}) > 1:
                key = "concurrency"
            axes.plot([x for x, _ in series], [y for _, y in series], "o-", label=row["name"])
    axes.set_xscale("log", base=2)
    axes.set_xlabel(key)
    axes.set_ylabel("samples per second")
    axes.set_title(f"Throughput\n{_subtitle(report)}", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
