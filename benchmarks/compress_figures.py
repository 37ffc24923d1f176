"""Reproduce the compression stage's figures and rewrite their section of benchmarks/RESULTS.md.

Usage:
    .venv/bin/python benchmarks/compress_figures.py                     # fashion_mnist, 3 models
    .venv/bin/python benchmarks/compress_figures.py --models cnn         # one model
    .venv/bin/python benchmarks/compress_figures.py --dataset digits --quick   # smoke test

For each model the fp32 parent (reused from models/<model>-<dataset> when it is there, else
trained) is compressed with every recipe below by ``edgekit.compress``; each run measures its
result side by side with the parent on the test split (accuracy through LiteRT, .tflite size raw
and gzipped against the parent's fp32 .tflite converted in the same run, zeros in the file).

Targets (issue 3, cnn on Fashion-MNIST; mobilenet_v2 and resnet8 report whichever they reach):
int8 PTQ drop <= 0.5 points and <= 0.27x the fp32 size; QAT int8 drop <= 0.2; fp16 drop <= 0.1
and <= 0.52x; 80% pruning + QAT int8 drop <= 1 and >= 12x smaller gzipped; 16 clusters + int8
>= 8x smaller gzipped and drop <= 1.

``--quick`` (fewer epochs, one fine-tuning epoch) only checks that the script runs; its figures
are printed, not written to RESULTS.md.
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
from results_file import machine_line, replace_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"

# name -> (compress options, targets). Targets: max_drop (points), max_size_ratio (raw .tflite
# over the parent's fp32 .tflite), min_gzip_factor (gzipped fp32 .tflite over gzipped result).
RECIPES = {
    "int8": ({"int8": True}, {"max_drop": 0.5, "max_size_ratio": 0.27}),
    "qat": ({"qat": True}, {"max_drop": 0.2}),
    "fp16": ({"fp16": True}, {"max_drop": 0.1, "max_size_ratio": 0.52}),
    "prune80-qat": ({"prune": 0.8, "qat": True}, {"max_drop": 1.0, "min_gzip_factor": 12}),
    "cluster16-int8": ({"cluster": 16, "int8": True}, {"max_drop": 1.0, "min_gzip_factor": 8}),
}
# Training epochs of a parent trained here (full run, --quick run).
PARENT_EPOCHS = {"cnn": (15, 4), "mobilenet_v2": (10, 2), "resnet8": (10, 2)}
TARGET_MODEL = "cnn"


def parent_folder(model: str, dataset: str, retrain: bool, quick: bool,
                  parent_epochs: int | None = None) -> tuple[Path, dict]:
    """models/<model>-<dataset> if it holds a finished train run, else a parent trained here."""
    from edgekit.manifest import read_manifest

    existing = REPO / "models" / f"{model}-{dataset}"
    if not retrain and (existing / "manifest.json").is_file():
        manifest = read_manifest(existing)
        config = manifest.get("config", {})
        if manifest.get("stage") == "train" and config.get("model") == model \
                and config.get("dataset") == dataset and manifest.get("status") == "complete":
            return existing, {"reused": True, **_parent_summary(manifest)}
    epochs = parent_epochs or PARENT_EPOCHS[model][1 if quick else 0]
    folder = OUT / "compress_parents" / f"{model}-{dataset}{'-quick' if quick else ''}"
    if not retrain and (folder / "manifest.json").is_file():
        return folder, {"reused": True, **_parent_summary(read_manifest(folder))}
    result = edgekit.train(model=model, dataset=dataset, epochs=epochs, output_dir=folder,
                           force=True)
    return folder, {"reused": False, **_parent_summary(result.manifest)}


def _parent_summary(manifest: dict) -> dict:
    return {"command": manifest["command"], "epochs_run": manifest["training"]["epochs_run"],
            "train_accuracy_recorded": manifest["evaluation"]["test"]["accuracy"],
            "parameters": manifest["model"]["parameters"]["total"]}


def run_model(model: str, dataset: str, recipes: list[str], quick: bool, retrain: bool,
              finetune_epochs: int | None, parent_epochs: int | None = None) -> dict:
    from edgekit.compress import compress

    parent, summary = parent_folder(model, dataset, retrain, quick, parent_epochs)
    print(f"== {model} on {dataset}: parent {parent}", flush=True)
    options = {"finetune_epochs": finetune_epochs or (1 if quick else 2)}
    if quick:
        options["calibration_samples"] = 200
    rows = []
    for name in recipes:
        recipe_options, targets = RECIPES[name]
        started = time.time()
        result = compress(str(parent), output_dir=OUT / "compress" / f"{model}-{dataset}-{name}",
                          force=True, **recipe_options, **options)
        parent_keras, parent_tflite, _, tflite = result.rows
        row = {
            "recipe": name, "command": result.manifest["command"],
            "seconds": round(time.time() - started, 1),
            "parent_accuracy": parent_keras["accuracy"],
            "parent_tflite_accuracy": parent_tflite["accuracy"],
            "parent_tflite_bytes": parent_tflite["bytes"],
            "parent_tflite_gzip_bytes": parent_tflite["gzip_bytes"],
            "accuracy": tflite["accuracy"], "drop": tflite["accuracy_drop_points"],
            "bytes": tflite["bytes"], "gzip_bytes": tflite["gzip_bytes"],
            "size_ratio": tflite["size_ratio_to_parent_fp32_tflite"],
            "gzip_factor": 1 / tflite["gzip_ratio_to_parent_fp32_tflite"],
            "sparsity_in_file": tflite["weights_in_file"]["sparsity"],
            "weight_dtypes": sorted(tflite["weights_in_file"]["by_dtype"]),
            "targets": targets,
        }
        row["misses"] = misses(row)
        rows.append(row)
        print(json.dumps({key: row[key] for key in ("recipe", "accuracy", "drop", "size_ratio",
                                                    "gzip_factor", "misses", "seconds")}),
              flush=True)
    return {"model": model, "dataset": dataset, "parent": str(parent), "parent_summary": summary,
            "finetune_epochs": options["finetune_epochs"], "rows": rows}


def misses(row: dict) -> list[str]:
    """Each target the row misses, with the gap."""
    targets, found = row["targets"], []
    if "max_drop" in targets and row["drop"] > targets["max_drop"]:
        found.append(f"drop {row['drop']:.2f} > {targets['max_drop']} points "
                     f"(gap {row['drop'] - targets['max_drop']:.2f})")
    if "max_size_ratio" in targets and row["size_ratio"] > targets["max_size_ratio"]:
        found.append(f"size {row['size_ratio']:.3f}x > {targets['max_size_ratio']}x")
    if "min_gzip_factor" in targets and row["gzip_factor"] < targets["min_gzip_factor"]:
        found.append(f"gzipped {row['gzip_factor']:.1f}x < {targets['min_gzip_factor']}x smaller")
    return found


def _target_text(targets: dict) -> str:
    parts = []
    if "max_drop" in targets:
        parts.append(f"drop <= {targets['max_drop']}")
    if "max_size_ratio" in targets:
        parts.append(f"<= {targets['max_size_ratio']}x")
    if "min_gzip_factor" in targets:
        parts.append(f">= {targets['min_gzip_factor']}x smaller gz")
    return ", ".join(parts)


def render(results: list[dict], machine_info: dict, quick: bool) -> str:
    lines = [
        "## Compression (issue 3)",
        "",
        f"Machine: {machine_line(machine_info)}. Script: `benchmarks/compress_figures.py`"
        f"{' --quick' if quick else ''}. Measured {time.strftime('%Y-%m-%d')}.",
        "Each row is one `edgekit compress` run measured side by side with its fp32 parent in the "
        "same run, on the test split: accuracy of the .tflite through LiteRT, drop in points "
        "against the parent Keras model, size against the parent converted to an fp32 .tflite in "
        "that run (gzip -9), zeros counted in the .tflite's weight buffers. Targets apply to "
        f"`{TARGET_MODEL}`; the other models report where they land.",
    ]
    for entry in results:
        summary = entry["parent_summary"]
        first = entry["rows"][0]
        lines += [
            "",
            f"### {entry['model']} on {entry['dataset']}",
            "",
            f"Parent: {summary['parameters']:,} parameters, {summary['epochs_run']} epochs "
            f"(`{summary['command']}`{', reused' if summary['reused'] else ''}); test accuracy "
            f"{first['parent_accuracy'] * 100:.2f}% (Keras), {first['parent_tflite_accuracy'] * 100:.2f}% "
            f"(fp32 .tflite, {first['parent_tflite_bytes']:,} B, {first['parent_tflite_gzip_bytes']:,} B "
            f"gzipped). Fine-tuning: {entry['finetune_epochs']} epoch(s) per technique.",
            "",
            "| recipe | accuracy | drop (points) | .tflite | x fp32 size | gzipped | x smaller gzipped "
            "| zeros in file | weights | target | met |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        targeted = entry["model"] == TARGET_MODEL
        for row in entry["rows"]:
            met = ("yes" if not row["misses"] else "**no**: " + "; ".join(row["misses"])) \
                if targeted else ("(reached)" if not row["misses"] else "gap: " + "; ".join(row["misses"]))
            lines.append(
                f"| {row['recipe']} | {row['accuracy'] * 100:.2f}% | {row['drop']:.2f} | "
                f"{row['bytes']:,} B | {row['size_ratio']:.3f}x | {row['gzip_bytes']:,} B | "
                f"{row['gzip_factor']:.1f}x | {row['sparsity_in_file'] * 100:.1f}% | "
                f"{'/'.join(row['weight_dtypes'])} | {_target_text(row['targets'])} | {met} |"
            )
        lines += ["", f"One row by hand: `{entry['rows'][0]['command']}` (the others differ by "
                  "their recipe flags; each result's manifest.json holds its command)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--models", default="cnn,mobilenet_v2,resnet8")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=", ".join(RECIPES))
    parser.add_argument("--finetune-epochs", type=int, help="default 2 (1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="few epochs; print the section instead of writing RESULTS.md")
    parser.add_argument("--retrain", action="store_true", help="train the parents again")
    parser.add_argument("--parent-epochs", type=int,
                        help="epochs of a parent trained here [default per model: "
                             + ", ".join(f"{m} {e[0]}" for m, e in PARENT_EPOCHS.items()) + "]")
    arguments = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    recipes = arguments.recipes.split(",")
    unknown = [name for name in recipes if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(unknown)}; expected some of {', '.join(RECIPES)}")
    suffix = "quick" if arguments.quick else arguments.dataset
    previous = OUT / f"compress_figures_{suffix}.json"
    results = {entry["model"]: entry for entry in json.loads(previous.read_text())["results"]} \
        if previous.exists() else {}
    for model in arguments.models.split(","):
        results[model] = run_model(model, arguments.dataset, recipes, arguments.quick,
                                   arguments.retrain, arguments.finetune_epochs,
                                   arguments.parent_epochs)
    ordered = [results[name] for name in PARENT_EPOCHS if name in results]
    machine_info = machine()
    previous.write_text(json.dumps({"machine": machine_info, "results": ordered}, indent=2))
    section = render(ordered, machine_info, arguments.quick)
    if arguments.quick:
        print(section)
        print(f"\n--quick: not written to RESULTS.md (figures in {previous})")
    else:
        print(f"wrote {replace_section('compress', section)}")


if __name__ == "__main__":
    main()
