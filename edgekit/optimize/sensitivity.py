"""Per-layer int8 error, and the fewest layers kept in float that bring int8 within budget.

When full int8 costs more accuracy than the budget allows, engineers keep the few sensitive
layers in float by hand. Here that is measured and searched:

1. **Error per layer.** TFLite: ``tf.lite.experimental.QuantizationDebugger`` runs the int8
   model in debug mode (a NumericVerify op beside every quantized op) on calibration samples;
   each op's relative RMS error, ``rms(dequantized - float) / rms(float)``, is read through
   ``layer_direct_compare_metrics`` and ``layer_statistics_dump``. ONNX Runtime: the fp32 graph
   and its QDQ int8 graph run side by side (``onnxruntime.quantization.qdq_loss_debug``); a
   node's error is the relative error its output adds to the largest error of its inputs.
   Both are measured on calibration samples (the training split), never on validation.
2. **Fewest layers.** Keras layers are ranked by their largest op error; :func:`fewest_layers`
   keeps the top ``k`` in float (TFLite ``QuantizationDebugOptions(denylisted_nodes=...)`` on
   the calibrated model, no re-calibration; ONNX ``quantize_static(nodes_to_exclude=...)``),
   doubling ``k`` until the validation accuracy is within budget, then bisecting to the smallest
   ``k`` that is. Only Keras layers are searched (an op named after no layer is ranked, not
   kept), so the winner is what ``edgekit compress --int8 --float-layers`` and ``edgekit export
   --onnx-float-layers`` make from the same names, through the same code
   (:mod:`edgekit.formats.tflite_layers`, :mod:`edgekit.export.onnx`).
3. **Reuse.** The ONNX fallback first tries the Keras layers the TFLite fallback kept (their
   ONNX nodes), and searches its own ranking only when those are not enough.

Example:
    >>> layers = TfliteLayers(model, calibration)
    >>> ranked = layers.layer_errors()      # [LayerError(layer, layer, op, error), ...]
    >>> content = layers.quantized(layers.nodes_for([ranked[0].layer]))
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit._compat import quiet_native_logs
from edgekit.export.onnx import layer_key, nodes_keeping_float, quantization_graph
from edgekit.formats.onnx_quantize import quantize_static_int8
from edgekit.formats.tflite_layers import (DEBUG_SAMPLES, LayerError, TfliteLayers,
                                           keras_layer_of, relative_rmse)
from edgekit.optimize.artifacts import Artifact, Workbench
from edgekit.optimize.candidates import Candidate

# The ONNX tensor a QDQ graph holds after quantizing a node's output (onnxruntime.quantization).
_DEQUANTIZED_SUFFIX = "_DequantizeLinear_Output"
# What TfliteLayers says when the debugger cannot quantize the model.
_WITHOUT_FALLBACK = "search without the layer fallback (--candidates without tflite-int8-fallback)"


@dataclass
class Trial:
    """One tried set: the ``count`` most sensitive layers in float, and what it scored."""

    count: int
    nodes: list
    accuracy: float
    fits: bool


@dataclass
class FallbackSearch:
    """The fewest-layers search: every trial, the chosen one, and why it stopped early."""

    trials: list = field(default_factory=list)
    chosen: Trial | None = None
    stopped: str | None = None

    @property
    def best(self) -> Trial | None:
        """The chosen trial, else the most accurate one (fewest layers among equals)."""
        if self.chosen is not None:
            return self.chosen
        return max(self.trials, key=lambda trial: (trial.accuracy, -trial.count), default=None)


def fewest_layers(ranked: list[str], evaluate: Callable[[list[str]], float],
                  fits: Callable[[float], bool], keep_going: Callable[[], bool] = lambda: True,
                  limit: int | None = None) -> FallbackSearch:
    """The smallest prefix of ``ranked`` that, kept in float, scores within budget.

    Doubles the count (1, 2, 4, ...) until a prefix fits, then bisects between the largest
    count that did not and the smallest that did: O(log n) conversions. Accuracy is not
    guaranteed to grow with every layer kept, so the result is the fewest layers among those
    tried that fit, which is the smallest overall when it does.

    Args:
        ranked: node names, most sensitive first.
        evaluate: validation accuracy with these nodes in float.
        fits: whether an accuracy is within budget.
        keep_going: False stops the search (the time budget); the trials so far are kept.
        limit: the most nodes kept in float (default: all but one, which stays quantized).
    """
    upper = min(len(ranked), limit if limit is not None else max(len(ranked) - 1, 1))
    search = FallbackSearch()
    tried: dict[int, Trial] = {}

    def attempt(count: int) -> Trial:
        if count not in tried:
            accuracy = evaluate(list(ranked[:count]))
            tried[count] = Trial(count, list(ranked[:count]), accuracy, bool(fits(accuracy)))
            search.trials.append(tried[count])
        return tried[count]

    below, above, count = 0, None, 1
    while 0 < count <= upper:
        if not keep_going():
            search.stopped = "time budget"
            return search
        if attempt(count).fits:
            above = count
            break
        below = count
        count = min(count * 2, upper) if count < upper else 0
    while above is not None and above - below > 1:
        if not keep_going():
            search.stopped = "time budget"
            break
        middle = (below + above) // 2
        if attempt(middle).fits:
            above = middle
        else:
            below = middle
    search.chosen = tried[above] if above is not None else None
    return search


# --- ONNX Runtime -------------------------------------------------------------------------------


class OnnxNodes:
    """The parent's fp32 ONNX graph and its full QDQ int8 graph, compared node by node.

    The search works on Keras layers (all the ONNX nodes of one layer kept in float together),
    since pre-processing fuses a layer's MatMul and Add into one Gemm whose output a fused Relu
    hides: the layer's error shows on its last node.

    Args:
        fp32_path: the parent's fp32 .onnx (before ONNX Runtime's pre-processing).
        calibration: model-ready calibration samples.
        layer_names: the Keras layer names, to name each node's layer.
        model_name: the Keras model's name (a Keras 3 model's node names carry it).
    """

    def __init__(self, fp32_path: Path, calibration: np.ndarray, layer_names,
                 model_name: str | None = None):
        self.fp32_path = Path(fp32_path)
        self.calibration = np.asarray(calibration, dtype=np.float32)
        self.layer_names = set(layer_names)
        self.model_name = model_name
        self._model = None

    @property
    def graph(self):
        """The graph quantize_static sees (:func:`edgekit.export.onnx.quantization_graph`):
        its node names are the ones nodes_to_exclude takes."""
        if self._model is None:
            self._model = quantization_graph(self.fp32_path)
        return self._model.graph

    def key_of(self, node) -> str:
        """The unit a node is kept in float with: its Keras layer, else the node itself."""
        return layer_key(node, self.layer_names, self.model_name)

    def errors(self) -> list[LayerError]:
        """Every layer's largest added relative error, most sensitive first."""
        import onnx  # lazy: onnx takes about 0.15 s to import; ONNX candidates only
        # lazy: onnxruntime.quantization takes about 0.25 s to import; ONNX candidates only
        from onnxruntime.quantization.qdq_loss_debug import (
            collect_activations, modify_model_output_intermediate_tensors)

        samples = self.calibration[:DEBUG_SAMPLES]
        with tempfile.TemporaryDirectory(prefix="edgekit-onnx-debug-") as scratch, \
                quiet_native_logs(), contextlib.redirect_stdout(io.StringIO()):
            folder = Path(scratch)
            float_graph, quantized = folder / "pre.onnx", folder / "int8.onnx"
            self.graph  # noqa: B018  (pre-processes once)
            onnx.save(self._model, str(float_graph))
            quantize_static_int8(self.fp32_path, quantized, self.calibration)
            activations = {}
            for name, path in (("float", float_graph), ("int8", quantized)):
                augmented = folder / f"{name}-augmented.onnx"
                modify_model_output_intermediate_tensors(str(path), str(augmented))
                activations[name] = collect_activations(
                    str(augmented), _Reader(_input_name(path), samples))
        errors: dict[str, float] = {}
        by_key: dict[str, LayerError] = {}
        for node in self.graph.node:  # topological order: inputs' errors are known first
            output = node.output[0] if node.output else ""
            reference = activations["float"].get(output)
            value = activations["int8"].get(output + _DEQUANTIZED_SUFFIX,
                                            activations["int8"].get(output))
            if reference is None or value is None:
                continue
            errors[output] = relative_rmse(np.concatenate([np.ravel(a) for a in reference]),
                                           np.concatenate([np.ravel(a) for a in value]))
            inherited = max((errors.get(name, 0.0) for name in node.input), default=0.0)
            added = max(errors[output] - inherited, 0.0)
            key = self.key_of(node)
            if key not in by_key or added > by_key[key].error:
                by_key[key] = LayerError(node=key, layer=keras_layer_of(
                    node.name, self.layer_names, self.model_name), op=node.op_type, error=added)
        return sorted(by_key.values(), key=lambda item: -item.error)

    def nodes_for(self, keys) -> list[str]:
        """The nodes to exclude for these layers, with the Relu / Clip that feed them
        (:func:`edgekit.export.onnx.nodes_keeping_float`, as ``--onnx-float-layers`` does)."""
        return nodes_keeping_float(self.graph, keys, self.layer_names, self.model_name)

    def keys(self) -> set[str]:
        return {self.key_of(node) for node in self.graph.node}


