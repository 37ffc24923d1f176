"""Reproduce the Triton serving figures (issue 6) and rewrite their section of benchmarks/RESULTS.md.

Usage:
    .venv/bin/python benchmarks/triton_figures.py --model-folder models/cnn-fashion_mnist
    .venv/bin/python benchmarks/triton_figures.py                       # trains cnn 3 epochs first
    .venv/bin/python benchmarks/triton_figures.py --dataset digits --quick   # a check; no RESULTS.md

Targets (cnn on Fashion-MNIST, one run):
- HTTP p50 overhead over in-process ONNX Runtime <= 1 ms at concurrency 1 (batch 1);
- throughput at concurrency 16 with dynamic batching >= 3x that at concurrency 1;
- zero errors (and zero wrong answers) across the whole sweep.
Also measured in the same run: the same model served without dynamic batching
(``<model>-nobatch``, :func:`edgekit.formats.triton.add_unbatched_variant`), and gRPC beside HTTP.

The model folder is exported (ONNX fp32 and a Triton repository) into a temporary folder, never
into the model folder; the repository is served by the bundled Triton on free loopback ports and
measured with one ``edgekit bench`` call: the ONNX file in process (the reference), then every
served variant at each concurrency level. ``--quick`` uses shorter windows and fewer levels and
writes only benchmarks/out/, never RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import edgekit  # noqa: E402  (selects Keras 2 first)
from edgekit.manifest import machine  # noqa: E402
from results_file import machine_line, replace_section  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
TARGETS = {"http_overhead_ms": 1.0, "batching_speedup": 3.0}
FULL = {"concurrency": (1, 2, 4, 8, 16), "warmup_runs": 50, "warmup_seconds": 1.0,
        "min_runs": 200, "min_seconds": 2.0, "max_windows": 5}
QUICK = {"concurrency": (1, 4, 16), "warmup_runs": 10, "warmup_seconds": 0.2,
         "min_runs": 50, "min_seconds": 0.4, "max_windows": 4}


def prepare_model(dataset: str, model_folder: str | None, epochs: int) -> Path:
    """The given model folder, or cnn trained on ``dataset`` in benchmarks/out (reused)."""
    if model_folder:
        folder = Path(model_folder)
        if not (folder / "manifest.json").is_file():
            sys.exit(f"--model-folder {folder} holds no manifest.json; expected a folder "
                     "`edgekit train` wrote (e.g. models/cnn-fashion_mnist), finished training")
        return folder
    folder = OUT / "triton_models" / f"cnn-{dataset}"
    if not (folder / "manifest.json").is_file():
        edgekit.train(model="cnn", dataset=dataset, epochs=epochs, output_dir=folder,
                      progress=False)
    return folder


def free_ports(count: int = 3) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    for probe in probes:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in probes]
    for probe in probes:
        probe.close()
    return ports


def run(dataset: str, model_folder: str | None, quick: bool) -> dict:
    from edgekit.bench import bench
    from edgekit.formats.triton import add_unbatched_variant
    from edgekit.export import export
    from edgekit.serve import serve

    settings = QUICK if quick else FULL
    folder = prepare_model(dataset, model_folder, epochs=1 if quick else 3)
    work = Path(tempfile.mkdtemp(prefix="edgekit-triton-figures-"))
    try:
        name = folder.name
        export(folder, output_dir=work / "export", to="triton",
               triton_repository=work / "triton_repo", triton_model_name=name)
        add_unbatched_variant(work / "triton_repo", name)
        http, grpc, metrics = free_ports()
        server = serve(work / "triton_repo", http_port=http, grpc_port=grpc, metrics_port=metrics,
                       log_file=str(work / "server.log"), ready_timeout=120)
        try:
            started = time.time()
            result = bench(work / "export",
                           output_dir=OUT / f"triton_{dataset}{'_quick' if quick else ''}",
                           include=("onnx-fp32", "triton-http", "triton-http-nobatch",
                                    "triton-grpc", "triton-grpc-nobatch"),
                           target=f"triton://127.0.0.1:{http}#{name}", grpc_port=grpc,
                           protocols=("http", "grpc"), compare_batching=True, batches=(1,),
                           threads=(1,), **settings)
            seconds = time.time() - started
            retried = server.retried_after
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return summarize(result.report, dataset, folder, quick, settings, seconds, retried)


def summarize(report: dict, dataset: str, folder: Path, quick: bool, settings: dict,
              seconds: float, retried: str | None) -> dict:
    rows = {row["name"]: row for row in report["artifacts"]}
    levels = {name: {m["concurrency"]: m for m in row["runs"][0]["measurements"]}
              for name, row in rows.items() if name.startswith("triton-")}
    onnx_p50 = rows["onnx-fp32"]["metrics"]["p50_ms"]
    top = max(settings["concurrency"])

    def figure(name: str, concurrency: int, key: str):
        measurement = levels[name][concurrency]
        return measurement["latency_ms"][key] if key.startswith("p") else measurement[key]

    http_p50 = figure("triton-http", 1, "p50")
    errors = sum(m["errors"] + m["wrong_answers"] for by_level in levels.values()
                 for m in by_level.values())
    return {
        "dataset": dataset, "model_folder": str(folder), "quick": quick, "settings": settings,
        "seconds": round(seconds, 1), "server_retried_after": retried,
        "instances": rows["triton-http"]["runs"][0]["describe"].get("instances"),
        "onnx_p50_ms": onnx_p50, "http_p50_ms": http_p50,
        "http_overhead_ms": http_p50 - onnx_p50, "http_vs_onnx": http_p50 / onnx_p50,
        "grpc_p50_ms": figure("triton-grpc", 1, "p50"),
        "throughput": {name: {c: m["throughput_per_s"] for c, m in by_level.items()}
                       for name, by_level in levels.items()},
        "p50_ms": {name: {c: m["latency_ms"]["p50"] for c, m in by_level.items()}
                   for name, by_level in levels.items()},
        "p99_ms": {name: {c: m["latency_ms"]["p99"] for c, m in by_level.items()}
                   for name, by_level in levels.items()},
        "mean_batch": {name: {c: (m.get("server") or {}).get("mean_batch")
                              for c, m in by_level.items()} for name, by_level in levels.items()},
        "stable": {name: {c: m["stability"]["stable"] for c, m in by_level.items()}
                   for name, by_level in levels.items()},
        "top_concurrency": top,
        "batching_speedup": figure("triton-http", top, "throughput_per_s")
        / figure("triton-http", 1, "throughput_per_s"),
        "batching_on_vs_off": figure("triton-http", top, "throughput_per_s")
        / figure("triton-http-nobatch", top, "throughput_per_s"),
        "errors": errors,
        "fidelity": {name: rows[name]["fidelity"] for name in levels},
        "accuracy": {name: row["accuracy"] for name, row in rows.items()},
        "machine": report["machine"], "versions": report["versions"],
        "command": f"edgekit bench EXPORT --only onnx-fp32,triton-... --target "
                   f"triton://127.0.0.1:HTTP#{folder.name} --grpc-port GRPC --protocol http,grpc "
                   f"--concurrency {','.join(map(str, settings['concurrency']))} --compare-batching",
    }


def render(results: dict, machine_info: dict) -> str:
    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    top = results["top_concurrency"]
    levels = sorted(next(iter(results["throughput"].values())))
    lines = [
        f"## Triton serving (issue 6): cnn on {results['dataset']}",
        "",
        f"Machine: {machine_line(machine_info)}. Script: `benchmarks/triton_figures.py`. "
        f"Measured {time.strftime('%Y-%m-%d')}, one run: the bundled Triton 2.51 (Python backend "
        f"running the ONNX file with ONNX Runtime, {results['instances']} instance(s)), clients in one Python process on "
        "the same machine, batch 1. The reference, in-process ONNX Runtime (1 thread), is "
        "measured in the same run.",
        "",
        "| figure | measured | reference (same run) | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| HTTP p50 overhead over in-process ONNX Runtime, concurrency 1 | "
        f"{results['http_overhead_ms']:.3f} ms (HTTP p50 {results['http_p50_ms']:.3f} ms) | "
        f"ORT p50 {results['onnx_p50_ms']:.4f} ms | {results['http_vs_onnx']:.1f}x | <= 1 ms | "
        f"{met(results['http_overhead_ms'] <= TARGETS['http_overhead_ms'])} |",
        f"| HTTP throughput at concurrency {top}, dynamic batching | "
        f"{results['throughput']['triton-http'][top]:,.0f}/s | concurrency 1: "
        f"{results['throughput']['triton-http'][1]:,.0f}/s | {results['batching_speedup']:.2f}x | "
        f">= 3x | {met(results['batching_speedup'] >= TARGETS['batching_speedup'])} |",
        f"| errors and wrong answers across the sweep | {results['errors']} | - | - | 0 | "
        f"{met(results['errors'] == 0)} |",
        f"| dynamic batching on vs off, HTTP, concurrency {top} | "
        f"{results['throughput']['triton-http'][top]:,.0f}/s | without: "
        f"{results['throughput']['triton-http-nobatch'][top]:,.0f}/s | "
        f"{results['batching_on_vs_off']:.2f}x | - | - |",
        "",
        "| served model | " + " | ".join(f"c{c} samples/s (p50 / p99 ms, batch)" for c in levels)
        + " |",
        "| --- |" + " --- |" * len(levels),
    ]
    for name in ("triton-http", "triton-http-nobatch", "triton-grpc", "triton-grpc-nobatch"):
        cells = []
        for c in levels:
            batch = results["mean_batch"][name][c]
            stable = "" if results["stable"][name][c] else " (unstable)"
            cells.append(f"{results['throughput'][name][c]:,.0f} ({results['p50_ms'][name][c]:.2f}"
                         f" / {results['p99_ms'][name][c]:.2f}, "
                         f"{'-' if batch is None else f'{batch:.2f}'}){stable}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    fidelity = results["fidelity"]["triton-http"]
    lines += ["", f"Served answers vs the ONNX file in process ({fidelity['samples']} test samples): "
              f"top-1 agreement {fidelity['agreement']:.2%}, max abs diff "
              f"{fidelity['max_abs_diff']:.1e}. Batch: Triton's mean executed batch over the "
              "measured windows.",
              "", f"Command: `{results['command']}`"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist (default) or digits")
    parser.add_argument("--model-folder", help="a trained cnn folder to reuse (else trains one)")
    parser.add_argument("--quick", action="store_true",
                        help="short windows, concurrency 1,4,16; writes benchmarks/out only")
    arguments = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    results = run(arguments.dataset, arguments.model_folder, arguments.quick)
    machine_info = machine()
    suffix = "_quick" if arguments.quick else ""
    path = OUT / f"triton_figures_{arguments.dataset}{suffix}.json"
    path.write_text(json.dumps({"machine": machine_info, "results": results}, indent=2,
                               default=str))
    text = render(results, machine_info)
    print(text)
    if arguments.quick:
        (OUT / f"triton_figures_{arguments.dataset}_quick.md").write_text(text + "\n")
        print(f"wrote {path} (quick: RESULTS.md left unchanged)")
    else:
        print(f"wrote {path} and {replace_section('triton', text)}")


if __name__ == "__main__":
    main()
