"""Int8 against fp32 on edgekit's zoo (issue 13): ORT and LiteRT speed-ups, QAT ONNX size, drops.

Also the MAC floor of this CPU for cnn and resnet8.

Usage (from the repo root):
    .venv/bin/python benchmarks/int8_figures.py                       # all, writes RESULTS.md
    .venv/bin/python benchmarks/int8_figures.py --models cnn,resnet8   # some models
    .venv/bin/python benchmarks/int8_figures.py --models cnn --quick   # smoke test, prints only

Models: cnn, resnet8, mobilenet_v2, ds_cnn and lstm on Fashion-MNIST (28x28x1); resnet8 and
mobilenet_v2 also on a 32x32x3 input. There is no RGB dataset offline: the 32x32x3 set is
Fashion-MNIST zero-padded by 2 pixels on each side (28x28 -> 32x32) and copied into 3 identical
channels, written as uint8 to benchmarks/out/int8/fashion_mnist_32x32x3.npz and read through
edgekit's ``npz:`` dataset spec (the same 60,000 training and 10,000 test images).

Each model goes through edgekit's public Python API, as a user would run it:

1. ``edgekit.train`` (a few epochs: ``EPOCHS`` below, chosen so the whole default run fits in
   about 40 minutes on 2 cores; ``--epochs`` overrides). An existing trained folder is reused
   (models/<model>-fashion_mnist, else benchmarks/out/int8/parents/...) unless ``--retrain``.
2. ``edgekit.compress`` with ``int8``, ``int8`` + ``int8_io`` and, for cnn and resnet8 on
   Fashion-MNIST, ``qat`` (1 fine-tuning epoch).
3. ``edgekit.export(..., to="tflite,onnx", onnx_int8="auto")`` of each compressed folder. The
   ONNX int8 options the export manifest records (scheme, activation type, pre-processing) are
   shown with the figures, so they say which quantization path produced the file.
4. In one process per model, batch 1, the runtimes alternate in rounds (``--rounds`` x
   ``--runs`` calls each, order rotated every round) and p50 is taken over all calls: ONNX
   Runtime fp32 / int8 (/ QAT int8) at intra_op_num_threads=1, graph optimization all, plus an
   Identity graph of the same input (the cost of one ``session.run`` call); LiteRT
   (``ai_edge_litert``, XNNPACK default) fp32 / int8 / int8-io at num_threads 1 and 2.
5. Accuracy on the whole test split: the .tflite files' from the compress manifests (edgekit
   measures them through LiteRT), the .onnx files' computed here with ONNX Runtime. Drops are
   points against the fp32 parent Keras model.
6. The MAC floor of cnn and resnet8: Conv / DepthwiseConv / Dense MACs of the Keras model over one
   core's int8 and fp32 peak (MACs per cycle x the clock /proc/cpuinfo reports).

Targets: ONNX Runtime int8 / fp32 p50 >= 1.5x for every convolutional model (cnn, resnet8,
mobilenet_v2, ds_cnn; lstm is reported, not targeted); QAT ONNX int8 bytes / fp32 ONNX bytes
<= 0.3x; every int8 artifact's accuracy drop <= 0.5 points. A missed target is printed as
"missed" with its gap; an ONNX speed-up miss is profiled (time per op type) to state why.

``--quick`` (a 2,000 / 500-sample subset of Fashion-MNIST as an npz, 1 epoch, 100 calibration
samples, short timing) only checks that the script runs; it prints its section and does not
touch RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import edgekit  # noqa: E402  (selects Keras 2 first)
from edgekit.errors import EdgekitError, OptionError  # noqa: E402
from edgekit.export import FidelityError  # noqa: E402
from edgekit.manifest import machine, read_manifest  # noqa: E402
from results_file import (finished_train, machine_line, relative,  # noqa: E402
                          replace_section, train_parent)

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out" / "int8"
SECTION = "int8"
HEADING = "## Int8 vs fp32: ONNX Runtime and LiteRT speed, QAT ONNX size, accuracy (issue 13)"

GREY, RGB32 = "28x28x1", "32x32x3"
# (model, input): the default run, in this order.
ENTRIES = [("cnn", GREY), ("resnet8", GREY), ("mobilenet_v2", GREY), ("ds_cnn", GREY),
           ("lstm", GREY), ("resnet8", RGB32), ("mobilenet_v2", RGB32)]
# Training epochs of a parent trained here. Sized so the default run (7 parents, 16 compress and
# 16 export runs, timing) fits in about 40 minutes on 2 cores, with a meaningful test accuracy.
# Measured here (tf-keras, batch 32, 2 shared cores): about 55 s an epoch of 54,000 samples for
# cnn, resnet8, ds_cnn and resnet8 32x32x3, 30 s for lstm, 100-120 s for mobilenet_v2; so about
# 19 min of training, 13 min of compress (QAT fine-tuning included), 8 min of export, 2 of timing.
EPOCHS = {("cnn", GREY): 2, ("resnet8", GREY): 2, ("mobilenet_v2", GREY): 2, ("ds_cnn", GREY): 3,
          ("lstm", GREY): 3, ("resnet8", RGB32): 2, ("mobilenet_v2", RGB32): 2}
QUICK_EPOCHS = 1
CONVOLUTIONAL = ("cnn", "resnet8", "mobilenet_v2", "ds_cnn")
QAT_ENTRIES = (("cnn", GREY), ("resnet8", GREY))
FLOOR_MODELS = ("cnn", "resnet8")
RECIPES = {  # name -> edgekit.compress options
    "int8": {"int8": True},
    "int8-io": {"int8": True, "int8_io": True},
    "qat": {"qat": True, "finetune_epochs": 1},
}
MIN_ONNX_SPEEDUP = 1.5
MAX_QAT_ONNX_RATIO = 0.3
MAX_DROP = 0.5  # points
LITERT_THREADS = (1, 2)
# Peak MACs per cycle of one core (see peak_assumptions).
FMA_PORTS, INT8_MACS_PER_VNNI, FP32_LANES = 2, 64, 16
QUICK_TRAIN, QUICK_TEST = 2000, 500



# --------------------------------------------------------------------------------------------
# Data: Fashion-MNIST as edgekit loads it, the 32x32x3 npz, and the --quick subsets.


def datasets(quick: bool, inputs: list[str]) -> dict[str, str]:
    """input name -> the dataset spec edgekit is given (npz files written here when missing)."""
    folder = OUT / "quick" if quick else OUT
    grey_path = folder / "fashion_mnist_subset.npz"
    rgb_path = folder / "fashion_mnist_32x32x3.npz"
    if quick and GREY in inputs and not grey_path.is_file():
        _write_npz(grey_path, _fashion_mnist(subset=True), pad=False)
    if RGB32 in inputs and not rgb_path.is_file():
        _write_npz(rgb_path, _fashion_mnist(subset=quick), pad=True)
    return {GREY: f"npz:{grey_path}" if quick else "fashion_mnist", RGB32: f"npz:{rgb_path}"}


@functools.lru_cache(maxsize=None)
def _fashion_mnist_raw():
    return edgekit.load_dataset("fashion_mnist")


def _fashion_mnist(subset: bool) -> dict:
    """Fashion-MNIST's 60,000 training samples (edgekit's train + validation splits) and its
    10,000 test samples, raw uint8 pixels (N, 28, 28); ``subset``: the first few of each."""
    data = _fashion_mnist_raw()
    x_train = np.concatenate([data.x_train, data.x_val])
    y_train = np.concatenate([data.y_train, data.y_val])
    x_test, y_test = data.x_test, data.y_test
    if subset:
        x_train, y_train = x_train[:QUICK_TRAIN], y_train[:QUICK_TRAIN]
        x_test, y_test = x_test[:QUICK_TEST], y_test[:QUICK_TEST]
    return {"x_train": x_train[..., 0].astype(np.uint8), "y_train": y_train,
            "x_test": x_test[..., 0].astype(np.uint8), "y_test": y_test,
            "class_names": np.array(data.class_names)}


def _write_npz(path: Path, arrays: dict, pad: bool) -> None:
    """Write the arrays; with ``pad``: zero-pad 2 pixels each side and copy to 3 channels."""
    if pad:
        for key in ("x_train", "x_test"):
            padded = np.pad(arrays[key], ((0, 0), (2, 2), (2, 2)))
            arrays = {**arrays, key: np.repeat(padded[..., None], 3, axis=-1)}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays, kind="image")
    print(f"wrote {relative(path)}: x_train {arrays['x_train'].shape}, x_test "
          f"{arrays['x_test'].shape} uint8", flush=True)


_TEST_SETS: dict = {}


def test_split(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The test split of a model folder's dataset, preprocessed under its input contract."""
    from edgekit.data.base import Preprocessing

    manifest = read_manifest(folder)
    config, contract = manifest["config"], manifest["input_contract"]
    key = (config["dataset"], json.dumps(contract["preprocessing"], sort_keys=True))
    if key not in _TEST_SETS:
        data = edgekit.load_dataset(config["dataset"], data_dir=config.get("data_dir"))
        x = Preprocessing.from_dict(contract["preprocessing"]).apply(data.x_test)
        _TEST_SETS[key] = (x, data.y_test)
    return _TEST_SETS[key]


