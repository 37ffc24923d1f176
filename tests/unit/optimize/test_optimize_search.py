"""The search's order, choice, dominance skipping and time budget, with a fake lab."""

from __future__ import annotations

import pytest

from edgekit.optimize.candidates import build_candidates, select
from edgekit.optimize.config import OptimizeConfig
from edgekit.optimize.search import CHOICE_ROUNDS, Search
from edgekit.optimize.sensitivity import fewest_layers


def _config(**options):
    return OptimizeConfig.from_options({"model": "m", "max_drop": 1.0, **options})


def _candidates(*names):
    candidates, _ = build_candidates(("litert",))
    return select(candidates, list(names) if names else None)


def _statuses(result):
    return {outcome.name: outcome.status for outcome in result.outcomes}


def test_the_fastest_candidate_within_budget_wins_and_over_budget_ones_never_do(fake_lab):
    lab = fake_lab(accuracy={"tflite-int8": 0.85, "tflite-dynamic": 0.895},
                   p50={"tflite-fp32": 1.0, "tflite-fp16": 1.1, "tflite-dynamic": 0.8,
                        "tflite-int8": 0.4, "tflite-int16x8": 2.0})
    result = Search(_config(finetune=False), _candidates(), lab).run()
    assert result.chosen.name == "tflite-dynamic"  # int8 is faster but drops 5 points
    assert result.outcome("tflite-int8").within_budget is False
    assert result.outcome("tflite-int8").drop_points == 5.0


def test_size_objective_picks_the_smallest_gzipped_file_within_budget(fake_lab):
    lab = fake_lab(gzip={"tflite-fp32": 4000, "tflite-fp16": 2000, "tflite-int8": 1000,
                         "tflite-dynamic": 1100, "tflite-int16x8": 1200},
                   accuracy={"tflite-int8": 0.80})
    result = Search(_config(finetune=False, objective="size"), _candidates(), lab).run()
    assert result.chosen.name == "tflite-dynamic"


def test_a_post_training_candidate_that_cannot_win_and_is_slow_to_score_is_not_scored(fake_lab):
    # int16x8 at 500 ms a sample would take 50 s on 100 validation samples, and cannot win.
    lab = fake_lab(p50={"tflite-fp32": 1.0, "tflite-fp16": 1.0, "tflite-dynamic": 0.8,
                        "tflite-int8": 0.4, "tflite-int16x8": 500.0})
    result = Search(_config(finetune=False), _candidates(), lab).run()
    slow = result.outcome("tflite-int16x8")
    assert slow.status.startswith("skipped: dominated") and "about 50 s" in slow.status
    assert slow.artifact.accuracy_val is None and slow.value("p50_ms") == 500.0
    assert ("score", "tflite-int16x8") not in lab.calls
    assert ("score", "tflite-fp32") in lab.calls  # cheap to score: kept for the record
    scored = [name for kind, name in lab.calls if kind == "score"]
    assert scored[0] == "tflite-int8"  # best objective first
    assert result.chosen.name == "tflite-int8"


def test_no_finetune_runs_no_fine_tuning_and_says_so(fake_lab):
    lab = fake_lab()
    result = Search(_config(finetune=False), _candidates(), lab).run()
    assert not [call for call in lab.calls if call[0] == "fine-tuning"]
    fine_tuning = [o for o in result.outcomes if o.candidate.stage == "fine-tuning"]
    assert fine_tuning and all(o.status == "skipped: --no-finetune" for o in fine_tuning)


def test_a_fine_tuning_candidate_that_cannot_beat_the_best_is_skipped_as_dominated(fake_lab):
    # int8 is within budget: QAT converts to the same int8 kernels, so it can at best tie.
    lab = fake_lab(p50={"tflite-fp32": 1.0, "tflite-int8": 0.4})
    result = Search(_config(), _candidates("tflite-fp32", "tflite-int8", "tflite-qat",
                                           "tflite-prune80-qat"), lab).run()
    statuses = _statuses(result)
    assert statuses["tflite-qat"].startswith("skipped: dominated")
    assert statuses["tflite-prune80-qat"].startswith("skipped: dominated")
    assert ("fine-tuning", "tflite-qat") not in lab.calls