def _input_name(path: Path) -> str:
    # lazy: onnx takes about 0.15 s to import; ONNX candidates only
    import onnx

    graph = onnx.load(str(path)).graph
    initializers = {tensor.name for tensor in graph.initializer}
    return next(value.name for value in graph.input if value.name not in initializers)


class _Reader:
    """The samples one by one, as ``collect_activations`` iterates its data reader."""

    def __init__(self, input_name: str, samples: np.ndarray):
        self._items = [{input_name: samples[index:index + 1]} for index in range(len(samples))]

    def __iter__(self):
        return iter(self._items)


# --- the fallback candidates --------------------------------------------------------------------


@dataclass
class Fallback:
    """A fallback candidate's outcome: its artifact, the ranking and the search."""

    artifact: Artifact | None
    ranking: list
    search: FallbackSearch
    reused: bool = False
    # what the best set kept in float: TFLite denylisted_nodes, ONNX nodes_to_exclude
    excluded_nodes: list | None = None

    def record(self) -> dict:
        """What candidates.json keeps: the ranking, every trial and the layers kept."""
        best = self.search.best
        by_node = {item.node: item for item in self.ranking}
        return {
            "ranking": [item.to_dict() for item in self.ranking],
            "trials": [{"count": trial.count, "accuracy_val": trial.accuracy, "fits": trial.fits,
                        "layers": [by_node[node].label if node in by_node else node
                                   for node in trial.nodes]} for trial in self.search.trials],
            "float_nodes": list(best.nodes) if best else [],
            "float_layers": _layers(best.nodes if best else [], by_node),
            "within_budget": self.search.chosen is not None,
            "reused_tflite_layers": self.reused,
            "stopped": self.search.stopped,
            **({"excluded_nodes": list(self.excluded_nodes)}
               if self.excluded_nodes is not None else {}),
        }