# --------------------------------------------------------------------------------------------
# edgekit: train, compress, export.


def parent_folder(model: str, inputs: str, spec: str, epochs: int, retrain: bool,
                  quick: bool) -> tuple[Path, dict]:
    """A finished train run of ``model`` on ``spec``: reused when there is one, else trained."""
    candidates = [] if quick or inputs != GREY else [REPO / "models" / f"{model}-fashion_mnist"]
    folder = OUT / ("quick" if quick else "") / "parents" / f"{model}-{inputs}"
    candidates.append(folder)
    if not retrain:
        for candidate in candidates:
            summary = finished_train(candidate, model, spec)
            if summary:
                return candidate, {"reused": True, **summary}
    return train_parent(model, spec, epochs, folder, inputs)





def run_compress(parent: Path, work: Path, recipe: str, quick: bool) -> dict:
    options = dict(RECIPES[recipe])
    if quick:
        options["calibration_samples"] = 100
    started = time.time()
    result = edgekit.compress(str(parent), output_dir=work / recipe, force=True, progress=False,
                              **options)
    rows = {row["label"]: row for row in result.rows}
    tflite = rows["compressed tflite"]
    found = {"folder": str(result.output_dir), "command": relative(result.manifest["command"]),
             "seconds": round(time.time() - started, 1),
             "parent_keras_accuracy": rows["parent keras"]["accuracy"],
             "parent_tflite_accuracy": rows["parent tflite"]["accuracy"],
             "parent_tflite_bytes": rows["parent tflite"]["bytes"],
             "tflite_accuracy": tflite["accuracy"], "tflite_drop": tflite["accuracy_drop_points"],
             "tflite_bytes": tflite["bytes"], "io": tflite.get("io")}
    print(json.dumps({"compress": recipe, **{key: found[key] for key in
                                             ("tflite_accuracy", "tflite_drop", "io", "seconds")}}),
          flush=True)
    return found


def run_export(folder: Path, samples: int | None) -> dict:
    """``edgekit.export(folder, to="tflite,onnx", onnx_int8="auto")``; what its manifest says.

    A fidelity failure is recorded, not raised (the files are written all the same). When the
    ``onnx_int8`` option does not exist (yet), the export runs without it and says so. When the
    export fails outright, it is tried again without ONNX int8 so the other artifacts exist.
    """
    options = {"to": "tflite,onnx", "force": True, "onnx_int8": "auto",
               **({"samples": samples} if samples else {})}
    notes, error = [], None
    started = time.time()
    while True:
        try:
            result = edgekit.export(folder, **options)
            break
        except FidelityError as failure:  # the folder is written all the same; record it
            result, error = failure.result, relative(failure)
            break
        except OptionError as failure:
            if "onnx_int8" not in options or "onnx_int8" not in str(failure):
                raise
            notes.append(f"onnx_int8 is not an export option yet ({relative(failure)}); "
                         "exported without it")
            options.pop("onnx_int8")
        except EdgekitError as failure:
            if options.get("onnx_precisions") == "fp32":
                raise
            notes.append(f"export failed ({relative(failure)}); exported again with ONNX fp32 only")
            options["onnx_precisions"] = "fp32"
    artifacts = {}
    for name, entry in result.artifacts.items():
        fidelity = entry.get("fidelity") or {}
        artifacts[name] = {
            "status": entry.get("status"), "reason": entry.get("reason"),
            "file": str(result.output_dir / entry["file"]) if entry.get("file") else None,
            "bytes": entry.get("bytes"), "options": entry.get("options") or {},
            "converter": (entry.get("converter") or {}).get("name"),
            "agreement": fidelity.get("top1_agreement"), "failures": fidelity.get("failures", [])}
    print(json.dumps({"export": relative(folder), "artifacts": {
        name: entry["status"] for name, entry in artifacts.items()}, "notes": notes}), flush=True)
    return {"folder": str(result.output_dir),
            "command": relative(result.manifest.get("command") or ""),
            "seconds": round(time.time() - started, 1), "error": error, "notes": notes,
            "artifacts": artifacts}


def activation_types(path) -> dict:
    """``{"uint8": n, "int8": m}``: zero-point types of the QuantizeLinear nodes that quantize
    activations (not constants) in an .onnx file, read from the file itself."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    constants.update({node.output[0]: node.attribute[0].t for node in graph.node
                      if node.op_type == "Constant" and node.attribute
                      and node.attribute[0].name == "value"})
    found: dict[str, int] = {}
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in constants:
            continue
        zero_point = node.input[2] if len(node.input) > 2 and node.input[2] else None
        kind = (str(numpy_helper.to_array(constants[zero_point]).dtype)
                if zero_point in constants else "uint8")  # ONNX's default zero point is uint8
        found[kind] = found.get(kind, 0) + 1
    return found


def onnx_bytes(path) -> dict:
    """Bytes of an .onnx file by what holds them: constants per dtype, and the rest (graph)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    tensors = list(model.graph.initializer) + [
        node.attribute[0].t for node in model.graph.node
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value"
        and node.attribute[0].type == onnx.AttributeProto.TENSOR]
    found: dict[str, int] = {}
    for tensor in tensors:
        value = numpy_helper.to_array(tensor)
        found[str(value.dtype)] = found.get(str(value.dtype), 0) + int(value.nbytes)
    found["graph and names"] = Path(path).stat().st_size - sum(found.values())
    return found


