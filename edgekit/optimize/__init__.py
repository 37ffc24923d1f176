"""The optimizer: ``edgekit.optimize(...)`` and ``edgekit optimize``.

It sits above the stages: it asks ``edgekit.compress`` (and ``edgekit.export``) for candidates,
the bench harness for their latency, and writes the winner as a normal compress model folder.
No stage imports it. Importing this package loads neither TensorFlow nor ONNX Runtime.

Modules, bottom up:

- :mod:`~edgekit.optimize.config`: the declared options (:class:`OptimizeConfig`);
- :mod:`~edgekit.optimize.candidates`: the candidates, from the technique registry;
- :mod:`~edgekit.optimize.source`: the parent loaded once, its data, contract, calibration;
- :mod:`~edgekit.optimize.artifacts`: each candidate's file, scored on the validation split;
- :mod:`~edgekit.optimize.sensitivity`: per-layer int8 error and the fewest-layers fallback;
- :mod:`~edgekit.optimize.latency`: p50 / p99 from the bench harness;
- :mod:`~edgekit.optimize.search`: the order, dominance skipping, the time budget, the choice;
- :mod:`~edgekit.optimize.records` / :mod:`~edgekit.optimize.plots`: candidates.json, the
  terminal table, the Pareto and sensitivity plots;
- :mod:`~edgekit.optimize.winner`: the winner's model folder;
- :mod:`~edgekit.optimize.run`: :func:`optimize` itself.

Example:
    >>> from edgekit.optimize import optimize
    >>> result = optimize("models/cnn-digits", max_drop=0.5)
    >>> print(result.table())
"""

from edgekit.optimize.candidates import SEARCH_SETTINGS, Candidate, build_candidates
from edgekit.optimize.config import OptimizeConfig
from edgekit.optimize.run import (NoCandidateWithinBudgetError, OptimizeResult,
                                  default_output_dir, optimize)

__all__ = ["SEARCH_SETTINGS", "Candidate", "NoCandidateWithinBudgetError", "OptimizeConfig",
           "OptimizeResult", "build_candidates", "default_output_dir", "optimize"]
