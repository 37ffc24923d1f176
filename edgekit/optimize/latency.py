"""Latency of candidates, from the bench harness: each artifact in a worker process of its own.

:func:`edgekit.bench` runs the artifacts one after the other, each in a fresh process, after
the method of TFLite's benchmark_model (warm-up, timed windows until the p50 is stable), on the
dataset's model-ready inputs at batch 1 and the search's thread count. Accuracy is not measured
there: the search scores candidates on the validation split itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.bench import ArtifactsFailedError, bench
from edgekit.optimize.source import Source

# Shorter than edgekit bench's defaults: a search compares many small artifacts on one machine;
# ``bench_options`` overrides them (and ``edgekit bench`` on the winner measures it at length).
SEARCH_TIMING = {"warmup_runs": 5, "warmup_seconds": 0.2, "min_runs": 50, "min_seconds": 0.5,
                 "max_windows": 3}


@dataclass(frozen=True)
class Latency:
    """p50 and p99 in milliseconds, or why the artifact could not be timed."""

    p50_ms: float | None
    p99_ms: float | None
    reason: str | None = None


def measure_latency(paths: dict[str, Path], source: Source, threads: int, output: Path,
                    bench_options: dict | None = None) -> dict[str, Latency]:
    """Time every artifact in ``paths`` (candidate name -> file) with the bench harness.

    Args:
        paths: the files to time, by candidate name.
        source: the parent, for its dataset and input contract.
        threads: runtime threads.
        output: where bench writes its bench.json (kept in the search's work folder).
        bench_options: bench timing options over :data:`SEARCH_TIMING`.

    Returns:
        name -> :class:`Latency`; an artifact that failed to load or run has its reason.
    """
    if not paths:
        return {}
    options = {**SEARCH_TIMING, **(bench_options or {})}
    try:
        result = bench(*[str(path) for path in paths.values()], output_dir=output,
                       dataset=source.spec, data_dir=source.data_dir,
                       preprocess=source.preprocess, accuracy=False, threads=(threads,),
                       batches=(1,), **options)
    except ArtifactsFailedError as error:  # the others are measured all the same
        result = error.result
    rows = {Path(row["path"]).resolve(): row for row in result.artifacts}
    found = {}
    for name, path in paths.items():
        row = rows.get(Path(path).resolve())
        if row is None:
            found[name] = Latency(None, None, "not measured by edgekit bench")
            continue
        metrics = row.get("metrics") or {}
        if row.get("status") != "ok" or metrics.get("p50_ms") is None:
            found[name] = Latency(None, None, row.get("reason") or "no latency measured")
        else:
            found[name] = Latency(metrics["p50_ms"], metrics.get("p99_ms"))
    return found