def onnx_int8_path(artifact: dict | None) -> dict:
    """What the export manifest says about how an ONNX int8 file was made."""
    if not artifact:
        return {"text": "not exported"}
    options = artifact["options"]
    in_file = activation_types(artifact["file"])
    found = "activation QuantizeLinear zero points in the file: " + (", ".join(
        f"{count} {kind}" for kind, count in sorted(in_file.items())) or "none")
    if "quantization" in options:  # the QAT path: tf2onnx's QDQ, weights folded (or not)
        folded = "weights" in options
        return {"kind": "qat", "folded": folded, "activations_in_file": in_file,
                "text": "QAT QDQ from tf2onnx" + (", weights stored int8" if folded
                                                  else ", weights left float") + f"; {found}"}
    scheme = options.get("scheme")
    activation = options.get("activation_type")
    preprocessed = options.get("preprocessed")
    parts = [f"scheme {scheme}" if scheme else "no scheme recorded",
             f"{activation} activations" if activation else "activation type not recorded",
             {True: "quant_pre_process", False: "no quant_pre_process"}.get(
                 preprocessed, "pre-processing not recorded")]
    if options.get("scheme_requested"):
        parts.append(f"asked {options['scheme_requested']}")
    rewrites = {name: count for name, count in (options.get("graph_rewrites") or {}).items()
                if count}
    if rewrites:
        parts.append("graph rewrites: " + ", ".join(
            f"{name.replace('_', ' ')} {count}" for name, count in sorted(rewrites.items())))
    parts.append(found)
    return {"kind": "ptq", "scheme": scheme, "activation_type": activation,
            "activations_in_file": in_file,
            "preprocessed": preprocessed, "graph_rewrites": rewrites,
            "calibrate_method": options.get("calibrate_method"),
            "calibration_samples": options.get("calibration_samples"), "text": ", ".join(parts)}


# --------------------------------------------------------------------------------------------
# Runtimes, used directly: accuracy of the .onnx files, and the timing rounds.


