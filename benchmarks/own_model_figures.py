"""Your own model, exactly as you trained it: a residual CNN built and trained outside edgekit.

Usage:
    .venv/bin/python benchmarks/own_model_figures.py                # 3 epochs, writes RESULTS.md
    .venv/bin/python benchmarks/own_model_figures.py --epochs 5
    .venv/bin/python benchmarks/own_model_figures.py --quick        # 1 epoch, prints only

The model is written here (not taken from edgekit's zoo): a tf-keras functional residual CNN
(Conv-BN-ReLU stem, two residual blocks joined by Add, global average pooling, Dense softmax).
It is trained with plain ``model.fit`` on Fashion-MNIST's training split (edgekit's split, inputs
``x / 255``), saved as ``.h5`` under benchmarks/out/own_model/, and scored by Keras' own
``model.evaluate(x_test / 255, y_test)``. Then edgekit takes that file, told only
``preprocess="scale=0.00392156862745098"`` (1/255):

- ``compress --int8``, ``compress --prune 0.5 --qat``, ``compress --cluster 16 --int8``;
- ``export`` of the int8 child to TFLite and ONNX (fidelity gates at their defaults);
- ``bench`` of the int8 child (keras, tflite and onnx artifacts, 1 thread, batch 1).

Targets (issue 9): the parent accuracy edgekit reports within 0.05 points of Keras' own
evaluation (every recipe measures it again); the int8 .tflite drops <= 0.5 points through LiteRT.

``--quick`` (1 epoch, 1 fine-tuning epoch, fewer samples, short timing windows) only checks that
the script runs; its figures are printed, not written to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import edgekit  # noqa: E402  (selects Keras 2 first)
from edgekit.manifest import machine  # noqa: E402
from results_file import export_fidelity, machine_line, replace_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"
SECTION = "own-model"
HEADING = ("## Your own model (issue 9): a residual CNN trained outside edgekit on fashion_mnist")
DATASET = "fashion_mnist"
SCALE = 1 / 255
PREPROCESS = f"scale={SCALE!r}"  # "scale=0.00392156862745098"
# Recipe name -> compress options. Every recipe checks the parent diff; int8 also the drop.
RECIPES = {
    "int8": {"int8": True},
    "prune50-qat": {"prune": 0.5, "qat": True},
    "cluster16-int8": {"cluster": 16, "int8": True},
}
MAX_PARENT_DIFF = 0.05  # points, |edgekit's parent keras accuracy - model.evaluate|
MAX_INT8_DROP = 0.5  # points, int8 .tflite through LiteRT against the parent Keras model
INT8_RECIPE = "int8"


def relative(text: str) -> str:
    """``text`` with this checkout's absolute path taken out (commands and paths in the section)."""
    return str(text).replace(str(REPO) + "/", "").replace(str(REPO), ".")


# --------------------------------------------------------------------------------------------
# 1-2. The user's side: a model written and trained without edgekit's help.


def build_model(tf_keras, input_shape, classes: int):
    """A small residual CNN: stem, two residual blocks (the second downsamples), GAP, softmax."""
    layers = tf_keras.layers

    def conv_bn(x, filters, strides=1, relu=True, name=""):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                          name=f"{name}_conv")(x)
        # momentum 0.9: the moving statistics follow the weights within an epoch (at Keras'
        # 0.99 a 1-epoch model scores far lower in inference mode than in training).
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x) if relu else x

    inputs = tf_keras.Input(shape=input_shape, name="image")
    x = conv_bn(inputs, 32, name="stem")
    x = layers.MaxPooling2D(2, name="stem_pool")(x)  # 14x14
    # Block 1: identity shortcut.
    y = conv_bn(x, 32, name="block1a")
    y = conv_bn(y, 32, relu=False, name="block1b")
    x = layers.ReLU(name="block1_out")(layers.Add(name="block1_add")([x, y]))
    # Block 2: stride 2 with a 1x1 projection shortcut (7x7, 64 channels).
    y = conv_bn(x, 64, strides=2, name="block2a")
    y = conv_bn(y, 64, relu=False, name="block2b")
    shortcut = layers.Conv2D(64, 1, strides=2, use_bias=False, name="block2_proj_conv")(x)
    shortcut = layers.BatchNormalization(momentum=0.9, name="block2_proj_bn")(shortcut)
    x = layers.ReLU(name="block2_out")(layers.Add(name="block2_add")([shortcut, y]))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(classes, activation="softmax", name="classifier")(x)
    return tf_keras.Model(inputs, outputs, name="own_residual_cnn")


