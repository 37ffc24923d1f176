"""Fidelity: does an artifact compute what its Keras model computes, on real samples?

Measured per artifact against the Keras model's outputs on the same model-ready samples:
top-1 agreement (share of samples whose arg-max class is the same), and the max and mean
absolute difference of the outputs (an int8 artifact's outputs dequantized first). Each
precision is held to its thresholds (:data:`edgekit.export.config.THRESHOLD_CLASS`). The
artifact's outputs come from the registered runtime that runs its file (:func:`outputs_of`).
"""

from __future__ import annotations

import os

import numpy as np

from edgekit.export.config import THRESHOLD_CLASS, ExportConfig
from edgekit.runtimes import runtime_for


def outputs_of(path: str | os.PathLike, x: np.ndarray, **options) -> np.ndarray:
    """The outputs of the artifact at ``path`` on model-ready samples ``x``, as float32.

    The runtime is the registered one that runs the file (:func:`edgekit.runtimes.runtime_for`:
    LiteRT for a .tflite, ONNX Runtime for an .onnx, ...), given the ``options`` it declares.

    Raises:
        ModelError: when the runtime cannot load the file.
        OptionError: when no registered runtime runs it.
    """
    with runtime_for(path).open(path, options) as runtime:
        return np.asarray(runtime.run(x), dtype=np.float32)


def measure(reference: np.ndarray, outputs: np.ndarray) -> dict:
    """``{"samples", "top1_agreement", "max_abs_diff", "mean_abs_diff"}`` of two output arrays."""
    reference = np.asarray(reference, dtype=np.float64)
    outputs = np.asarray(outputs, dtype=np.float64)
    if reference.shape != outputs.shape:
        raise ValueError(f"outputs of shape {outputs.shape} cannot be compared with the Keras "
                         f"model's {reference.shape}")
    difference = np.abs(reference - outputs)
    return {
        "samples": int(len(reference)),
        "top1_agreement": float((reference.argmax(axis=1) == outputs.argmax(axis=1)).mean()),
        "max_abs_diff": float(difference.max()) if difference.size else 0.0,
        "mean_abs_diff": float(difference.mean()) if difference.size else 0.0,
    }


def thresholds_for(precision: str, config: ExportConfig) -> dict:
    """The thresholds an artifact of ``precision`` must meet under ``config``."""
    kind = THRESHOLD_CLASS.get(precision, "int8")
    found = {"class": kind, "min_top1_agreement": getattr(config, f"{kind}_min_agreement")}
    if kind == "fp32":
        found["max_abs_diff"] = config.fp32_max_abs_diff
    return found


def judge(measured: dict, thresholds: dict) -> list[str]:
    """The thresholds ``measured`` breaks, as short sentences (empty when it passes)."""
    failures = []
    if measured["top1_agreement"] < thresholds["min_top1_agreement"]:
        failures.append(f"top-1 agreement {measured['top1_agreement'] * 100:.2f}% < "
                        f"{thresholds['min_top1_agreement'] * 100:.2f}%")
    limit = thresholds.get("max_abs_diff")
    if limit is not None and measured["max_abs_diff"] > limit:
        failures.append(f"max abs diff {measured['max_abs_diff']:.2e} > {limit:.0e}")
    return failures


def check(reference: np.ndarray, outputs: np.ndarray, precision: str, config: ExportConfig) -> dict:
    """Measure and judge one artifact; the dict the manifest records as its ``fidelity``."""
    measured = measure(reference, outputs)
    thresholds = thresholds_for(precision, config)
    failures = judge(measured, thresholds)
    return {**measured, "thresholds": thresholds, "passed": not failures, "failures": failures}


def format_table(artifacts: list[dict]) -> str:
    """The fidelity table ``edgekit export`` prints: one row per artifact."""
    header = (f"{'artifact':<14} {'file':<34} {'size':>10} {'top-1 agree':>11} "
              f"{'max |diff|':>10} {'mean |diff|':>11}  result")
    lines = [header, "-" * len(header)]
    for artifact in artifacts:
        fidelity = artifact.get("fidelity")
        size = _size(artifact.get("bytes"))
        where = _where(artifact)
        if not fidelity:
            reason = f": {artifact['reason']}" if artifact.get("reason") else ""
            lines.append(f"{artifact['name']:<14} {where:<34} {size:>10} "
                         f"{'':>11} {'':>10} {'':>11}  {artifact.get('status', '')}{reason}")
            continue
        result = "ok" if fidelity["passed"] else "FAILED: " + "; ".join(fidelity["failures"])
        lines.append(
            f"{artifact['name']:<14} {where:<34} {size:>10} "
            f"{fidelity['top1_agreement'] * 100:>10.2f}% {fidelity['max_abs_diff']:>10.2e} "
            f"{fidelity['mean_abs_diff']:>11.2e}  {result}"
        )
    return "\n".join(lines)


def _where(artifact: dict) -> str:
    if artifact.get("format") == "triton" and artifact.get("version"):
        return f"{artifact['model_name']}/{artifact['version']}/model.onnx"
    return artifact.get("file") or ""


def _size(count) -> str:
    if count is None:
        return ""
    for unit in ("B", "KiB", "MiB"):
        if count < 1024 or unit == "MiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return ""
