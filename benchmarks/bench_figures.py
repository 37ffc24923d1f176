"""Reproduce the benchmark harness's figures and rewrite their section of benchmarks/RESULTS.md.

Usage:
    .venv/bin/python benchmarks/bench_figures.py                      # cnn on fashion_mnist
    .venv/bin/python benchmarks/bench_figures.py --dataset digits --quick   # a 2-minute check

Targets (issue 5; same run, 1 thread, batch 1, cnn on Fashion-MNIST):
- int8 TFLite >= 2x faster than fp32 TFLite at p50;
- int8 ONNX Runtime >= 1.4x faster than fp32 ONNX Runtime at p50;
- the harness's p50 for a TFLite model within 10% of a bare ``invoke()`` loop timed in this
  process (the harness adds no overhead of its own);
- p50 spread across three repeated runs <= 10%.
The model is trained (or reused), compressed with ``--int8`` and exported (TFLite, ONNX fp32 and
int8), then benchmarked three times. ``--quick`` trains one epoch, measures shorter windows and
writes only benchmarks/out/, never RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import edgekit  # noqa: E402  (selects Keras 2 first)
from edgekit.manifest import machine  # noqa: E402
from results_file import machine_line, replace_section  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
REPEATS = 3
TARGETS = {"tflite_speedup": 2.0, "ort_speedup": 1.4, "harness_overhead": 0.10, "spread": 0.10}


def prepare_models(dataset: str, work: Path, epochs: int | None,
                   model_folder: Path | None = None) -> tuple[Path, Path]:
    """The fp32 model folder (with its export) and its --int8 compressed folder.

    ``model_folder``, a trained cnn folder, is copied (without its export/ and bench/) instead
    of training one here.
    """
    import shutil

    from edgekit.compress.run import compress
    from edgekit.export import export

    base = work / f"cnn-{dataset}"
    if model_folder is not None and not (base / "manifest.json").is_file():
        shutil.copytree(model_folder, base, ignore=shutil.ignore_patterns("export*", "bench"))
    if not (base / "manifest.json").is_file():
        options = {"epochs": epochs} if epochs else {}
        edgekit.train(model="cnn", dataset=dataset, output_dir=base, progress=False, **options)
    if not (base / "export" / "manifest.json").is_file():
        export(base, to="tflite,onnx", onnx_precisions=("fp32", "int8"))
    int8 = work / f"cnn-{dataset}-int8"
    if not (int8 / "manifest.json").is_file():
        compress(base, int8=True, output_dir=int8, progress=False)
    return base, int8


BARE_LOOP = """
import statistics, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, seconds, warmup_seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
interpreter = Interpreter(model_path=path, num_threads=1)
interpreter.allocate_tensors()
tensor = interpreter.get_input_details()[0]
interpreter.set_tensor(tensor["index"], np.zeros(tensor["shape"], dtype=tensor["dtype"]))
stop = time.perf_counter() + warmup_seconds
while time.perf_counter() < stop:
    interpreter.invoke()
timings = []
stop = time.perf_counter() + seconds
while time.perf_counter() < stop or len(timings) < 100:
    started = time.perf_counter()
    interpreter.invoke()
    timings.append(time.perf_counter() - started)
