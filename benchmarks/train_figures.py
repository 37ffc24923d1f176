"""Reproduce the training stage's figures and rewrite their section of benchmarks/RESULTS.md.

Usage:
    .venv/bin/python benchmarks/train_figures.py            # everything (about 15 minutes on 2 cores)
    .venv/bin/python benchmarks/train_figures.py --only digits,main_job

Targets (issue 2): cnn on digits >= 97% with default settings; cnn on fashion_mnist >= 91%;
lstm on fashion_mnist >= 85%; the README's main job in under 3 minutes, install not counted.
Each accuracy is shown beside a reference measured in the same run on the same split: a
scikit-learn logistic regression on the same preprocessed pixels.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import edgekit  # noqa: E402  (selects Keras 2 first)
from edgekit.manifest import machine  # noqa: E402
from results_file import machine_line, replace_section  # noqa: E402

RUNS = {
    # name: (train options, target accuracy)
    "digits": ({"model": "cnn", "dataset": "digits"}, 0.97),
    "fashion_cnn": ({"model": "cnn", "dataset": "fashion_mnist", "epochs": 15}, 0.91),
    "fashion_lstm": ({"model": "lstm", "dataset": "fashion_mnist", "epochs": 15}, 0.85),
}
MAIN_JOB_BUDGET_SECONDS = 180.0


def logistic_regression_reference(dataset_name: str) -> tuple[float, float]:
    """Test accuracy and fit time of a logistic regression on the same split and preprocessing."""
    from sklearn.linear_model import LogisticRegression

    dataset = edgekit.load_dataset(dataset_name, seed=0)
    x_train, y_train = dataset.preprocessed("train")
    x_test, y_test = dataset.preprocessed("test")
    started = time.time()
    classifier = LogisticRegression(max_iter=200)
    classifier.fit(x_train.reshape(len(x_train), -1), y_train)
    accuracy = classifier.score(x_test.reshape(len(x_test), -1), y_test)
    return float(accuracy), time.time() - started


def run_training(name: str, work: Path) -> dict:
    options, target = RUNS[name]
    result = edgekit.train(output_dir=work / name, force=True, **options)
    reference, reference_seconds = logistic_regression_reference(options["dataset"])
    manifest = result.manifest
    return {
        "name": name, "model": options["model"], "dataset": options["dataset"],
        "command": manifest["command"], "epochs_run": manifest["training"]["epochs_run"],
        "seconds": manifest["runtime"]["seconds"], "accuracy": result.test_accuracy,
        "target": target, "reference_accuracy": reference,
        "reference_seconds": round(reference_seconds, 1),
        "parameters": manifest["model"]["parameters"]["total"],
    }


def run_main_job(work: Path) -> dict:
    """Time the README's main job exactly as typed after the install: edgekit pipeline --force."""
    executable = Path(sys.executable).parent / "edgekit"
    started = time.time()
    finished = subprocess.run([str(executable), "pipeline", "--force"], cwd=work,
                              capture_output=True, text=True)
    seconds = time.time() - started
    if finished.returncode != 0:
        raise SystemExit(f"the main job failed:\n{finished.stderr}")
    return {"name": "main_job", "seconds": round(seconds, 1), "budget": MAIN_JOB_BUDGET_SECONDS}


def render(results: list[dict], machine_info: dict, note: str = "") -> str:
    lines = [
        "## Training (issue 2)",
        "",
        f"Machine: {machine_line(machine_info)}. Script: `benchmarks/train_figures.py`. "
        f"Measured {time.strftime('%Y-%m-%d')}.",
        "Reference: scikit-learn logistic regression on the same split and preprocessing, same run.",
        "",
        "| run | model | dataset | epochs | train time | test accuracy | target | met | reference accuracy | error vs reference |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results:
        if row["name"] == "main_job":
            continue
        met = "yes" if row["accuracy"] >= row["target"] else "**no**"
        error_ratio = (1 - row["accuracy"]) / max(1e-9, 1 - row["reference_accuracy"])
        lines.append(
            f"| {row['name']} | {row['model']} ({row['parameters']:,} params) | {row['dataset']} | "
            f"{row['epochs_run']} | {row['seconds']:.0f} s | {row['accuracy'] * 100:.2f}% | "
            f">= {row['target'] * 100:.0f}% | {met} | {row['reference_accuracy'] * 100:.2f}% | "
            f"{error_ratio:.2f}x |"
        )
    for row in results:
        if row["name"] == "main_job":
            met = "yes" if row["seconds"] < row["budget"] else "**no**"
            lines += ["", f"README main job (`edgekit pipeline --force`, install not counted): "
                      f"{row['seconds']:.1f} s = {row['seconds'] / row['budget']:.2f}x of the "
                      f"{row['budget']:.0f} s budget; met: {met}."]
    if note:
        lines += ["", f"Note: {note}"]
    lines += ["", "Commands (the output folder aside): " + "; ".join(
        f"`{row['command'].split(' --output ')[0]}`" for row in results if "command" in row)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join([*RUNS, "main_job"]),
                        help="comma-separated runs: " + ", ".join([*RUNS, "main_job"]))
    parser.add_argument("--note", default="", help="a line about the conditions of this run")
    arguments = parser.parse_args()
    chosen = arguments.only.split(",")
    output = Path(__file__).resolve().parent / "out"
    # Trained models stay in benchmarks/out/models/ (git-ignored) for the compress, export and
    # bench figure scripts to reuse; the main job runs in a scratch folder.
    work = output / "models"
    work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="edgekit-main-job-"))
    previous = output / "train_figures.json"
    results = {row["name"]: row for row in json.loads(previous.read_text())["results"]} \
        if previous.exists() else {}
    try:
        for name in chosen:
            print(f"== {name}", flush=True)
            results[name] = run_main_job(scratch) if name == "main_job" else run_training(name, work)
            print(json.dumps(results[name]), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ordered = [results[name] for name in [*RUNS, "main_job"] if name in results]
    machine_info = machine()
    previous.write_text(json.dumps({"machine": machine_info, "results": ordered}, indent=2))
    path = replace_section("train", render(ordered, machine_info, arguments.note))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