def ort_session(path, threads: int = 1, profile_prefix: Path | None = None,
                optimized: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_accuracy(path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of an .onnx file on (x, y) through ONNX Runtime (2 threads)."""
    session = ort_session(path, threads=2)
    spec = session.get_inputs()[0]
    batch = spec.shape[0] if isinstance(spec.shape[0], int) else 500
    predictions = [np.argmax(session.run(None, {spec.name: x[start:start + batch]})[0], axis=-1)
                   for start in range(0, len(x), batch)]
    return float(np.mean(np.concatenate(predictions) == y))


def identity_onnx(path: Path, sample: np.ndarray) -> Path:
    """An ONNX graph that only copies an input of the sample's shape: one session.run's cost."""
    import onnx
    from onnx import TensorProto, helper

    shape = ["batch", *sample.shape[1:]]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])], "identity",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def ort_runner(path, sample: np.ndarray):
    session = ort_session(path)
    name = session.get_inputs()[0].name
    feed = {name: np.ascontiguousarray(sample, dtype=np.float32)}
    return lambda: session.run(None, feed)


def litert_runner(path, sample: np.ndarray, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    index, output = source["index"], interpreter.get_output_details()[0]["index"]
    value = np.ascontiguousarray(sample, dtype=np.float32).reshape(source["shape"])
    if source["dtype"] != np.float32:  # int8 I/O: quantize the sample as a client would
        scale, zero_point = source["quantization"]
        info = np.iinfo(source["dtype"])
        value = np.clip(np.round(value / scale) + zero_point, info.min, info.max)
        value = value.astype(source["dtype"])

    def run():
        interpreter.set_tensor(index, value)
        interpreter.invoke()
        return interpreter.get_tensor(output)

    return run


def time_rounds(runners: dict, rounds: int, runs: int, warmup: int) -> dict:
    """p50 / p90 in ms of each runner over ``rounds`` x ``runs`` calls, runners alternating."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    times = {name: [] for name in runners}
    names = list(runners)
    for index in range(rounds):
        order = names[index % len(names):] + names[:index % len(names)]
        for name in order:
            run, found = runners[name], times[name]
            for _ in range(runs):
                start = time.perf_counter_ns()
                run()
                found.append(time.perf_counter_ns() - start)
    return {name: {"p50_ms": statistics.median(found) / 1e6,
                   "p90_ms": float(np.percentile(found, 90)) / 1e6, "calls": len(found)}
            for name, found in times.items()}


def profile_ops(path, sample: np.ndarray, runs: int, prefix: Path) -> dict:
    """Share of one-thread ONNX Runtime kernel time per op type (ORT's profiler, median per node
    over the runs; profiling slows the run down, so only the shares are used)."""
    import onnx

    prefix.parent.mkdir(parents=True, exist_ok=True)
    optimized = prefix.parent / f"{prefix.name}-optimized.onnx"
    session = ort_session(path, profile_prefix=prefix, optimized=optimized)
    # Which convolutions are depthwise, from the graph ONNX Runtime runs (its node names).
    depthwise = {node.name for node in onnx.load(str(optimized)).graph.node
                 if node.op_type in (*INT8_CONV, *FP32_CONV) and any(
                     a.name == "group" and a.i > 1 for a in node.attribute)}
    optimized.unlink()
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(sample, dtype=np.float32)}
    warmup = min(10, runs // 5)
    for _ in range(warmup + runs):
        session.run(None, feed)
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    # Node events of the first runs (warm-up) are left out: they start before this time.
    starts = sorted(event["ts"] for event in events
                    if event.get("cat") == "Session" and event.get("name") == "model_run")
    after = starts[warmup] if len(starts) > warmup else 0
    # Per node, the median over the runs (a run preempted by another process on these shared
    # cores would otherwise charge its whole time slice to one op); then summed per op type.
    per_node: dict[str, tuple[str, list]] = {}
    for event in events:
        if (event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time")
                and event.get("ts", 0) >= after):
            op = (event.get("args") or {}).get("op_name", "?")
            per_node.setdefault(event["name"], (op, []))[1].append(event.get("dur", 0))
    by_op: dict[str, float] = {}
    by_conv = {"depthwise": 0.0, "other": 0.0}
    for name, (op, durations) in per_node.items():
        by_op[op] = by_op.get(op, 0.0) + statistics.median(durations)
        if op in (*INT8_CONV, *FP32_CONV):
            kind = "depthwise" if name[:-len("_kernel_time")] in depthwise else "other"
            by_conv[kind] += statistics.median(durations)
    nodes = sum(by_op.values()) or 1.0
    shares = sorted(((op, value / nodes) for op, value in by_op.items()), key=lambda kv: -kv[1])
    return {"op_share": dict(shares), "runs": runs,
            "conv_share": {kind: value / nodes for kind, value in by_conv.items()}}


def op_summary(profile: dict, count: int = 4) -> str:
    """``QLinearConv 53%, QGemm 3%, ...``: the largest shares of kernel time."""
    return ", ".join(f"{op} {share * 100:.0f}%"
                     for op, share in list(profile["op_share"].items())[:count])


# --------------------------------------------------------------------------------------------
# MACs and the peak of one core.


def count_macs(keras_path: Path) -> dict:
    """Multiply-accumulates of one sample through Conv / DepthwiseConv / SeparableConv / Dense
    (output positions x kernel size) and LSTM (time steps x input and recurrent kernels)."""
    from edgekit._compat import keras

    model = keras().models.load_model(keras_path, compile=False)
    by_type: dict[str, int] = {}
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "LSTM":  # per time step: input and recurrent kernels, 4 gates
            steps = int(layer.input_shape[1])
            macs = steps * (int(np.prod(layer.cell.kernel.shape))
                            + int(np.prod(layer.cell.recurrent_kernel.shape)))
            by_type[kind] = by_type.get(kind, 0) + macs
            continue
        if kind not in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "Conv1D"):
            continue
        positions = int(np.prod(layer.output_shape[1:-1])) if len(layer.output_shape) > 2 else 1
        if kind == "SeparableConv2D":
            depthwise, pointwise = layer.depthwise_kernel.shape, layer.pointwise_kernel.shape
            macs = positions * (int(np.prod(depthwise)) + int(np.prod(pointwise)))
        elif kind == "DepthwiseConv2D":  # (kh, kw, channels, multiplier)
            macs = positions * int(np.prod(layer.depthwise_kernel.shape))
        else:
            macs = positions * int(np.prod(layer.kernel.shape))
        by_type[kind] = by_type.get(kind, 0) + macs
    return {"total": sum(by_type.values()), "by_type": by_type}


def peak_assumptions() -> dict:
    """Clock and MACs per cycle of one core, from /proc/cpuinfo, with the assumptions named."""
    mhz, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz") and mhz is None:
                mhz = float(line.split(":", 1)[1])
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    vnni = "avx512_vnni" in flags
    avx512 = "avx512f" in flags
    fp32_lanes = FP32_LANES if avx512 else 8
    int8 = FMA_PORTS * INT8_MACS_PER_VNNI if vnni else None
    return {"mhz": mhz, "vnni": vnni, "avx512f": avx512, "cores": os.cpu_count(),
            "int8_macs_per_cycle": int8, "fp32_macs_per_cycle": FMA_PORTS * fp32_lanes,
            "int8_text": (f"{FMA_PORTS} ports x {INT8_MACS_PER_VNNI} (AVX-512 VNNI vpdpbusd on "
                          f"512-bit: 64 u8 x s8 products into 16 int32) = {int8}") if vnni
            else "no avx512_vnni flag: no int8 peak assumed",
            "fp32_text": f"{FMA_PORTS} FMA ports x {fp32_lanes} fp32 lanes = "
                         f"{FMA_PORTS * fp32_lanes}"}


def floors(macs: int, peak: dict) -> dict:
    """Microseconds one core needs at its peak: MACs / (MACs per cycle x clock)."""
    if not peak["mhz"]:
        return {}
    hz = peak["mhz"] * 1e6
    found = {"fp32_us": macs / (peak["fp32_macs_per_cycle"] * hz) * 1e6}
    if peak["int8_macs_per_cycle"]:
        found["int8_us"] = macs / (peak["int8_macs_per_cycle"] * hz) * 1e6
    return found


# --------------------------------------------------------------------------------------------
# One model.


def run_entry(model: str, inputs: str, spec: str, epochs: int, args, peak: dict) -> dict:
    quick = args.quick
    tag = f"{model}-{inputs}"
    print(f"== {model} on {inputs} ({relative(spec)})", flush=True)
    started = time.time()
    parent, summary = parent_folder(model, inputs, spec, epochs, args.retrain, quick)
    work = OUT / ("quick" if quick else "") / tag
    recipes = ["int8", "int8-io"] + (["qat"] if (model, inputs) in QAT_ENTRIES else [])
    compressed = {recipe: run_compress(parent, work, recipe, quick) for recipe in recipes}
    samples = args.export_samples or (QUICK_TEST if quick else None)
    exported = {recipe: run_export(Path(compressed[recipe]["folder"]), samples)
                for recipe in recipes}

    def artifact(recipe, name):
        entry = exported.get(recipe, {}).get("artifacts", {}).get(name)
        return entry if entry and entry.get("file") and Path(entry["file"]).is_file() else None

    files = {"onnx-fp32": artifact("int8", "onnx-fp32"), "onnx-int8": artifact("int8", "onnx-int8"),
             "onnx-qat-int8": artifact("qat", "onnx-int8"),
             "tflite-fp32": artifact("int8", "tflite-fp32"),
             "tflite-int8": artifact("int8", "tflite-int8"),
             "tflite-int8-io": artifact("int8-io", "tflite-int8")}
    if files["tflite-int8-io"] is None:  # the compress recipe's own file
        path = Path(compressed["int8-io"]["folder"]) / "model.tflite"
        files["tflite-int8-io"] = {"file": str(path), "bytes": path.stat().st_size} \
            if path.is_file() else None

    # Accuracy of the .onnx files on the whole test split (the .tflite ones: compress manifests).
    x_test, y_test = test_split(parent)
    accuracy = {name: onnx_accuracy(entry["file"], x_test, y_test)
                for name, entry in files.items() if entry and name.startswith("onnx")}
    parent_accuracy = compressed["int8"]["parent_keras_accuracy"]
    drops = {"tflite-int8": compressed["int8"]["tflite_drop"],
             "tflite-int8-io": compressed["int8-io"]["tflite_drop"]}
    if "qat" in compressed:
        drops["tflite-qat-int8"] = compressed["qat"]["tflite_drop"]
    for name in ("onnx-int8", "onnx-qat-int8"):
        if name in accuracy:
            drops[name] = (parent_accuracy - accuracy[name]) * 100

    # Latency: every runtime in the same process, alternating.
    sample = x_test[:1]
    runners = {}
    ort_names = {"onnx-fp32": "ort-fp32", "onnx-int8": "ort-int8", "onnx-qat-int8": "ort-qat-int8"}
    for name, label in ort_names.items():
        if files[name]:
            runners[label] = ort_runner(files[name]["file"], sample)
    runners["ort-identity"] = ort_runner(identity_onnx(OUT / "identity" / f"{tag}.onnx", sample),
                                         sample)
    for threads in LITERT_THREADS:
        for name in ("tflite-fp32", "tflite-int8", "tflite-int8-io"):
            if files[name]:
                runners[f"litert-{name.split('-', 1)[1]}@{threads}"] = litert_runner(
                    files[name]["file"], sample, threads)
    load_before = os.getloadavg()[0]
    latency = time_rounds(runners, args.rounds, args.runs, args.warmup)
    load_after = os.getloadavg()[0]
    del runners
    print(json.dumps({name: round(value["p50_ms"] * 1000, 1) for name, value in latency.items()}
                     | {"unit": "us p50"}), flush=True)

    ort_fp32 = (latency.get("ort-fp32") or {}).get("p50_ms")
    ort_int8 = (latency.get("ort-int8") or {}).get("p50_ms")
    speedup = ort_fp32 / ort_int8 if ort_fp32 and ort_int8 else None
    # Why: ORT's per-op profile of an int8 file that misses its speed-up or is slower than fp32.
    profile = {}
    runs = 50 if quick else 300
    qat_p50 = (latency.get("ort-qat-int8") or {}).get("p50_ms")
    wanted = []
    if model in CONVOLUTIONAL and speedup is not None and speedup < MIN_ONNX_SPEEDUP:
        wanted += ["onnx-fp32", "onnx-int8"]
    if qat_p50 and ort_fp32 and qat_p50 > ort_fp32:
        wanted += [name for name in ("onnx-fp32", "onnx-qat-int8") if name not in wanted]
    for name in wanted:
        profile[name] = profile_ops(files[name]["file"], sample, runs,
                                    OUT / "profiles" / f"{tag}-{name}")

    macs = count_macs(parent / "model.keras")
    fp32_bytes = (files["onnx-fp32"] or {}).get("bytes")
    entry = {
        "model": model, "inputs": inputs, "dataset": relative(spec), "parent": relative(parent),
        "parent_summary": summary, "epochs_asked": epochs,
        "compress": compressed, "export": exported,
        "bytes": {name: (entry or {}).get("bytes") for name, entry in files.items()},
        "onnx_int8_path": onnx_int8_path(files["onnx-int8"]),
        "onnx_qat_path": onnx_int8_path(files["onnx-qat-int8"]),
        "parent_accuracy": parent_accuracy, "onnx_accuracy": accuracy, "drops": drops,
        "latency": latency, "load_average": [round(load_before, 2), round(load_after, 2)],
        "onnx_speedup": speedup, "profile": profile, "macs": macs,
        "floors": floors(macs["total"], peak),
        "qat_onnx_bytes": onnx_bytes(files["onnx-qat-int8"]["file"]) if files["onnx-qat-int8"]
        else None,
        "qat_onnx_ratio": (files["onnx-qat-int8"]["bytes"] / fp32_bytes
                           if files["onnx-qat-int8"] and fp32_bytes else None),
        "ptq_onnx_ratio": (files["onnx-int8"]["bytes"] / fp32_bytes
                           if files["onnx-int8"] and fp32_bytes else None),
        "seconds": round(time.time() - started, 1),
    }
    entry["targets"] = targets(entry)
    for target in entry["targets"]:
        print(f"{target['figure']}: {target['measured']} (target {target['required']}) "
              f"{'met' if target['met'] else 'MISSED: ' + target['gap']}", flush=True)
    return entry


# --------------------------------------------------------------------------------------------
# Targets and the section.


def targets(entry: dict) -> list[dict]:
    """Each target the entry is held to: figure, measured, required, met, gap (with reason)."""
    found = []
    name = f"{entry['model']} {entry['inputs']}"
    if entry["model"] in CONVOLUTIONAL:
        speedup = entry["onnx_speedup"]
        if speedup is None:
            found.append({"figure": f"{name}: ONNX Runtime int8 / fp32 p50, 1 thread",
                          "measured": "not measured", "required": f">= {MIN_ONNX_SPEEDUP}x",
                          "met": False, "gap": "no ONNX int8 file: " + _export_problem(entry)})
        else:
            met = speedup >= MIN_ONNX_SPEEDUP
            # Three decimals when two would round a miss up to the target (1.4996x -> "1.50x").
            digits = 3 if not met and round(speedup, 2) >= MIN_ONNX_SPEEDUP else 2
            found.append({"figure": f"{name}: ONNX Runtime int8 / fp32 p50, 1 thread",
                          "measured": f"{speedup:.{digits}f}x",
                          "required": f">= {MIN_ONNX_SPEEDUP}x", "met": met, "gap": "" if met else
                          f"{MIN_ONNX_SPEEDUP - speedup:.{max(digits, 2)}f}x short; "
                          f"{speed_reason(entry)}"})
    if (entry["model"], entry["inputs"]) in QAT_ENTRIES:
        ratio = entry["qat_onnx_ratio"]
        met = ratio is not None and ratio <= MAX_QAT_ONNX_RATIO
        found.append({"figure": f"{name}: QAT ONNX int8 bytes / fp32 ONNX bytes",
                      "measured": "not measured" if ratio is None else f"{ratio:.3f}x",
                      "required": f"<= {MAX_QAT_ONNX_RATIO}x", "met": met,
                      "gap": "" if met else ("no QAT ONNX file: " + _export_problem(entry)
                                             if ratio is None else
                                             f"{ratio - MAX_QAT_ONNX_RATIO:.3f}x over; "
                                             + size_reason(entry))})
    for artifact, drop in entry["drops"].items():
        met = drop <= MAX_DROP + 1e-9
        found.append({"figure": f"{name}: {artifact} accuracy drop", "measured":
                      f"{drop:.2f} points", "required": f"<= {MAX_DROP}", "met": met,
                      "gap": "" if met else f"{drop - MAX_DROP:.2f} points over"})
    return found


def size_reason(entry: dict) -> str:
    """What the QAT .onnx file holds, against the fp32 file."""
    held, fp32 = entry.get("qat_onnx_bytes") or {}, entry["bytes"].get("onnx-fp32")
    if not held or not fp32:
        return entry["onnx_qat_path"]["text"]
    parts = ", ".join(f"{kind} {count:,} B" for kind, count in
                      sorted(held.items(), key=lambda kv: -kv[1]) if count)
    int8 = held.get("int8", 0) + held.get("uint8", 0)
    return (f"the file holds {parts}; its int8 / uint8 constants alone are {int8 / fp32:.3f}x of "
            f"the fp32 file, the rest (float32 / int32 biases, scales, zero points, the graph) "
            f"{(sum(held.values()) - int8) / fp32:.3f}x ({entry['onnx_qat_path']['text']})")


def _export_problem(entry: dict) -> str:
    notes = [note for exported in entry["export"].values() for note in exported["notes"]]
    return "; ".join(notes) or "see the export manifests"


def speed_reason(entry: dict) -> str:
    """Why ONNX Runtime int8 is not 1.5x faster, from the manifest and the measurements."""
    reasons = []
    path = entry["onnx_int8_path"]
    if (path.get("activation_type") == "int8" or path.get("scheme") == "s8s8"
            or (path.get("activations_in_file") or {}).get("int8")):
        reasons.append("int8 (S8S8) activations: ONNX Runtime's x86 int8 kernels take uint8 "
                       "activations (STACK.md: S8S8 measured slower than fp32 here)")
    elif path.get("kind") == "ptq" and path.get("scheme") is None:
        reasons.append("the export manifest records no int8 scheme (the pre-U8S8 export path)")
    if path.get("preprocessed") is False:
        reasons.append("no quant_pre_process (BatchNormalization not fused before quantizing)")
    latency = entry["latency"]
    overhead = (latency.get("ort-identity") or {}).get("p50_ms")
    fp32 = (latency.get("ort-fp32") or {}).get("p50_ms")
    int8 = (latency.get("ort-int8") or {}).get("p50_ms")
    if overhead and fp32 and fp32 / overhead < 2 * MIN_ONNX_SPEEDUP:
        reasons.append(f"one session.run of an Identity graph costs {overhead * 1000:.0f} us of "
                       f"the fp32 {fp32 * 1000:.0f} us (caps any speed-up at "
                       f"{fp32 / overhead:.1f}x)")
    profile = entry.get("profile") or {}
    if "onnx-int8" in profile and "onnx-fp32" in profile and fp32 and int8:
        int8_conv = int8 * sum(profile["onnx-int8"]["op_share"].get(op, 0) for op in INT8_CONV)
        fp32_conv = fp32 * sum(profile["onnx-fp32"]["op_share"].get(op, 0) for op in FP32_CONV)
        if int8_conv and fp32_conv:
            reasons.append(f"the convolutions themselves: about {int8_conv * 1000:.0f} us int8 vs "
                           f"{fp32_conv * 1000:.0f} us fp32 per call "
                           f"({fp32_conv / int8_conv:.2f}x; "
                           "op shares of ORT's profile x p50)")
        kinds = {name: profile[name].get("conv_share") or {} for name in ("onnx-int8", "onnx-fp32")}
        if kinds["onnx-int8"].get("depthwise") and kinds["onnx-fp32"].get("depthwise"):
            parts = []
            for kind, shown in (("depthwise", "depthwise"), ("other", "the other convolutions")):
                mine, theirs = (kinds["onnx-int8"][kind] * int8,
                                kinds["onnx-fp32"][kind] * fp32)
                if mine and theirs:
                    parts.append(f"{shown} {mine * 1000:.0f} us int8 vs {theirs * 1000:.0f} us "
                                 f"fp32 ({theirs / mine:.2f}x)")
            reasons.append("by kind: " + ", ".join(parts) + " (ONNX Runtime's int8 depthwise "
                           "kernel is slower than its fp32 NCHWc one here)" * (
                               kinds["onnx-int8"]["depthwise"] * int8
                               > kinds["onnx-fp32"]["depthwise"] * fp32))
        reasons.append(f"ORT kernel time by op type, int8: {op_summary(profile['onnx-int8'])} "
                       f"({_float_share(profile['onnx-int8'])}); fp32: "
                       f"{op_summary(profile['onnx-fp32'])}")
    floor = entry.get("floors") or {}
    if fp32 and int8 and floor.get("int8_us"):
        reasons.append(f"against one core's peak (see the floor), fp32 runs at "
                       f"{fp32 * 1000 / floor['fp32_us']:.1f}x its FMA floor and int8 at "
                       f"{int8 * 1000 / floor['int8_us']:.1f}x its VNNI floor")
    return "; ".join(reasons) or "no cause found in the manifest or the profile"


def _pct(value) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _us(value_ms) -> str:
    return "n/a" if value_ms is None else f"{value_ms * 1000:.1f} us"


def _p50(entry: dict, name: str):
    return (entry["latency"].get(name) or {}).get("p50_ms")


def _ratio(first, second) -> str:
    return "n/a" if not first or not second else f"{first / second:.2f}x"


def _speed(fp32, int8) -> str:
    """fp32 / int8, in bold with "slower" when int8 is the slower one."""
    text = _ratio(fp32, int8)
    return f"**{text} (int8 slower)**" if fp32 and int8 and int8 > fp32 else text


def _drop(entry: dict, name: str) -> str:
    drop = entry["drops"].get(name)
    return "n/a" if drop is None else f"{drop:+.2f}"


def render(results: list[dict], figures: dict, quick: bool) -> str:
    peak = figures["peak"]
    first = results[0]
    lines = [
        HEADING,
        "",
        f"Machine: {machine_line(figures['machine'])}. Script: `benchmarks/int8_figures.py`"
        f"{' --quick' if quick else ''}. Measured {time.strftime('%Y-%m-%d')}; the last "
        f"invocation took {figures['seconds'] / 60:.1f} min (each model's own time is in the "
        f"Parents table). Versions: {figures['versions']}.",
        "",
        "Every file below is an artifact of edgekit's public API: per model `edgekit.train` "
        f"(epochs below), `edgekit.compress` with `int8`, `int8` + `int8_io` and, for "
        f"{' and '.join(f'{m} {i}' for m, i in QAT_ENTRIES)}, `qat` (1 fine-tuning epoch), then "
        "`edgekit.export(folder, to=\"tflite,onnx\", onnx_int8=\"auto\")` of each compressed "
        "folder. The 32x32x3 input is Fashion-MNIST zero-padded by 2 pixels on each side (28x28 -> "
        "32x32) and copied into 3 identical channels (uint8 .npz, read with the `npz:` dataset "
        "spec; the same 60,000 training and 10,000 test images); there is no RGB dataset "
        "offline.",
        "",
        f"Latency: batch 1, all runtimes of one model in one process, alternating in "
        f"{figures['rounds']} rounds of {figures['runs']} calls each (order rotated every round, "
        f"{figures['warmup']} warm-up calls each); p50 over all "
        f"{figures['rounds'] * figures['runs']} "
        "calls. ONNX Runtime: intra_op_num_threads=1, sequential, graph optimization all, "
        "`session.run`; its `session.run` floor is an Identity graph of the same input. LiteRT: "
        "`ai_edge_litert.interpreter.Interpreter(num_threads=N)` (XNNPACK default), "
        "`set_tensor` + `invoke` + `get_tensor`; int8-io takes the sample quantized with the "
        "input's scale / zero point outside the timed call. Ratios are fp32 p50 / int8 p50 of the "
        "same run. Other engineers share these 2 cores: the load average (1 min) before / after "
        "each model's timing is in the table.",
        "",
        "### Parents",
        "",
        "Epochs per parent are few on purpose: the default run (7 parents, 16 compress and 16 "
        "export runs, the timing) is sized to fit in about 40 minutes on 2 cores, while giving "
        "an accuracy that makes the int8 drops meaningful. Defaults: "
        + ", ".join(f"{m} {i} {e}" for (m, i), e in EPOCHS.items()) + " epochs (`--epochs` "
        "overrides; a finished folder is reused unless `--retrain`).",
        "",
        "| model | input | parameters | epochs | test accuracy (Keras) | trained "
        "| whole model (train, compress, export, timing) | command |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in results:
        summary = entry["parent_summary"]
        trained = "reused" if summary["reused"] else (
            f"{summary['seconds']:.0f} s" if summary.get("seconds") else "here")
        lines.append(f"| {entry['model']} | {entry['inputs']} | {summary['parameters']:,} | "
                     f"{summary['epochs_run']} | {_pct(summary['test_accuracy'])} | {trained} | "
                     f"{entry['seconds'] / 60:.1f} min | `{summary['command']}` |")
    lines += [
        "",
        "### ONNX Runtime, 1 thread: int8 / fp32",
        "",
        "| model | input | MACs | ONNX int8 path (export manifest) | fp32 | int8 | int8 / fp32 "
        "| session.run floor | load before / after | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in results:
        fp32, int8 = _p50(entry, "ort-fp32"), _p50(entry, "ort-int8")
        speed = next((t for t in entry["targets"] if "ONNX Runtime int8" in t["figure"]), None)
        met = "not targeted (not convolutional)" if speed is None else (
            "yes" if speed["met"] else f"**missed**: {speed['gap']}")
        target = "n/a" if speed is None else f">= {MIN_ONNX_SPEEDUP}x"
        load = " / ".join(f"{value:.2f}" for value in entry["load_average"])
        lines.append(f"| {entry['model']} | {entry['inputs']} | "
                     f"{entry['macs']['total'] / 1e6:.2f} M "
                     f"| {entry['onnx_int8_path']['text']} | {_us(fp32)} | {_us(int8)} | "
                     f"{_speed(fp32, int8)} | {_us(_p50(entry, 'ort-identity'))} | {load} | "
                     f"{target} | {met} |")
    qat_rows = [entry for entry in results if _p50(entry, "ort-qat-int8")]
    if qat_rows:
        lines += ["", "QAT ONNX int8 (not targeted; 1 thread, same rounds), fp32 p50 / QAT p50: "
                  + "; ".join(_qat_speed(entry) for entry in qat_rows) + "."]
    lines += [
        "",
        "### LiteRT (XNNPACK): int8 / fp32 at 1 and 2 threads, and int8 I/O",
        "",
        "int8 has float32 input / output tensors (the model quantizes and dequantizes inside); "
        "int8-io (`compress --int8 --int8-io`) has int8 input / output tensors, so the client "
        "quantizes the input and dequantizes the output itself. \"int8-io vs int8\" is int8 p50 / "
        "int8-io p50: what the in-model I/O quantization costs on this call.",
        "",
        "| model | input | threads | fp32 | int8 | int8-io | int8 / fp32 | int8-io / fp32 "
        "| int8-io vs int8 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in results:
        for threads in LITERT_THREADS:
            fp32, int8, io = (_p50(entry, f"litert-{name}@{threads}")
                              for name in ("fp32", "int8", "int8-io"))
            difference = "n/a" if not int8 or not io else (
                f"{_ratio(int8, io)} ({(int8 - io) * 1000:+.1f} us)")
            lines.append(f"| {entry['model']} | {entry['inputs']} | {threads} | {_us(fp32)} | "
                         f"{_us(int8)} | {_us(io)} | {_speed(fp32, int8)} | {_speed(fp32, io)} | "
                         f"{difference} |")
    lines += [
        "",
        "### Accuracy of each int8 artifact (test split, points against the fp32 parent)",
        "",
        "The .tflite accuracies are edgekit's own (`edgekit compress` measures each file through "
        "LiteRT on the whole test split and records it in the folder's manifest); the .onnx "
        "accuracies are computed here with ONNX Runtime on the whole test split. Drop = parent "
        "Keras accuracy - artifact accuracy (negative: the artifact scores higher, e.g. QAT "
        "fine-tuning a briefly trained parent).",
        "",
        "| model | input | parent Keras | fp32 .tflite | fp32 .onnx | .tflite int8 (drop) "
        "| .tflite int8-io (drop) | .onnx int8 (drop) | QAT .tflite (drop) | QAT .onnx (drop) "
        "| target | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in results:
        compress, onnx_acc = entry["compress"], entry["onnx_accuracy"]
        qat = compress.get("qat")
        misses = [t for t in entry["targets"] if "accuracy drop" in t["figure"] and not t["met"]]
        met = "yes" if not misses else "**missed**: " + "; ".join(
            f"{t['figure'].split(': ', 1)[1].replace(' accuracy drop', '')} {t['gap']}"
            for t in misses)
        lines.append(
            f"| {entry['model']} | {entry['inputs']} | {_pct(entry['parent_accuracy'])} | "
            f"{_pct(compress['int8']['parent_tflite_accuracy'])} | "
            f"{_pct(onnx_acc.get('onnx-fp32'))} | "
            f"{_pct(compress['int8']['tflite_accuracy'])} ({_drop(entry, 'tflite-int8')}) | "
            f"{_pct(compress['int8-io']['tflite_accuracy'])} ({_drop(entry, 'tflite-int8-io')}) | "
            f"{_pct(onnx_acc.get('onnx-int8'))} ({_drop(entry, 'onnx-int8')}) | "
            + (f"{_pct(qat['tflite_accuracy'])} ({_drop(entry, 'tflite-qat-int8')}) | "
               f"{_pct(onnx_acc.get('onnx-qat-int8'))} ({_drop(entry, 'onnx-qat-int8')}) | "
               if qat else "- | - | ")
            + f"<= {MAX_DROP} | {met} |")
    lines += [
        "",
        "### ONNX size: QAT int8 / fp32",
        "",
        "| model | input | fp32 .onnx | QAT int8 .onnx | QAT / fp32 | PTQ int8 .onnx | PTQ / fp32 "
        "| QAT path (export manifest) | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in results:
        if (entry["model"], entry["inputs"]) not in QAT_ENTRIES:
            continue
        sizes = entry["bytes"]
        target = next(t for t in entry["targets"] if "QAT ONNX" in t["figure"])
        qat_ratio, ptq_ratio = (("n/a" if value is None else f"{value:.3f}x")
                                for value in (entry["qat_onnx_ratio"], entry["ptq_onnx_ratio"]))
        lines.append(
            f"| {entry['model']} | {entry['inputs']} | {_bytes(sizes.get('onnx-fp32'))} | "
            f"{_bytes(sizes.get('onnx-qat-int8'))} | {qat_ratio} | "
            f"{_bytes(sizes.get('onnx-int8'))} | {ptq_ratio} | "
            f"{entry['onnx_qat_path']['text']} | <= {MAX_QAT_ONNX_RATIO}x | "
            f"{'yes' if target['met'] else '**missed**: ' + target['gap']} |")
    lines += render_floor(results, peak)
    lines += ["", "### Targets", "", "| target | measured | required | met |",
              "| --- | --- | --- | --- |"]
    for entry in results:
        for target in entry["targets"]:
            lines.append(f"| {target['figure']} | {target['measured']} | {target['required']} | "
                         + ("met" if target["met"] else f"**missed**: {target['gap']}") + " |")
    notes = [note for entry in results for exported in entry["export"].values()
             for note in exported["notes"]]
    errors = [f"{entry['model']} {entry['inputs']} {recipe}: {exported['error']}"
              for entry in results for recipe, exported in entry["export"].items()
              if exported["error"]]
    if notes or errors:
        lines += ["", "Export notes: " + "; ".join(notes + errors)]
    lines += [
        "",
        "Rerun (from the repo root): `.venv/bin/python benchmarks/int8_figures.py` "
        "(`--models`, `--epochs`, `--retrain`, `--rounds`, `--runs`). By hand, for "
        f"{first['model']} {first['inputs']}:",
        "",
        "```",
        first["parent_summary"]["command"],
        *[compressed["command"] for compressed in first["compress"].values()],
        *[exported["command"] for exported in first["export"].values() if exported["command"]],
        "```",
    ]
    return "\n".join(lines)


def render_floor(results: list[dict], peak: dict) -> list[str]:
    rows = [entry for entry in results if entry["model"] in FLOOR_MODELS and entry["floors"]]
    if not rows:
        return []
    lines = [
        "",
        "### The physical floor",
        "",
        f"MACs: every Conv2D / DepthwiseConv2D / Dense of the Keras model, output positions x "
        f"kernel size (BatchNorm, pooling, activations not counted; an LSTM: time steps x its "
        f"input and recurrent kernels). Peak of one core = MACs per "
        f"cycle x clock. Clock: {peak['mhz']:.0f} MHz, the \"cpu MHz\" /proc/cpuinfo reports "
        f"(the base clock, not turbo). int8: {peak['int8_text']} MACs per cycle; fp32: "
        f"{peak['fp32_text']} MACs per cycle (assumed, not measured: the number of 512-bit FMA "
        f"ports depends on the SKU). Floor = MACs / peak at 1 core; p50 / floor says how far each "
        f"1-thread runtime is from it (below 1.0x would mean the core runs above the reported "
        f"clock or the port assumption is wrong). The CPU's peak is cores x that: "
        f"{figures_cores(peak)} cores here, so the 2-thread LiteRT int8 p50 is set against half "
        f"the 1-core int8 floor.",
        "",
        "| model | input | MACs | int8 floor | fp32 floor | ORT fp32 | ORT int8 | LiteRT fp32 "
        "| LiteRT int8 | LiteRT int8-io | LiteRT int8, 2 threads, vs the 2-core int8 floor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in rows:
        floor = entry["floors"]

        def versus(name, key, cores=1):
            p50 = _p50(entry, name)
            bound = floor.get(key) and floor[key] / cores
            return "n/a" if not p50 or not bound else \
                f"{_us(p50)} = {p50 * 1000 / bound:.1f}x"

        int8_floor = floor.get("int8_us")
        lines.append(
            f"| {entry['model']} | {entry['inputs']} | {entry['macs']['total']:,} | "
            f"{'n/a' if int8_floor is None else f'{int8_floor:.1f} us'} | "
            f"{floor['fp32_us']:.1f} us | {versus('ort-fp32', 'fp32_us')} | "
            f"{versus('ort-int8', 'int8_us')} | {versus('litert-fp32@1', 'fp32_us')} | "
            f"{versus('litert-int8@1', 'int8_us')} | {versus('litert-int8-io@1', 'int8_us')} | "
            f"{versus('litert-int8@2', 'int8_us', cores=2)} |")
    return lines


def _qat_speed(entry: dict) -> str:
    fp32, qat = _p50(entry, "ort-fp32"), _p50(entry, "ort-qat-int8")
    slower = ""
    if qat > fp32:
        slower = f", **{qat / fp32:.2f}x slower than fp32**"
        profile = (entry.get("profile") or {}).get("onnx-qat-int8")
        if profile:
            slower += (f"; ORT kernel time by op type: {op_summary(profile)} "
                       f"({_float_share(profile)})")
    return (f"{entry['model']} {entry['inputs']} {_us(qat)} = {_ratio(fp32, qat)}{slower} "
            f"({entry['onnx_qat_path']['text']})")


# Ops that compute in int8 inside ONNX Runtime (after its QDQ fusions); the rest run in float.
INT8_OPS = ("QLinearConv", "QGemm", "MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearAdd",
            "QLinearMul", "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearSoftmax",
            "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat", "NhwcMaxPool",
            "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "DynamicQuantizeLSTM")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
INT8_CONV = ("QLinearConv", "ConvInteger")
FP32_CONV = ("Conv", "FusedConv")


def _float_share(profile: dict) -> str:
    shares = profile["op_share"]
    integer = sum(value for op, value in shares.items() if op in INT8_OPS)
    qdq = sum(value for op, value in shares.items() if op in QDQ_OPS)
    return (f"{integer * 100:.0f}% in int8 kernels, {qdq * 100:.0f}% in standalone "
            f"Quantize/DequantizeLinear, {(1 - integer - qdq) * 100:.0f}% in other (float or "
            "layout) kernels")


def figures_cores(peak: dict) -> int:
    return peak.get("cores") or os.cpu_count() or 1


def _bytes(value) -> str:
    return "n/a" if value is None else f"{value:,} B"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("tensorflow", "onnxruntime", "ai-edge-litert", "tf2onnx", "onnx"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = list(dict.fromkeys(model for model, _ in ENTRIES))
    parser.add_argument("--models", default=",".join(names), help=f"some of {', '.join(names)}")
    parser.add_argument("--inputs", default=f"{GREY},{RGB32}",
                        help=f"{GREY} (Fashion-MNIST) and/or {RGB32} (padded, 3 channels)")
    parser.add_argument("--epochs", type=int, help="epochs of every parent trained here [default "
                        "per model: " + ", ".join(f"{m} {i} {e}" for (m, i), e in EPOCHS.items())
                        + f"; {QUICK_EPOCHS} with --quick]")
    parser.add_argument("--retrain", action="store_true",
                        help="train the parents again instead of reusing a finished folder")
    parser.add_argument("--rounds", type=int, help="timing rounds [default 5; 2 with --quick]")
    parser.add_argument("--runs", type=int,
                        help="calls per runtime per round [default 300; 30 with --quick]")
    parser.add_argument("--warmup", type=int, help="warm-up calls per runtime [default 50; 5]")
    parser.add_argument("--export-samples", type=int,
                        help="test samples of the export fidelity check [default: all; "
                             f"{QUICK_TEST} with --quick]")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_TRAIN:,} / {QUICK_TEST} samples, {QUICK_EPOCHS} epoch, short "
                             "timing; print the section instead of writing RESULTS.md")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: write the section again from the recorded figures "
                             "(targets recomputed)")
    args = parser.parse_args()
    models = args.models.split(",")
    unknown = [model for model in models if model not in names]
    inputs = args.inputs.split(",")
    if unknown or any(value not in (GREY, RGB32) for value in inputs):
        parser.error(f"expected --models among {', '.join(names)} and --inputs among "
                     f"{GREY}, {RGB32}")
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.runs = args.runs or (30 if args.quick else 300)
    args.warmup = args.warmup if args.warmup is not None else (5 if args.quick else 50)
    started = time.time()
    specs = datasets(args.quick, inputs)
    peak = peak_assumptions()
    record = OUT / f"int8_figures{'_quick' if args.quick else ''}.json"
    previous = json.loads(record.read_text()) if record.exists() else {}
    results = {(entry["model"], entry["inputs"]): entry for entry in previous.get("results", [])}

    def save() -> dict:
        """The record so far (written after every model: a later failure keeps the others)."""
        figures = {"machine": machine(), "peak": peak, "versions": versions(),
                   "rounds": args.rounds, "runs": args.runs, "warmup": args.warmup,
                   "seconds": round(time.time() - started, 1),
                   "results": [results[key] for key in ENTRIES if key in results]}
        record.write_text(json.dumps(figures, indent=2, default=str))
        return figures

    if args.render:
        if not previous:
            parser.error(f"--render: no recorded figures in {relative(record)}; run the script "
                         "without --render first")
        started -= previous.get("seconds", 0.0)  # the section reports the measuring run's time
        models = []
        for entry in results.values():
            entry["targets"] = targets(entry)
    for model, kind in ENTRIES:
        if model in models and kind in inputs:
            epochs = args.epochs or (QUICK_EPOCHS if args.quick else EPOCHS[(model, kind)])
            results[(model, kind)] = run_entry(model, kind, specs[kind], epochs, args, peak)
            save()
    figures = save()
    ordered = figures["results"]
    section = render(ordered, figures, args.quick)
    missed = [target for entry in ordered for target in entry["targets"] if not target["met"]]
    if args.quick:
        print(section)
        print(f"\n--quick: not written to RESULTS.md (figures in {relative(record)})")
    else:
        written = replace_section(SECTION, section)
        print(f"wrote {relative(written)} (figures in {relative(record)})")
    print(f"{len(missed)} target(s) missed" + "".join(
        f"\n  missed: {target['figure']}: {target['measured']} (target {target['required']}): "
        f"{target['gap']}" for target in missed))
    print(f"total {(time.time() - started) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
