"""Reproduce the export stage's figures and rewrite their section of benchmarks/RESULTS.md.

Usage:
    .venv/bin/python benchmarks/export_figures.py                       # cnn on fashion_mnist (~4 min on 2 cores)
    .venv/bin/python benchmarks/export_figures.py --model-folder models/cnn-fashion_mnist
    .venv/bin/python benchmarks/export_figures.py --dataset digits --quick   # a check; RESULTS.md untouched

Targets (issue 4, cnn on Fashion-MNIST): every artifact's size, top-1 agreement and max abs
diff vs the Keras model on the whole test split; fp32 TFLite and ONNX at 100% agreement and
max abs diff <= 1e-4; fp16 >= 99.9%; int8 TFLite and ONNX >= 99% agreement. TFLite int8 and
ONNX int8 are calibrated on the same samples (``edgekit.data.calibration``), in the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import edgekit  # noqa: E402  (selects Keras 2 first)
from edgekit.manifest import machine  # noqa: E402
from results_file import machine_line, replace_section  # noqa: E402

# artifact -> (minimum top-1 agreement, maximum max abs diff or None)
TARGETS = {
    "tflite-fp32": (1.0, 1e-4), "onnx-fp32": (1.0, 1e-4),
    "tflite-fp16": (0.999, None), "onnx-fp16": (0.999, None),
    "tflite-int8": (0.99, None), "onnx-int8": (0.99, None),
}
FULL_EPOCHS = 5
QUICK_EPOCHS = 3


def train_model(dataset: str, epochs: int, work: Path) -> Path:
    folder = work / f"cnn-{dataset}"
    edgekit.train(model="cnn", dataset=dataset, epochs=epochs, output_dir=folder, force=True)
    return folder


def export_model(folder: Path, work: Path):
    """Every precision of TFLite and ONNX, plus Triton and the mobile bundle, in one run.

    An artifact below export's own thresholds ends the export with FidelityError after every
    artifact was measured and written; its figures are reported here all the same.
    """
    from edgekit.export import FidelityError, export

    options = dict(to="tflite,onnx,triton,mobile", tflite_precisions="fp32,fp16,int8",
                   onnx_precisions="fp32,fp16,int8", triton_repository=str(work / "triton_repo"))
    started = time.time()
    try:
        result = export(folder, output_dir=work / "export", force=True, **options)
    except FidelityError as error:
        result = error.result
    return result, time.time() - started


def render(result, seconds: float, machine_info: dict, model_manifest: dict) -> str:
    manifest = result.manifest
    dataset = manifest["dataset"]
    lines = [
        "## Export (issue 4)",
        "",
        f"Machine: {machine_line(machine_info)}. Script: `benchmarks/export_figures.py`. "
        f"Measured {time.strftime('%Y-%m-%d')}.",
        f"Model: `cnn` on {dataset['name']} ({manifest['model']['parameters']['total']:,} params, "
        f"Keras test accuracy {model_manifest['evaluation']['test']['accuracy'] * 100:.2f}%). "
        f"Fidelity: every artifact vs the Keras model on all {manifest['fidelity']['samples']:,} "
        f"test samples, same run; int8 calibrated on {manifest['fidelity']['calibration']['samples']} "
        "training samples, the same set for TFLite and ONNX. Export took "
        f"{seconds:.0f} s.",
        "",
        "| artifact | size | size vs fp32 | top-1 agreement | max abs diff | mean abs diff | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    artifacts = manifest["artifacts"]
    for name, entry in artifacts.items():
        fidelity = entry.get("fidelity")
        if not fidelity:
            lines.append(f"| {name} | | | | | | | {entry.get('status')}: {entry.get('reason', '')} |")
            continue
        reference = artifacts.get(f"{entry['format']}-fp32") or artifacts.get("onnx-fp32")
        if entry["format"] == "mobile":
            reference = artifacts.get("tflite-fp32")
        ratio = f"{entry['bytes'] / reference['bytes']:.2f}x" if reference else ""
        target, met = _target(name, fidelity)
        lines.append(
            f"| {name} | {entry['bytes']:,} B | {ratio} | {fidelity['top1_agreement'] * 100:.2f}% | "
            f"{fidelity['max_abs_diff']:.2e} | {fidelity['mean_abs_diff']:.2e} | {target} | {met} |"
        )
    lines += ["", "`triton` is the onnx-fp32 file in the repository; `mobile` is the zipped bundle "
              "(its .tflite is tflite-fp32). Sizes of the .onnx / .tflite files are raw bytes.",
              "", f"Command: `{manifest['command']}`"]
    return "\n".join(lines)


def _target(name: str, fidelity: dict) -> tuple[str, str]:
    if name not in TARGETS:
        return "", ""
    agreement, max_diff = TARGETS[name]
    target = f">= {agreement * 100:g}%" + (f", <= {max_diff:.0e}" if max_diff else "")
    met = fidelity["top1_agreement"] >= agreement and (
        max_diff is None or fidelity["max_abs_diff"] <= max_diff)
    return target, "yes" if met else "**no**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--model-folder", type=Path,
                        help="export this trained cnn model folder instead of training one")
    parser.add_argument("--epochs", type=int, help=f"training epochs [default {FULL_EPOCHS}]")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_EPOCHS} epochs; print the section, leave RESULTS.md unchanged")
    arguments = parser.parse_args()
    output = Path(__file__).resolve().parent / "out"
    output.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="edgekit-export-bench-", dir=output))
    folder = arguments.model_folder
    if folder is None:
        epochs = arguments.epochs or (QUICK_EPOCHS if arguments.quick else FULL_EPOCHS)
        print(f"== training cnn on {arguments.dataset} ({epochs} epochs)", flush=True)
        folder = train_model(arguments.dataset, epochs, work)
    print(f"== exporting {folder}", flush=True)
    result, seconds = export_model(folder, work)
    print(result.table(), flush=True)
    machine_info = machine()
    model_manifest = json.loads((Path(folder) / "manifest.json").read_text())
    section = render(result, seconds, machine_info, model_manifest)
    (output / "export_figures.json").write_text(json.dumps(
        {"machine": machine_info, "seconds": seconds, "manifest": result.manifest}, indent=2,
        default=str))
    shutil.rmtree(work, ignore_errors=True)
    if arguments.quick:
        print("\n" + section + "\n\n(--quick: benchmarks/RESULTS.md left unchanged)")
        return
    print(f"wrote {replace_section('export', section)}")


if __name__ == "__main__":
    main()