def train_own_model(epochs: int, seed: int, work: Path) -> dict:
    """Train outside edgekit on edgekit's splits (x / 255), save .h5, evaluate with Keras."""
    from edgekit._compat import keras

    tf_keras = keras()
    data = edgekit.load_dataset(DATASET, seed=seed)
    x_train, y_train = data.x_train / 255.0, data.y_train
    x_val, y_val = data.x_val / 255.0, data.y_val
    x_test, y_test = data.x_test / 255.0, data.y_test
    classes = int(max(y_train.max(), y_test.max()) + 1)
    tf_keras.utils.set_random_seed(seed)
    model = build_model(tf_keras, x_train.shape[1:], classes)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.time()
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
                        batch_size=128, verbose=2)
    seconds = time.time() - started
    path = work / "own_residual_cnn.h5"
    model.save(path)
    # Keras' own evaluation, on the model as saved (reloaded from the .h5 edgekit will read).
    reloaded = tf_keras.models.load_model(path)
    loss, accuracy = reloaded.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"own model: {model.count_params():,} parameters, trained {epochs} epoch(s) in "
          f"{seconds:.0f} s; Keras evaluate on test: {accuracy * 100:.2f}%", flush=True)
    return {"path": str(path), "parameters": int(model.count_params()), "epochs": epochs,
            "seed": seed, "train_seconds": round(seconds, 1),
            "splits": {"train": int(len(y_train)), "val": int(len(y_val)), "test": int(len(y_test))},
            "val_accuracy": float(history.history["val_accuracy"][-1]),
            "keras_evaluate_accuracy": float(accuracy), "keras_evaluate_loss": float(loss)}


# --------------------------------------------------------------------------------------------
# 3. edgekit on that file.


def run_compress(own: dict, work: Path, quick: bool, finetune_epochs: int) -> list[dict]:
    rows = []
    options = {"finetune_epochs": finetune_epochs}
    if quick:
        options["calibration_samples"] = 200
    for name, recipe in RECIPES.items():
        started = time.time()
        result = edgekit.compress(own["path"], dataset=DATASET, preprocess=PREPROCESS,
                                  output_dir=work / f"compress-{name}", force=True, progress=False,
                                  **recipe, **options)
        by_label = {row["label"]: row for row in result.rows}
        parent_keras, parent_tflite = by_label["parent keras"], by_label["parent tflite"]
        child_keras, child_tflite = by_label["compressed keras"], by_label["compressed tflite"]
        diff = (parent_keras["accuracy"] - own["keras_evaluate_accuracy"]) * 100
        row = {
            "recipe": name, "folder": str(result.output_dir),
            "command": relative(result.manifest["command"]),
            "seconds": round(time.time() - started, 1),
            "contract": result.manifest.get("input_contract")
            or (result.manifest.get("dataset") or {}).get("input_contract"),
            "parent_keras_accuracy": parent_keras["accuracy"],
            "parent_diff_points": diff,
            "parent_tflite_accuracy": parent_tflite["accuracy"],
            "parent_tflite_bytes": parent_tflite["bytes"],
            "child_keras_accuracy": child_keras["accuracy"],
            "accuracy": child_tflite["accuracy"], "drop": child_tflite["accuracy_drop_points"],
            "bytes": child_tflite["bytes"],
            "size_ratio": child_tflite["size_ratio_to_parent_fp32_tflite"],
            "gzip_factor": 1 / child_tflite["gzip_ratio_to_parent_fp32_tflite"],
            "sparsity_in_file": child_tflite["weights_in_file"]["sparsity"],
            "io": child_tflite.get("io"),
        }
        rows.append(row)
        print(json.dumps({key: row[key] for key in ("recipe", "parent_keras_accuracy",
                                                    "parent_diff_points", "accuracy", "drop",
                                                    "size_ratio", "seconds")}), flush=True)
    return rows


