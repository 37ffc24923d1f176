"""Shared by the benchmark scripts: the machine header and rewriting one section of RESULTS.md."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# edgekit — measured figures\n\nEvery figure below was produced by a script in `benchmarks/`; rerun it to refresh its section.\n"


REPO = RESULTS.parents[1]


def relative(text) -> str:
    """``text`` with this checkout's absolute path taken out."""
    return str(text).replace(str(REPO) + "/", "").replace(str(REPO), ".")


def train_parent(model: str, spec: str, epochs: int, folder: Path, shown: str) -> tuple[Path, dict]:
    """Train a parent with ``edgekit.train`` into ``folder``; ``(folder, summary)``."""
    import time

    import edgekit

    started = time.time()
    result = edgekit.train(model=model, dataset=spec, epochs=epochs, output_dir=folder,
                           force=True, progress=False)
    print(f"trained {model} on {shown}: {result.test_accuracy * 100:.2f}% in "
          f"{time.time() - started:.0f} s", flush=True)
    return folder, {"reused": False, **train_summary(result.manifest)}


def finished_train(folder: Path, model: str, spec: str) -> dict | None:
    """The summary of a finished train run of ``model`` on ``spec`` in ``folder``, else None."""
    from edgekit.manifest import read_manifest

    if not (folder / "manifest.json").is_file():
        return None
    manifest = read_manifest(folder)
    config = manifest.get("config", {})
    if (manifest.get("stage") == "train" and manifest.get("status") == "complete"
            and config.get("model") == model and config.get("dataset") == spec):
        return train_summary(manifest)
    return None


def train_summary(manifest: dict) -> dict:
    return {"command": relative(manifest["command"]),
            "epochs_run": manifest["training"]["epochs_run"],
            "seconds": (manifest.get("runtime") or {}).get("seconds"),
            "test_accuracy": manifest["evaluation"]["test"]["accuracy"],
            "parameters": manifest["model"]["parameters"]["total"]}


def machine_line(machine: dict) -> str:
    flags = " ".join(machine["cpu_flags"]) or "none of note"
    return f"{machine['cpu']}, {machine['cores']} cores, flags: {flags}, {machine['os']}"


def replace_section(name: str, body: str) -> Path:
    """Replace (or append) the section between ``<!-- name -->`` markers in RESULTS.md."""
    # Commands are written relative to the repo root: no path of the machine that ran them.
    body = body.replace(str(RESULTS.parents[1]) + "/", "")
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    return RESULTS


def export_fidelity(folder, samples: int | None = None) -> dict:
    """``edgekit.export(folder, to="tflite,onnx")`` and each artifact's fidelity, for a figure table.

    A fidelity gate that breaks is recorded (``error``), not raised: the folder is written all
    the same and the figures say which gate failed.
    """
    import json
    import time

    import edgekit
    from edgekit.export import FidelityError

    options = {"samples": samples} if samples else {}
    started = time.time()
    error = None
    try:
        result = edgekit.export(folder, to="tflite,onnx", force=True, **options)
    except FidelityError as failure:  # the folder is written all the same; record the failure
        result, error = failure.result, str(failure)
    artifacts = {}
    for name, entry in result.artifacts.items():
        fidelity = entry.get("fidelity") or {}
        thresholds = fidelity.get("thresholds") or {}
        artifacts[name] = {
            "precision": entry.get("precision"), "status": entry.get("status"),
            "reason": entry.get("reason"), "file": entry.get("file"),
            "agreement": fidelity.get("top1_agreement"),
            "max_abs_diff": fidelity.get("max_abs_diff"),
            "mean_abs_diff": fidelity.get("mean_abs_diff"), "samples": fidelity.get("samples"),
            "min_agreement": thresholds.get("min_top1_agreement"),
            "max_abs_limit": thresholds.get("max_abs_diff"),
            "failures": fidelity.get("failures", []),
        }
        print(json.dumps({"export": name, **{key: artifacts[name][key] for key in
                                             ("status", "agreement", "max_abs_diff")}}),
              flush=True)
    return {"folder": str(result.output_dir), "command": result.manifest.get("command") or "",
            "seconds": round(time.time() - started, 1), "error": error, "artifacts": artifacts}
