"""The search: cheap candidates first, expensive ones only while they can still win.

Order (issue 14):

1. **post-training** candidates (seconds each): every one converted from the parent loaded
   once and timed by the bench harness, then scored on the validation split best objective
   first; one that can no longer win is still scored for the record unless that would take
   more than :data:`SKIP_SCORING_SECONDS` (int16x8 runs LiteRT's reference kernels: 6,000
   Fashion-MNIST samples took two minutes), then it keeps its size and latency, unscored;
2. the **per-layer fallback** of int8 (per runtime), only when full int8 is measured and not
   within budget: the fewest layers kept in float (:mod:`edgekit.optimize.sensitivity`); the
   ONNX one starts from the layers the TFLite one kept;
3. **fine-tuning** candidates, most promising first, each only while the time budget lasts and
   only while it can still win: a candidate is *dominated*, and skipped, when even its
   optimistic bound is no better than the best candidate within budget so far. Its bound is the
   post-training candidate of the same precision and runtime (edgekit never sets TFLite's sparse
   kernels, so a pruned or clustered int8 model runs the same dense kernels as int8): the same
   latency, and for size its gzipped size times the technique's ``size_factor``.

The time budget (``time_budget`` minutes, counted from the start of the run) is checked before
the fallback, between its steps and before each fine-tuning candidate; post-training candidates
always run. The winner is the candidate within budget (validation drop <= ``max_drop``) with the
lowest objective (p50 latency or gzipped size); ties go to the cheaper stage.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

from edgekit.errors import EdgekitError, short_reason
from edgekit.optimize.artifacts import Artifact, Workbench
from edgekit.optimize.candidates import (FINE_TUNING, LAYER_FALLBACK, POST_TRAINING, STAGES,
                                         Candidate)
from edgekit.optimize.latency import Latency, measure_latency
from edgekit.optimize.sensitivity import onnx_fallback, tflite_fallback

MEASURED = "measured"
# A post-training candidate that can no longer win is still scored for the record, unless that
# takes longer than this (seconds, estimated from its latency).
SKIP_SCORING_SECONDS = 10.0
# Accuracy is a share of samples: a drop equal to the budget is within it, float noise aside.
_TOLERANCE = 1e-9
# The candidates within budget are timed together this many times, the order rotated each time;
# each one's p50 is the median over the runs. One run was not enough on shared cores: a burst of
# load during one candidate's turn once made dynamic-range resnet8 look 15% faster than int8,
# which the next bench run measured 42% slower.
CHOICE_ROUNDS = 3


@dataclass
class Outcome:
    """What happened to one candidate: measured (with its figures), skipped or failed (why)."""

    candidate: Candidate
    status: str = "pending"
    artifact: Artifact | None = None
    latency: Latency | None = None
    drop_points: float | None = None
    within_budget: bool = False
    chosen: bool = False
    accuracy_test: float | None = None

    @property
    def name(self) -> str:
        return self.candidate.name

    @property
    def measured(self) -> bool:
        return self.status == MEASURED

    def value(self, field_name: str) -> float | None:
        """A figure of the record (``p50_ms``, ``gzip_bytes``...), None when not measured."""
        if field_name in ("p50_ms", "p99_ms"):
            return getattr(self.latency, field_name, None) if self.latency else None
        if self.artifact is None:
            return None
        return {"size_bytes": self.artifact.size_bytes, "gzip_bytes": self.artifact.gzip_bytes,
                "accuracy_val": self.artifact.accuracy_val}.get(field_name)


@dataclass
class SearchResult:
    """Every candidate's outcome, in search order, and how the search went."""

    outcomes: list
    reference_accuracy: float
    max_drop: float
    objective_field: str
    seconds: float = 0.0
    skipped_for_time: list = field(default_factory=list)

    @property
    def stopped_by_time_budget(self) -> bool:
        return bool(self.skipped_for_time)

    @property
    def chosen(self) -> Outcome | None:
        return next((outcome for outcome in self.outcomes if outcome.chosen), None)

    def outcome(self, name: str) -> Outcome | None:
        return next((outcome for outcome in self.outcomes if outcome.name == name), None)

    def ranked(self) -> list[Outcome]:
        """The candidates within budget, best objective first (ties: the cheaper stage)."""
        eligible = [outcome for outcome in self.outcomes if outcome.measured
                    and outcome.within_budget and outcome.value(self.objective_field) is not None]
        return sorted(eligible, key=lambda outcome: (outcome.value(self.objective_field),
                                                     STAGES.index(outcome.candidate.stage)))

    def choose(self, outcome: Outcome | None) -> None:
        """Mark ``outcome`` as the chosen one (None: no candidate)."""
        for item in self.outcomes:
            item.chosen = item is outcome

    def closest(self, count: int = 3) -> list[Outcome]:
        """The measured candidates nearest to the budget (smallest drop first)."""
        measured = [outcome for outcome in self.outcomes
                    if outcome.measured and outcome.drop_points is not None]
        return sorted(measured, key=lambda outcome: outcome.drop_points)[:count]