def run_export(folder: Path, quick: bool) -> dict:
    exported = export_fidelity(folder, samples=1000 if quick else None)
    exported["command"] = relative(exported["command"])
    exported["error"] = relative(exported["error"]) if exported["error"] else None
    return exported


def run_bench(folder: Path, work: Path, samples: int, quick: bool) -> dict:
    from edgekit.bench.run import ArtifactsFailedError

    timing = {"min_seconds": 0.3, "warmup_seconds": 0.1} if quick else {}
    started = time.time()
    error = None
    try:
        result = edgekit.bench(folder, samples=samples, output_dir=work / "bench", **timing)
    except ArtifactsFailedError as failure:
        result, error = failure.result, str(failure)
    rows = {}
    for row in result.artifacts:
        short = row["name"].split("/", 1)[-1]
        found = row["metrics"]
        rows[short] = {"status": row["status"], "reason": row.get("reason"),
                       "bytes": row.get("bytes"), "accuracy": row.get("accuracy"),
                       "p50_ms": found.get("p50_ms"), "p99_ms": found.get("p99_ms"),
                       "agreement": found.get("agreement")}
    print(json.dumps({name: row["p50_ms"] for name, row in rows.items()}), flush=True)
    command = result.report.get("command") or (
        f"edgekit bench {folder} --samples {samples} --output {work / 'bench'}"
        + (" --min-seconds 0.3 --warmup-seconds 0.1" if quick else ""))
    return {"command": relative(command), "samples": samples,
            "seconds": round(time.time() - started, 1), "error": relative(error) if error else None,
            "rows": rows, "warnings": [relative(w) for w in result.report.get("warnings", [])]}


# --------------------------------------------------------------------------------------------
# 4. The section.


def _pct(value) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:.4f} ms"


def targets(figures: dict) -> list[tuple[str, str, str, bool]]:
    """(figure, measured, target, met) per target."""
    found = []
    for row in figures["compress"]:
        diff = row["parent_diff_points"]
        found.append((f"parent accuracy edgekit reports vs Keras evaluate ({row['recipe']} run)",
                      f"{_points(diff)} points", f"abs(diff) <= {MAX_PARENT_DIFF}",
                      abs(diff) <= MAX_PARENT_DIFF + 1e-9))
    int8 = next(row for row in figures["compress"] if row["recipe"] == INT8_RECIPE)
    found.append(("int8 .tflite accuracy drop through LiteRT", f"{int8['drop']:.2f} points",
                  f"<= {MAX_INT8_DROP}", int8["drop"] <= MAX_INT8_DROP + 1e-9))
    return found