def _layers(nodes, by_node) -> list[str]:
    names = []
    for node in nodes:
        label = by_node[node].layer if node in by_node and by_node[node].layer else node
        if label not in names:
            names.append(label)
    return names


def tflite_fallback(bench: Workbench, candidate: Candidate, fits, keep_going) -> Fallback:
    """Search the fewest Keras layers in float; the chosen (or best) model is the artifact."""
    started = time.time()
    layers = TfliteLayers(bench.source.model, bench.source.calibration, _WITHOUT_FALLBACK)
    ranking = layers.layer_errors()
    contents: dict[tuple, bytes] = {}

    def evaluate(keys):
        contents[tuple(keys)] = layers.quantized(layers.nodes_for(keys))
        return bench.tflite_accuracy(contents[tuple(keys)], f"{candidate.name} ({len(keys)} "
                                                            "layers in float)")

    search = fewest_layers(_searchable(ranking), evaluate, fits, keep_going)
    outcome = Fallback(artifact=None, ranking=ranking, search=search)
    best = search.best
    if best is not None:
        path = bench.path_for(candidate)
        path.write_bytes(contents[tuple(best.nodes)])
        outcome.excluded_nodes = layers.nodes_for(best.nodes)
        details = {**outcome.record(), "seconds": round(time.time() - started, 2)}
        outcome.artifact = bench.artifact(candidate, path, details, accuracy=best.accuracy)
    return outcome


def _searchable(ranking: list[LayerError]) -> list[str]:
    """The ranked Keras layers: what --float-layers / --onnx-float-layers can name."""
    return [item.node for item in ranking if item.layer]


def onnx_fallback(bench: Workbench, candidate: Candidate, fits, keep_going,
                  tflite_layers=()) -> Fallback:
    """The TFLite fallback's layers first; else the fewest layers of its own ranking."""
    started = time.time()
    model = bench.source.model
    nodes = OnnxNodes(bench.onnx_fp32(), bench.source.calibration,
                      {layer.name for layer in model.layers}, model.name)
    path = bench.path_for(candidate)

    def evaluate(keys):
        bench.quantize_onnx(path, nodes_to_exclude=nodes.nodes_for(keys))
        return bench.onnx_accuracy(path)

    ranking = nodes.errors()
    reused = [layer for layer in tflite_layers if layer in nodes.keys()]
    search = FallbackSearch()
    if reused and keep_going():
        accuracy = evaluate(reused)
        trial = Trial(len(reused), reused, accuracy, bool(fits(accuracy)))
        search.trials.append(trial)
        search.chosen = trial if trial.fits else None
    if search.chosen is None:
        own = fewest_layers(_searchable(ranking), evaluate, fits, keep_going)
        search = FallbackSearch(trials=search.trials + own.trials, chosen=own.chosen,
                                stopped=own.stopped)
    outcome = Fallback(artifact=None, ranking=ranking, search=search,
                       reused=bool(search.chosen is not None and search.chosen.nodes == reused))
    best = search.best
    if best is not None:
        evaluate(best.nodes)  # leave the best set's file in place
        outcome.excluded_nodes = nodes.nodes_for(best.nodes)
        details = {**outcome.record(), "seconds": round(time.time() - started, 2)}
        outcome.artifact = bench.artifact(candidate, path, details, accuracy=best.accuracy)
    return outcome