print(statistics.median(timings) * 1e3)
"""


def bare_invoke_p50(path: Path, seconds: float, warmup_seconds: float) -> float:
    """p50 (ms) of ``interpreter.invoke()`` in a plain loop, 1 thread, inputs set once.

    Timed in a fresh process of its own, like each harness worker, so neither side carries this
    script's TensorFlow (loaded to train) or its memory.
    """
    import subprocess

    finished = subprocess.run([sys.executable, "-c", BARE_LOOP, str(path), str(seconds),
                               str(warmup_seconds)], capture_output=True, text=True, check=True)
    return float(finished.stdout.strip().splitlines()[-1])


def run(dataset: str, quick: bool, model_folder: Path | None = None) -> dict:
    from edgekit.bench import bench

    work = OUT / "bench_models"
    base, int8 = prepare_models(dataset, work, epochs=1 if quick else None,
                                model_folder=model_folder)
    timing = {"min_runs": 50, "min_seconds": 0.3 if quick else 2.0,
              "warmup_seconds": 0.1 if quick else 1.0, "max_windows": 5}
    runs = []
    for repeat in range(REPEATS):
        print(f"== benchmark run {repeat + 1} of {REPEATS}", flush=True)
        result = bench(base, int8, output_dir=OUT / f"bench_{dataset}_run{repeat + 1}",
                       batches=(1,), threads=(1,), **timing)
        runs.append({row["name"]: row["metrics"] for row in result.artifacts})
    names = {"tflite_fp32": f"{base.name}/tflite-fp32", "tflite_int8": f"{int8.name}/tflite-int8",
             "onnx_fp32": f"{base.name}/onnx-fp32", "onnx_int8": f"{base.name}/onnx-int8",
             "keras": f"{base.name}/keras"}
    p50 = {key: [run_metrics[name]["p50_ms"] for run_metrics in runs] for key, name in names.items()}
    median = {key: statistics.median(values) for key, values in p50.items()}
    spread = {key: (max(values) - min(values)) / statistics.median(values)
              for key, values in p50.items()}
    bare = {"tflite_fp32": bare_invoke_p50(base / "export" / "model_fp32.tflite",
                                           timing["min_seconds"] * 2, timing["warmup_seconds"]),
            "tflite_int8": bare_invoke_p50(int8 / "model.tflite", timing["min_seconds"] * 2,
                                           timing["warmup_seconds"])}
    first = runs[0]
    return {
        "dataset": dataset, "quick": quick, "timing": timing,
        "p50_ms": p50, "median_p50_ms": median, "spread": spread,
        "tflite_speedup": median["tflite_fp32"] / median["tflite_int8"],
        "ort_speedup": median["onnx_fp32"] / median["onnx_int8"],
        "bare_invoke_p50_ms": bare,
        "harness_overhead": {key: p50[key][0] / bare[key] - 1 for key in bare},
        "accuracy": {key: first[name].get("accuracy") for key, name in names.items()},
        "bytes": {key: first[name].get("bytes") for key, name in names.items()},
        "commands": [f"edgekit bench {base} {int8} --batch 1 --threads 1"],
    }


def render(results: dict, machine_info: dict) -> str:
    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    median, spread = results["median_p50_ms"], results["spread"]
    lines = [
        f"## Benchmark harness (issue 5): cnn on {results['dataset']}",
        "",
        f"Machine: {machine_line(machine_info)}. Script: `benchmarks/bench_figures.py`. "
        f"Measured {time.strftime('%Y-%m-%d')}. 1 thread, batch 1, each artifact in its own "
        f"process; p50 is the median of {REPEATS} runs.",
        "",
        "| artifact | size | accuracy | p50 (median of 3) | p50 runs | spread |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key in ("keras", "tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8"):
        runs = ", ".join(f"{value:.4f}" for value in results["p50_ms"][key])
        lines.append(f"| {key} | {results['bytes'][key]:,} B | {results['accuracy'][key] * 100:.2f}% | "
                     f"{median[key]:.4f} ms | {runs} | {spread[key] * 100:.1f}% |")
    overhead = results["harness_overhead"]
    worst_spread = max(spread[key] for key in ("tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8"))
    lines += [
        "",
        "| figure | measured | target | met |",
        "| --- | --- | --- | --- |",
        f"| int8 TFLite speed-up over fp32 TFLite (p50) | {results['tflite_speedup']:.2f}x | >= 2x | "
        f"{met(results['tflite_speedup'] >= TARGETS['tflite_speedup'])} |",
        f"| int8 ONNX Runtime speed-up over fp32 (p50) | {results['ort_speedup']:.2f}x | >= 1.4x | "
        f"{met(results['ort_speedup'] >= TARGETS['ort_speedup'])} |",
    ]
    for key in ("tflite_fp32", "tflite_int8"):
        lines.append(f"| harness p50 vs bare invoke() loop (own process), {key} | "
                     f"{results['p50_ms'][key][0]:.4f} vs {results['bare_invoke_p50_ms'][key]:.4f} ms "
                     f"({overhead[key] * 100:+.1f}%) | within 10% | "
                     f"{met(abs(overhead[key]) <= TARGETS['harness_overhead'])} |")
    lines += [f"| p50 spread over {REPEATS} runs (worst artifact) | {worst_spread * 100:.1f}% | <= 10% | "
              f"{met(worst_spread <= TARGETS['spread'])} |",
              "", "Commands: " + "; ".join(f"`{command}`" for command in results["commands"])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist (default) or digits")
    parser.add_argument("--quick", action="store_true",
                        help="1 training epoch, short windows; writes benchmarks/out only")
    parser.add_argument("--model-folder", type=Path,
                        help="a trained cnn folder to reuse (else trains one)")
    arguments = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    results = run(arguments.dataset, arguments.quick, arguments.model_folder)
    machine_info = machine()
    suffix = "_quick" if arguments.quick else ""
    path = OUT / f"bench_figures_{arguments.dataset}{suffix}.json"
    path.write_text(json.dumps({"machine": machine_info, "results": results}, indent=2))
    text = render(results, machine_info)
    print(text)
    if arguments.quick:
        (OUT / f"bench_figures_{arguments.dataset}_quick.md").write_text(text + "\n")
        print(f"wrote {path} (quick: RESULTS.md left unchanged)")
    else:
        print(f"wrote {path} and {replace_section(f'bench-{arguments.dataset}', text)}")


if __name__ == "__main__":
    main()
