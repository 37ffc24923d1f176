"""The winner as a normal model folder: made by ``edgekit compress``, taken by export and bench.

The folder is what ``edgekit compress`` writes with the winning options (model.keras,
model.tflite, a manifest in the compress schema with lineage to the parent and the before /
after comparison on the test split), plus ``optimize/`` (candidates.json, pareto.png,
sensitivity.png). Two winners need more than compress can be asked for today, and the folder
says so in its manifest's ``optimize`` section:

- **fp32** (no technique): compress refuses a run without a technique, so it runs with
  ``dynamic`` and its model.tflite is replaced by the fp32 conversion (config flags, recipe,
  ``stages.ptq``, the result's row and its test report are rewritten to match);
- **int8 with layers in float** (the fallback): compress runs with ``int8`` and its
  model.tflite is replaced by the fallback model, measured again on the test split; the manifest
  records the float layers in ``config.float_layers`` (what a ``--float-layers`` option of
  compress would take) and in ``stages.ptq``.

An ONNX Runtime winner gets the folder of its TFLite counterpart (same options), the very .onnx
file the search measured in ``optimize/``, and an ``export/`` written by ``edgekit export --to
onnx`` after the folder is in place, so bench measures the ONNX files beside the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit import manifest as manifest_io
from edgekit import outputs
from edgekit.compress import compress
from edgekit.compress.measure import tflite_row
from edgekit.compress.run import MAX_TFLITE_LOSS, MIN_TFLITE_AGREEMENT, ConversionCheckError
from edgekit.config import shell_command
from edgekit.errors import EdgekitError
from edgekit.export import export
from edgekit.formats.tflite import TFLITE_MODES, convert_to_tflite
from edgekit.optimize.candidates import option_flags
from edgekit.optimize.search import Outcome
from edgekit.optimize.source import Source, probabilities
from edgekit.runtimes.litert import LiteRTModel
from edgekit.runtimes.onnxruntime import OnnxRuntimeModel
from edgekit.train.evaluate import classification_report

OPTIMIZE_FOLDER = "optimize"
TFLITE_FILE = "model.tflite"
# The compress option a fallback winner needs (not in compress yet): the Keras layers whose ops
# the int8 conversion keeps in float (QuantizationDebugOptions(denylisted_nodes=...)).
FLOAT_LAYERS_OPTION = "float_layers"


@dataclass
class Winner:
    """The winner folder as built in staging: its manifest and what was measured on it."""

    staging: Path
    manifest: dict
    accuracy_val: float
    accuracy_test: float
    command: str
    onnx_file: Path | None = None
    onnx_precision: str | None = None
    onnx_fallback: bool = False


def build_winner(source: Source, config, chosen: Outcome, staging: Path, final: Path,
                 fallback_record: dict | None, workbench, tflite_fallback=None) -> Winner:
    """Write the winner's compress folder into ``staging`` (published by the caller).

    Args:
        tflite_fallback: ``(outcome, record)`` of the TFLite fallback when the search measured
            one: an ONNX winner whose TFLite counterpart fails compress's own check (full int8
            ruined) gets that model.tflite instead (else the fp32 one).

    Raises:
        EdgekitError: when compress refuses or fails (its own message).
    """
    candidate = chosen.candidate
    options = dict(candidate.options)
    # (bytes, precision, float layers, float nodes) to put in place of compress's model.tflite
    replacement = None
    if candidate.format == "tflite" and candidate.fallback:
        replacement = (chosen.artifact.path.read_bytes(), "int8",
                       list((fallback_record or {}).get("float_layers") or []),
                       (fallback_record or {}).get("float_nodes"))
    if candidate.precision == "fp32":
        options = {"dynamic": True}  # compress needs a technique; its .tflite is replaced below
        replacement = (convert_to_tflite(source.model, "fp32"), "fp32", None, None)
    outputs.discard(staging)
    given = source.given if source.is_path else source.model
    extra = {} if source.is_path and source.folder is not None else {"dataset": (
        source.spec if source.is_path else source.dataset)}
    try:
        result = compress(given, output_dir=staging, progress=False,
                          **source.compress_options(config, *_uses(candidate)), **extra, **options)
    except ConversionCheckError as error:
        # Full int8 of a model whose fallback won fails compress's own check (its folder is
        # written all the same); its model.tflite is replaced and checked again below.
        if replacement is None and candidate.format != "onnx":
            raise
        result = error.result
        if replacement is None:
            twin, record = tflite_fallback or (None, None)
            replacement = ((twin.artifact.path.read_bytes(), "int8",
                            list((record or {}).get("float_layers") or []),
                            (record or {}).get("float_nodes"))
                           if twin is not None and twin.artifact is not None
                           else (convert_to_tflite(source.model, "fp32"), "fp32", None, None))
    manifest = result.manifest
    float_layers = list((fallback_record or {}).get("float_layers") or [])
    if replacement is not None:
        _replace_tflite(staging, manifest, source, *replacement)
    onnx_file = None
    if candidate.format == "onnx":
        folder = staging / OPTIMIZE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        suffix = "_float_nodes" if candidate.fallback else ""
        onnx_file = folder / f"model_{candidate.precision}{suffix}.onnx"
        onnx_file.write_bytes(chosen.artifact.path.read_bytes())
        accuracy_test = _onnx_accuracy(onnx_file, source, "test")
        accuracy_val = _onnx_accuracy(onnx_file, source, "val")
    else:
        accuracy_test = float(manifest["comparison"]["rows"][-1]["accuracy"])
        accuracy_val = workbench.tflite_accuracy((staging / TFLITE_FILE).read_bytes(),
                                                 "the winner's model.tflite")
    command = reproducing_command(source, config, candidate, final, float_layers,
                                  manifest["config"].get(FLOAT_LAYERS_OPTION) or [])
    manifest["name"] = final.name
    manifest["command"] = command
    return Winner(staging=staging, manifest=manifest, accuracy_val=accuracy_val,
                  accuracy_test=accuracy_test, command=command, onnx_file=onnx_file,
                  onnx_precision=candidate.precision if candidate.format == "onnx" else None,
                  onnx_fallback=candidate.format == "onnx" and candidate.fallback)


def finish_manifest(winner: Winner, section: dict) -> None:
    """Add the ``optimize`` section and write the manifest (every file's sha256 included)."""
    winner.manifest["optimize"] = section
    manifest_io.write_manifest(winner.staging, winner.manifest)


def export_onnx(final: Path, precision: str, fallback: bool) -> str | None:
    """``edgekit export --to onnx`` of the published winner; a warning line if it fails.

    A fallback winner's int8 file is not export's to write yet (it has no nodes_to_exclude
    option): export writes fp32 beside it, the measured file stays in optimize/.
    """
    precisions = ("fp32",) if fallback else tuple(dict.fromkeys(("fp32", precision)))
    try:
        export(final, to=("onnx",), onnx_precisions=precisions)
    except EdgekitError as error:
        return (f"edgekit export --to onnx of {final} did not pass: {error}; the measured file "
                f"is in {final / OPTIMIZE_FOLDER}")
    return None


def reproducing_command(source: Source, config, candidate, final: Path, float_layers: list[str],
                        tflite_float_layers: list[str]) -> str | None:
    """The commands that make this folder (None for a live model).

    fp32 has no compress flag; a fallback needs ``--float-layers`` (compress) or
    ``--onnx-float-layers`` (export), options neither has yet: the command names them.
    """
    if not source.is_path:
        return None
    flags = option_flags(candidate.options)
    if tflite_float_layers:
        flags += ["--" + FLOAT_LAYERS_OPTION.replace("_", "-"), ",".join(tflite_float_layers)]
    extra = source.compress_options(config, *_uses(candidate))
    if source.folder is None:
        extra["dataset"] = source.spec
    args = ["compress", str(source.given), *flags, *option_flags(extra), "--output", str(final)]
    command = shell_command("edgekit", args)
    if candidate.format == "onnx":
        export_args = ["export", str(final), "--to", "onnx", "--onnx-precisions",
                       candidate.precision]
        if candidate.fallback:
            export_args += ["--onnx-float-layers", ",".join(float_layers)]
        command += " && " + shell_command("edgekit", export_args)
    return command


def _uses(candidate) -> tuple[bool, bool]:
    """(calibrates, fine-tunes): which of the search's settings the candidate's run uses."""
    return candidate.precision in ("int8", "int16x8"), candidate.stage == "fine-tuning"


def _onnx_accuracy(path: Path, source: Source, split: str) -> float:
    x, y = source.dataset.preprocessed(split)
    if not len(y):
        return 0.0
    scores = probabilities(OnnxRuntimeModel.load(path).run(x), source.from_logits)
    return float((np.asarray(scores).argmax(axis=1) == y).mean())


def _replace_tflite(folder: Path, manifest: dict, source: Source, content: bytes,
                    precision: str, float_layers: list[str] | None, float_nodes) -> None:
    """Put ``content`` in place of compress's model.tflite and measure it as compress does."""
    (folder / TFLITE_FILE).write_bytes(content)
    x_test, y_test = source.test()
    runtime = LiteRTModel(content, source="the winner's model.tflite")
    scores = probabilities(runtime.run(x_test), source.from_logits)
    keras_scores = probabilities(source.model.predict(x_test, batch_size=256, verbose=0),
                                 source.from_logits)
    rows = manifest["comparison"]["rows"]
    rows[-1] = tflite_row("compressed tflite", precision, content, scores, y_test,
                          rows[0]["accuracy"], (rows[1]["bytes"], rows[1]["gzip_bytes"]),
                          runtime.describe())
    agreement = float((scores.argmax(1) == keras_scores.argmax(1)).mean()) if len(y_test) else 1.0
    manifest["comparison"]["tflite_top1_agreement_with_keras"] = round(agreement, 6)
    keras_accuracy = rows[-2]["accuracy"]
    lost = agreement < MIN_TFLITE_AGREEMENT and rows[-1]["accuracy"] < keras_accuracy - MAX_TFLITE_LOSS
    manifest["status"] = "failed" if lost else "complete"
    manifest["evaluation"]["tflite_test"] = classification_report(
        y_test, scores, source.dataset.class_names)
    config = manifest["config"]
    for flag in ("dynamic", "fp16", "int16x8", "int8"):
        if flag in config:
            config[flag] = flag == precision
    mode = TFLITE_MODES.get(precision)
    stage = manifest.setdefault("stages", {}).setdefault("ptq", {})
    stage.update(mode=mode.name, summary=mode.summary)
    if float_layers is None:
        manifest["recipe"] = "fp32"
        stage["calibration_samples"] = 0
        manifest.pop("calibration", None)
        return
    config[FLOAT_LAYERS_OPTION] = list(float_layers)
    manifest["recipe"] = f"{manifest['recipe']}-float{len(float_layers)}"
    stage.update(float_layers=list(float_layers), float_nodes=list(float_nodes or []),
                 summary=f"{mode.summary}; layers {', '.join(float_layers)} kept in float "
                         "(TFLite QuantizationDebugger denylisted_nodes)")