class Search:
    """One search over ``candidates``.

    Args:
        config: the :class:`edgekit.optimize.config.OptimizeConfig`.
        candidates: from :func:`edgekit.optimize.candidates.build_candidates`, in order.
        lab: builds and measures (see :class:`Lab`; tests pass a fake).
        started: when the run started (``clock()`` units), for the time budget.
        clock: seconds, monotonic.
        say: progress lines (None: silent).
    """

    def __init__(self, config, candidates: list[Candidate], lab, started: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 say: Callable[[str], None] | None = None):
        self.config = config
        self.lab = lab
        self.clock = clock
        self.started = clock() if started is None else started
        self.say = say or (lambda line: None)
        self.outcomes = [Outcome(candidate) for candidate in candidates]
        self.skipped_for_time: list[str] = []
        self.reference = 0.0  # the parent's validation accuracy, set by run()

    def run(self) -> SearchResult:
        self.reference = reference = self.lab.reference_accuracy()
        self.say(f"optimize: parent Keras model: validation accuracy {reference:.2%}; budget: "
                 f"drop <= {self.config.max_drop:g} points; objective: {self.config.objective}")
        self._post_training()
        self._fallbacks()
        self._fine_tuning()
        self._choose()
        return SearchResult(outcomes=self.outcomes, reference_accuracy=reference,
                            max_drop=self.config.max_drop,
                            objective_field=self.config.objective_field,
                            seconds=round(self.clock() - self.started, 2),
                            skipped_for_time=list(self.skipped_for_time))

    # --- the three stages ----------------------------------------------------------------------

    def _post_training(self) -> None:
        """Convert every one, time them together, then score them best objective first: one
        that can no longer win and would take long to score (int16x8 runs LiteRT's reference
        kernels, tens of ms a sample) keeps its size and latency, unscored."""
        built = []
        for outcome in self._of_stage(POST_TRAINING):
            try:
                outcome.artifact = self.lab.post_training(outcome.candidate)
            except EdgekitError as error:
                self._fail(outcome, error)
                continue
            built.append(outcome)
        self._measure_latency(built)
        for outcome in sorted(built, key=self._objective_order):
            best, value = self._best(), outcome.value(self._field)
            cost = self._scoring_seconds(outcome)
            if (best is not None and value is not None and value >= best.value(self._field)
                    and cost is not None and cost > SKIP_SCORING_SECONDS):
                outcome.status = (f"skipped: dominated, {self._shown(value)} against "
                                  f"{best.name}'s {self._shown(best.value(self._field))}; "
                                  f"scoring it would take about {cost:.0f} s")
                continue
            try:
                outcome.artifact.accuracy_val = self.lab.score(outcome.candidate,
                                                               outcome.artifact)
            except EdgekitError as error:
                self._fail(outcome, error)
                continue
            self._score(outcome, outcome.artifact)
            self._check_latency(outcome)

    def _fallbacks(self) -> None:
        kept_layers: list[str] = []
        for outcome in self._of_stage(LAYER_FALLBACK):
            base = self._outcome(outcome.name[:-len("-fallback")])
            if base is None or not base.measured:
                outcome.status = (f"skipped: {outcome.name[:-len('-fallback')]} was not "
                                  "measured, so there is nothing to fall back from")
                continue
            if base.within_budget:
                outcome.status = f"skipped: not needed, {base.name} is within budget"
                continue
            if not self._time_left():
                self._skip_for_time(outcome)
                continue
            self.say(f"optimize: {outcome.name}: {base.name} drops {base.drop_points:.2f} "
                     "points; searching the fewest layers to keep in float")
            try:
                artifact, record = self.lab.fallback(outcome.candidate, self._fits,
                                                     self._time_left, kept_layers)
            except EdgekitError as error:
                outcome.status = f"failed: {error}"
                continue
            if artifact is None:
                outcome.status = ("skipped: time budget" if record.get("stopped")
                                  else "failed: no layer could be kept in float")
                if record.get("stopped"):
                    self.skipped_for_time.append(outcome.name)
                continue
            self._score(outcome, artifact)
            if outcome.candidate.runtime == "litert":
                kept_layers = list(record.get("float_layers") or [])
            self._measure_latency([outcome])
            self._check_latency(outcome)
            if record.get("stopped"):
                self.skipped_for_time.append(f"{outcome.name} (search cut short)")

    def _fine_tuning(self) -> None:
        waiting = self._of_stage(FINE_TUNING)
        if not self.config.finetune:
            for outcome in waiting:
                outcome.status = "skipped: --no-finetune"
            return
        for outcome in sorted(waiting, key=self._bound_order):
            best = self._best()
            bound = self._bound(outcome)
            if best is not None and bound is not None and bound >= best.value(self._field):
                outcome.status = (f"skipped: dominated, at best {self._shown(bound)} against "
                                  f"{best.name}'s {self._shown(best.value(self._field))}")
                continue
            if not self._time_left():
                self._skip_for_time(outcome)
                continue
            self.say(f"optimize: {outcome.name}: fine-tuning "
                     f"({self.config.finetune_epochs} epoch(s))")
            if self._build(outcome, self.lab.fine_tuning):
                self._measure_latency([outcome])
                self._check_latency(outcome)

    # --- helpers -------------------------------------------------------------------------------

    @property
    def _field(self) -> str:
        return self.config.objective_field

    def _of_stage(self, stage: str) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.candidate.stage == stage]

    def _outcome(self, name: str) -> Outcome | None:
        return next((outcome for outcome in self.outcomes if outcome.name == name), None)

    def _build(self, outcome: Outcome, build) -> bool:
        try:
            artifact = build(outcome.candidate)
        except EdgekitError as error:
            self._fail(outcome, error)
            return False
        self._score(outcome, artifact)
        if artifact.details.get("refused"):
            outcome.status = f"failed: edgekit compress refuses it: {artifact.details['refused']}"
            outcome.within_budget = False
            self.say(f"optimize: {outcome.name}: {outcome.status}")
            return False
        return True

    def _fail(self, outcome: Outcome, error: EdgekitError) -> None:
        outcome.status = f"failed: {error}"
        outcome.within_budget = False
        self.say(f"optimize: {outcome.name}: failed: {error}")

    def _score(self, outcome: Outcome, artifact: Artifact) -> None:
        outcome.artifact = artifact
        outcome.drop_points = round((self.reference - artifact.accuracy_val) * 100, 4)
        outcome.within_budget = self._fits(artifact.accuracy_val)
        outcome.status = MEASURED

    def _fits(self, accuracy: float) -> bool:
        return (self.reference - accuracy) * 100 <= self.config.max_drop + _TOLERANCE

    def _measure_latency(self, outcomes: list[Outcome], rounds: int = 1) -> None:
        """p50 / p99 of candidates, each in a process of its own; with ``rounds`` > 1 timed
        that many times in rotated order, each value the median over the rounds it ran in."""
        if not outcomes:
            return
        paths = {outcome.name: outcome.artifact.path for outcome in outcomes}
        names = list(paths)
        runs: dict[str, list[Latency]] = {name: [] for name in names}
        for turn in range(rounds):
            order = names[turn % len(names):] + names[:turn % len(names)]
            try:
                found = self.lab.latency({name: paths[name] for name in order})
            except EdgekitError as error:
                found = {name: Latency(None, None, short_reason(error)) for name in order}
            for name in order:
                runs[name].append(found.get(name) or Latency(None, None, "not measured"))
        for outcome in outcomes:
            outcome.latency = _median_latency(runs[outcome.name])

    def _check_latency(self, outcome: Outcome) -> None:
        """A scored candidate that could not be timed cannot win; say how it went."""
        if outcome.latency is None or outcome.latency.p50_ms is None:
            reason = outcome.latency.reason if outcome.latency else "not measured"
            outcome.status = f"failed: latency: {reason}"
            outcome.within_budget = False
        self.say(_progress_line(outcome))

    def _objective_order(self, outcome: Outcome):
        value = outcome.value(self._field)
        return (value is None, value if value is not None else 0.0)

    def _scoring_seconds(self, outcome: Outcome) -> float | None:
        """About how long scoring takes: its batch-1 p50 times the validation samples."""
        p50 = outcome.value("p50_ms")
        count = getattr(self.lab, "validation_samples", None)
        return None if p50 is None or count is None else p50 / 1000 * count

    def _best(self) -> Outcome | None:
        eligible = [outcome for outcome in self.outcomes if outcome.measured
                    and outcome.within_budget and outcome.value(self._field) is not None]
        if not eligible:
            return None
        return min(eligible, key=lambda outcome: (outcome.value(self._field),
                                                  STAGES.index(outcome.candidate.stage)))

    def _bound(self, outcome: Outcome) -> float | None:
        """The best objective value a fine-tuning candidate could reach (None: unknown)."""
        candidate = outcome.candidate
        twin = self._outcome(f"{candidate.format}-{candidate.precision}")
        if twin is None or not twin.measured or twin.value(self._field) is None:
            return None
        if self.config.objective == "latency":
            return twin.value(self._field)
        if candidate.size_factor is None:
            return None
        return twin.value(self._field) * candidate.size_factor

    def _bound_order(self, outcome: Outcome):
        bound = self._bound(outcome)
        return (bound is None, bound if bound is not None else 0.0)

    def _time_left(self) -> bool:
        budget = self.config.time_budget_seconds
        return budget is None or self.clock() - self.started < budget

    def _skip_for_time(self, outcome: Outcome) -> None:
        outcome.status = "skipped: time budget"
        self.skipped_for_time.append(outcome.name)

    def _choose(self) -> None:
        # The fallback and the fine-tuned candidates were timed in bench runs of their own; the
        # candidates within budget are timed again together (CHOICE_ROUNDS runs, the order
        # rotated), so the winner is decided by median p50s measured side by side here.
        eligible = [outcome for outcome in self.outcomes if outcome.measured
                    and outcome.within_budget and outcome.value(self._field) is not None
                    and outcome.artifact is not None and outcome.artifact.path.exists()]
        if self.config.objective == "latency" and len(eligible) > 1:
            self.say(f"optimize: timing the {len(eligible)} candidates within budget again, "
                     f"side by side, {CHOICE_ROUNDS} times in rotated order")
            self._measure_latency(eligible, rounds=CHOICE_ROUNDS)
        best = self._best()
        if best is not None:
            best.chosen = True

    def _shown(self, value: float) -> str:
        return f"{value:.4f} ms" if self._field == "p50_ms" else f"{value:,.0f} B gzipped"