def test_fine_tuning_runs_when_int8_misses_the_budget_and_can_win(fake_lab):
    lab = fake_lab(accuracy={"tflite-int8": 0.80}, fallback={},
                   p50={"tflite-fp32": 1.0, "tflite-int8": 0.4, "tflite-qat": 0.41})
    result = Search(_config(), _candidates("tflite-fp32", "tflite-int8", "tflite-qat"),
                    lab).run()
    assert ("fine-tuning", "tflite-qat") in lab.calls
    assert result.chosen.name == "tflite-qat"


def test_size_bounds_let_pruning_run_where_qat_alone_is_dominated(fake_lab):
    lab = fake_lab(gzip={"tflite-fp32": 4000, "tflite-int8": 1000, "tflite-prune80-qat": 400})
    result = Search(_config(objective="size"),
                    _candidates("tflite-fp32", "tflite-int8", "tflite-qat", "tflite-prune80-qat"),
                    lab).run()
    statuses = _statuses(result)
    assert statuses["tflite-qat"].startswith("skipped: dominated")
    assert statuses["tflite-prune80-qat"] == "measured"
    assert result.chosen.name == "tflite-prune80-qat"


def test_the_fallback_runs_only_when_int8_misses_the_budget(fake_lab):
    within = Search(_config(finetune=False), _candidates(), fake_lab()).run()
    assert _statuses(within)["tflite-int8-fallback"].startswith("skipped: not needed")
    lab = fake_lab(accuracy={"tflite-int8": 0.5, "tflite-fp32": 0.9},
                   fallback={1: 0.6, 2: 0.89, 3: 0.9}, p50={"tflite-int8-fallback": 0.5})
    result = Search(_config(finetune=False), _candidates(), lab).run()
    fallback = result.outcome("tflite-int8-fallback")
    assert fallback.within_budget and fallback.artifact.details["float_layers"] == [
        "layer1", "layer2"]
    assert result.chosen.name == "tflite-int8-fallback"


def test_the_time_budget_skips_the_expensive_candidates_and_names_them(fake_lab):
    now = [0.0]

    def clock():
        now[0] += 10.0  # every look at the clock is 10 seconds later
        return now[0]

    lab = fake_lab(accuracy={"tflite-int8": 0.5}, p50={"tflite-int8": 0.4})
    result = Search(_config(time_budget=0.1), _candidates("tflite-fp32", "tflite-int8",
                                                          "tflite-int8-fallback", "tflite-qat"),
                    lab, clock=clock).run()
    statuses = _statuses(result)
    assert statuses["tflite-fp32"] == "measured" and statuses["tflite-int8"] == "measured"
    assert statuses["tflite-int8-fallback"] == "skipped: time budget"
    assert statuses["tflite-qat"] == "skipped: time budget"
    assert result.stopped_by_time_budget
    assert result.skipped_for_time == ["tflite-int8-fallback", "tflite-qat"]


def test_a_candidate_whose_latency_failed_cannot_win(fake_lab):
    class NoLatency(fake_lab):
        def latency(self, paths):
            found = super().latency(paths)
            if "tflite-int8" in found:
                from edgekit.optimize.latency import Latency

                found["tflite-int8"] = Latency(None, None, "worker crashed")
            return found

    lab = NoLatency(p50={"tflite-fp32": 1.0, "tflite-int8": 0.1})
    result = Search(_config(finetune=False), _candidates("tflite-fp32", "tflite-int8"),
                    lab).run()
    assert result.chosen.name == "tflite-fp32"
    assert _statuses(result)["tflite-int8"] == "failed: latency: worker crashed"