def render(figures: dict, quick: bool) -> str:
    own = figures["own"]
    first = figures["compress"][0]
    contract = first.get("contract") or {}
    raw = contract.get("raw") or {}
    preprocessing = _describe(contract.get("preprocessing"))
    lines = [
        HEADING,
        "",
        f"Machine: {machine_line(figures['machine'])}. Script: `benchmarks/own_model_figures.py`"
        f"{' --quick' if quick else ''}. Measured {time.strftime('%Y-%m-%d')}; whole run "
        f"{figures['seconds'] / 60:.1f} min.",
        "",
        f"The parent is written and trained by the script, not by edgekit: a tf-keras functional "
        f"residual CNN (Conv-BN-ReLU stem + max-pool, BatchNorm momentum 0.9, two residual blocks with `Add` — the second "
        f"strided with a 1x1 projection shortcut —, global average pooling, Dense softmax), "
        f"{own['parameters']:,} parameters. Trained with plain `model.fit` (Adam 1e-3, batch 128, "
        f"{own['epochs']} epoch(s), seed {own['seed']}) on edgekit's fashion_mnist training split "
        f"({own['splits']['train']:,} train / {own['splits']['val']:,} val / "
        f"{own['splits']['test']:,} test) with inputs `x / 255`, saved as "
        f"`{own['path']}`. Keras' own "
        f"`model.evaluate(x_test / 255, y_test)` on the reloaded .h5: "
        f"**{_pct(own['keras_evaluate_accuracy'])}**.",
        "",
        f"edgekit is told only `--preprocess {PREPROCESS}` "
        f"(1/255); the input contract it records: raw {tuple(raw.get('shape', ()))} "
        f"{raw.get('dtype', '?')} in [{raw.get('min', '?'):g}, {raw.get('max', '?'):g}] -> "
        f"`{preprocessing}` (source `{contract.get('source', '?')}`, from "
        f"{contract.get('detail', '?')}). Each recipe re-measures the parent on the test "
        f"split; accuracy of the result is its .tflite through LiteRT, drop in points against the "
        f"parent Keras model, size against the parent converted to an fp32 .tflite in that run. "
        f"Fine-tuning: {figures['finetune_epochs']} epoch(s).",
        "",
        "| recipe | parent (edgekit, Keras) | parent (model.evaluate) | diff (points) "
        "| parent fp32 .tflite | result .tflite (LiteRT) | drop (points) | .tflite size "
        "| x fp32 size | x smaller gzipped | zeros in file |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in figures["compress"]:
        lines.append(
            f"| {row['recipe']} | {_pct(row['parent_keras_accuracy'])} | "
            f"{_pct(own['keras_evaluate_accuracy'])} | {_points(row['parent_diff_points'])} "
            f"({_samples_apart(row['parent_diff_points'], own['splits']['test'])}) | "
            f"{_pct(row['parent_tflite_accuracy'])} | {_pct(row['accuracy'])} | "
            f"{row['drop']:.2f} | {row['bytes']:,} B | {row['size_ratio']:.3f}x | "
            f"{row['gzip_factor']:.1f}x | {row['sparsity_in_file'] * 100:.1f}% |")
    if any(row["drop"] < 0 for row in figures["compress"]):
        lines += ["", "A negative drop means the result scores higher than its parent: the "
                  "fine-tuning of pruning / clustering / QAT goes on training a parent that had "
                  f"only {own['epochs']} epoch(s)."]
    export = figures["export"]
    lines += [
        "",
        f"Export of the int8 child (`--to tflite,onnx`, default thresholds; fidelity against the "
        f"child's Keras model on {_samples_text(export)} test samples):",
        "",
        "| artifact | top-1 agreement | max abs diff | gate (default) | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, entry in export["artifacts"].items():
        gate = ("n/a" if entry["min_agreement"] is None else
                f"agreement >= {entry['min_agreement'] * 100:.1f}%"
                + (f", max abs diff <= {entry['max_abs_limit']:.0e}"
                   if entry["max_abs_limit"] is not None else ""))
        verdict = {"passed": "pass", "failed": "**fail**: " + "; ".join(entry["failures"])}.get(
            entry["status"], f"{entry['status']}" + (f" ({entry['reason']})" if entry["reason"] else ""))
        maximum = "n/a" if entry["max_abs_diff"] is None else f"{entry['max_abs_diff']:.2e}"
        lines.append(f"| {name} | {_pct(entry['agreement'])} | {maximum} | {gate} | {verdict} |")
    if export["error"]:
        lines += ["", f"edgekit export exited with a fidelity error: {export['error']}"]
    bench = figures["bench"]
    rows = bench["rows"]
    lines += [
        "",
        f"Bench of the int8 child (default timing: 1 thread, batch 1, each artifact in its own "
        f"process; accuracy on the first {bench['samples']:,} test samples). Ratios are p50 "
        "speed-ups measured in this same run:",
        "",
        "| artifact | size | accuracy | p50 | x faster than tflite-fp32 | x faster than keras |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    reference_tflite = (rows.get("tflite-fp32") or {}).get("p50_ms")
    reference_keras = (rows.get("keras") or {}).get("p50_ms")
    for name in ("keras", "tflite-fp32", "tflite-int8", "onnx-fp32", "onnx-int8"):
        row = rows.get(name)
        if row is None:
            continue
        p50 = row["p50_ms"]
        lines.append(
            f"| {name} | {row['bytes']:,} B | {_pct(row['accuracy'])} | {_ms(p50)} | "
            f"{_ratio(reference_tflite, p50)} | {_ratio(reference_keras, p50)} |"
            if row["status"] == "ok" else f"| {name} | failed: {row['reason']} | | | | |")
    onnx_fp32, onnx_int8 = (rows.get(name, {}).get("p50_ms") for name in ("onnx-fp32", "onnx-int8"))
    if onnx_fp32 and onnx_int8 and onnx_int8 > onnx_fp32:
        lines += ["", f"ONNX Runtime int8 (QDQ) is {onnx_int8 / onnx_fp32:.2f}x slower than ONNX "
                  "Runtime fp32 on this model at batch 1, 1 thread."]
    if bench["error"]:
        lines += ["", f"edgekit bench reported failed artifacts: {bench['error']}"]
    lines += ["", "| target | measured | required | met |", "| --- | --- | --- | --- |"]
    for figure, measured, required, met in targets(figures):
        lines.append(f"| {figure} | {measured} | {required} | {'met' if met else '**missed**'} |")
    int8_row = next(row for row in figures["compress"] if row["recipe"] == INT8_RECIPE)
    lines += [
        "",
        "Rerun (from the repo root): `.venv/bin/python benchmarks/own_model_figures.py`. By hand, "
        "after the script has written the .h5:",
        "",
        "```",
        *[row["command"] for row in figures["compress"]],
        export["command"] or f"edgekit export {relative(int8_row['folder'])} --to tflite,onnx",
        bench["command"],
        "```",
    ]
    return "\n".join(lines)


def _points(value: float) -> str:
    """Signed points to 2 decimals, without a "-0.00" for float noise."""
    return "0.00" if abs(value) < 0.005 else f"{value:+.2f}"


def _describe(preprocessing: dict | None) -> str:
    if not preprocessing:
        return "?"
    from edgekit.data.base import Preprocessing

    return Preprocessing.from_dict(preprocessing).describe()


def _samples_apart(points: float, samples: int) -> str:
    """How many test samples a difference in points is (Keras' metric is a float32 mean)."""
    count = round(points / 100 * samples)
    return f"{count:+d} sample{'' if abs(count) == 1 else 's'}" if count else "0 samples"


def _samples_text(export: dict) -> str:
    counts = {entry["samples"] for entry in export["artifacts"].values() if entry["samples"]}
    return ", ".join(f"{count:,}" for count in sorted(counts)) or "n/a"


def _ratio(reference, value) -> str:
    return "n/a" if not reference or not value else f"{reference / value:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="training epochs of the own model "
                                                   "[default 3; 1 with --quick]")
    parser.add_argument("--finetune-epochs", type=int, help="default 2 (1 with --quick)")
    parser.add_argument("--samples", type=int,
                        help="test samples bench scores accuracy on [default 2000; 500 with --quick]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="1 epoch, fewer samples; print the section instead of writing RESULTS.md")
    arguments = parser.parse_args()
    quick = arguments.quick
    epochs = arguments.epochs or (1 if quick else 3)
    finetune_epochs = arguments.finetune_epochs or (1 if quick else 2)
    samples = arguments.samples or (500 if quick else 2000)
    work = OUT / ("own_model-quick" if quick else "own_model")
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    own = train_own_model(epochs, arguments.seed, work)
    compressed = run_compress(own, work, quick, finetune_epochs)
    int8_folder = Path(next(row["folder"] for row in compressed if row["recipe"] == INT8_RECIPE))
    exported = run_export(int8_folder, quick)
    benched = run_bench(int8_folder, work, samples, quick)
    figures = {"machine": machine(), "own": {**own, "path": relative(own["path"])},
               "finetune_epochs": finetune_epochs, "compress": compressed, "export": exported,
               "bench": benched, "seconds": round(time.time() - started, 1)}
    figures["targets"] = [{"figure": f, "measured": m, "required": r, "met": ok}
                          for f, m, r, ok in targets(figures)]
    record = OUT / f"own_model_figures{'_quick' if quick else ''}.json"
    record.write_text(json.dumps(figures, indent=2, default=str))
    section = render(figures, quick)
    if quick:
        print(section)
        print(f"\n--quick: not written to RESULTS.md (figures in {relative(record)})")
    else:
        print(f"wrote {relative(replace_section(SECTION, section))} (figures in {relative(record)})")
    print(f"total {figures['seconds'] / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