def _median_latency(runs: list[Latency]) -> Latency:
    """The median p50 and p99 of the runs that measured; the last reason when none did."""
    timed = [run for run in runs if run.p50_ms is not None]
    if not timed:
        return runs[-1] if runs else Latency(None, None, "not measured")
    p99s = [run.p99_ms for run in timed if run.p99_ms is not None]
    return Latency(statistics.median(run.p50_ms for run in timed),
                   statistics.median(p99s) if p99s else None)


def _progress_line(outcome: Outcome) -> str:
    artifact, latency = outcome.artifact, outcome.latency
    accuracy = f"val {artifact.accuracy_val:.2%} (drop {outcome.drop_points:+.2f})"
    timing = f"p50 {latency.p50_ms:.4f} ms" if latency and latency.p50_ms is not None else \
        f"latency failed: {latency.reason if latency else '?'}"
    mark = "within budget" if outcome.within_budget else "over budget"
    return (f"optimize: {outcome.name:<28} {accuracy}  {artifact.size_bytes:,} B "
            f"({artifact.gzip_bytes:,} gzipped)  {timing}  {mark}")


class Lab:
    """The real builder and meter of a search: a :class:`Workbench`, the sensitivity search
    and the bench harness, all writing under ``work``."""

    def __init__(self, workbench: Workbench, config):
        self.workbench = workbench
        self.config = config
        self.fallbacks: dict[str, dict] = {}
        self._benches = 0

    def reference_accuracy(self) -> float:
        return self.workbench.reference_accuracy()

    @property
    def validation_samples(self) -> int:
        return len(self.workbench.y_val)

    def post_training(self, candidate: Candidate) -> Artifact:
        return self.workbench.post_training(candidate)

    def score(self, candidate: Candidate, artifact: Artifact) -> float:
        return self.workbench.score(candidate, artifact)

    def fine_tuning(self, candidate: Candidate) -> Artifact:
        return self.workbench.fine_tuning(candidate)

    def fallback(self, candidate: Candidate, fits, keep_going, kept_layers):
        if candidate.runtime == "litert":
            outcome = tflite_fallback(self.workbench, candidate, fits, keep_going)
        else:
            outcome = onnx_fallback(self.workbench, candidate, fits, keep_going, kept_layers)
        record = outcome.record()
        self.fallbacks[candidate.name] = record
        return outcome.artifact, record

    def latency(self, paths: dict) -> dict:
        self._benches += 1
        output = self.workbench.work / "bench" / f"round-{self._benches}"
        return measure_latency(paths, self.workbench.source, self.config.threads, output,
                               self.config.bench_options)