def test_fewest_layers_bisects_to_the_smallest_count_that_fits():
    ranked = [f"n{index}" for index in range(20)]
    tried = []

    def evaluate(nodes):
        tried.append(len(nodes))
        return 0.9 if len(nodes) >= 5 else 0.5

    search = fewest_layers(ranked, evaluate, lambda accuracy: accuracy >= 0.9)
    assert search.chosen.count == 5 and search.chosen.nodes == ranked[:5]
    assert tried == [1, 2, 4, 8, 6, 5]  # doubling, then bisection


def test_fewest_layers_without_a_fit_keeps_the_most_accurate_try_and_leaves_one_quantized():
    search = fewest_layers(["a", "b", "c"], lambda nodes: 0.1 * len(nodes), lambda a: a > 1)
    assert search.chosen is None
    assert search.best.count == 2  # never every layer: that would be fp32


def test_fewest_layers_stops_when_told_and_says_why():
    search = fewest_layers(["a", "b", "c"], lambda nodes: 0.0, lambda a: False,
                           keep_going=lambda: False)
    assert search.stopped == "time budget" and not search.trials


@pytest.fixture
def file_lab(fake_lab, tmp_path):
    """A fake lab whose artifacts exist as files (the final side-by-side timing needs them)."""

    class Files(fake_lab):
        def _artifact(self, candidate, accuracy=None):
            artifact = super()._artifact(candidate, accuracy)
            artifact.path = tmp_path / candidate.name
            artifact.path.write_bytes(b"model")
            return artifact

    return Files


def test_the_winner_is_decided_by_p50s_timed_side_by_side_in_rotated_rounds(file_lab):
    # The fallback looked fast in a bench run of its own (a quieter moment); timed beside the
    # others it is the slower one, and the choice follows the side-by-side run.
    from edgekit.optimize.latency import Latency

    class Files(file_lab):
        def latency(self, paths):
            found = super().latency(paths)
            if list(paths) == ["tflite-int8-fallback"]:
                found["tflite-int8-fallback"] = Latency(0.2, 0.4)
            return found

    lab = Files(accuracy={"tflite-int8": 0.80}, fallback={1: 0.9},
                p50={"tflite-fp32": 1.0, "tflite-dynamic": 0.5, "tflite-int8": 0.4,
                     "tflite-int8-fallback": 0.7})
    names = ("tflite-fp32", "tflite-dynamic", "tflite-int8", "tflite-int8-fallback")
    result = Search(_config(finetune=False), _candidates(*names), lab).run()
    together = [call[1] for call in lab.calls if call[0] == "latency"][-CHOICE_ROUNDS:]
    assert [set(names) for names in together] == [
        {"tflite-fp32", "tflite-dynamic", "tflite-int8-fallback"}] * CHOICE_ROUNDS
    assert len({names[0] for names in together}) == CHOICE_ROUNDS  # the order rotates
    assert result.outcome("tflite-int8-fallback").value("p50_ms") == 0.7
    assert result.chosen.name == "tflite-dynamic"


def test_one_noisy_round_of_the_final_timing_does_not_decide(file_lab):
    # A burst of load in one side-by-side round makes int8 look slow; the median of the rounds
    # keeps the order the other rounds agree on.
    from edgekit.optimize.latency import Latency

    class Noisy(file_lab):
        rounds = 0

        def latency(self, paths):
            found = super().latency(paths)
            if len(paths) > 1:
                Noisy.rounds += 1
                if Noisy.rounds == 2:  # the first of the final rounds
                    found["tflite-int8"] = Latency(5.0, 9.0)
            return found

    lab = Noisy(p50={"tflite-fp32": 1.0, "tflite-dynamic": 0.6, "tflite-int8": 0.4})
    result = Search(_config(finetune=False), _candidates("tflite-fp32", "tflite-dynamic",
                                                         "tflite-int8"), lab).run()
    assert Noisy.rounds == 1 + CHOICE_ROUNDS  # the post-training batch, then the final rounds
    assert result.outcome("tflite-int8").value("p50_ms") == 0.4
    assert result.chosen.name == "tflite-int8"
