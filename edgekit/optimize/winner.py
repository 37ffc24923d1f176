"""The winner as a normal model folder: made by ``edgekit compress``, taken by export and bench.

The folder is what ``edgekit compress`` writes with the winning options (model.keras,
model.tflite, a manifest in the compress schema with lineage to the parent and the before /
after comparison on the test split), plus ``optimize/`` (candidates.json, pareto.png,
sensitivity.png). Its manifest's ``command`` makes the same folder:

- **int8 with layers in float** (the fallback): ``edgekit compress --int8 --float-layers ...``
  with the Keras layers the search kept in float (the same conversion code the search used,
  :mod:`edgekit.formats.tflite_layers`);
- **an ONNX Runtime winner**: that compress command (an ONNX fallback's layers as
  ``--float-layers``), then ``edgekit export --to onnx``, whose int8 file keeps the layers the
  folder records in float (:mod:`edgekit.export.onnx`). The ONNX file is export's: written
  into ``export/`` once the folder is published (:func:`export_onnx`), and measured on the file
  export writes from the folder before that. When the folder's TFLite int8 fails compress's
  own check with those layers, the folder takes the TFLite fallback's layers (else the fp32
  .tflite, below) and export is told the ONNX layers (``--onnx-float-layers``, recorded in the
  ``optimize`` section as ``onnx_float_layers``);
- **fp32**: ``edgekit compress --fp32`` (the float32 .tflite, no quantization). An ONNX
  winner whose folder's TFLite int8 fails compress's own check gets the fp32 .tflite instead
  (config flags, recipe, ``stages.ptq``, the result's row and its test report are rewritten).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit import manifest as manifest_io
from edgekit import outputs
from edgekit.compress import compress
from edgekit.compress.measure import tflite_row
from edgekit.compress.run import MAX_TFLITE_LOSS, MIN_TFLITE_AGREEMENT, ConversionCheckError
from edgekit.config import shell_command
from edgekit.errors import EdgekitError, ModelError
from edgekit.export import export
from edgekit.export.onnx import NO_FLOAT_LAYERS, recipe_float_layers
from edgekit.export.run import FidelityError
from edgekit.formats.tflite import TFLITE_MODES, convert_to_tflite
from edgekit.optimize.candidates import FINE_TUNING, option_flags
from edgekit.optimize.search import Outcome
from edgekit.optimize.source import Source, probabilities
from edgekit.runtimes.litert import LiteRTModel
from edgekit.runtimes.onnxruntime import OnnxRuntimeModel
from edgekit.train.evaluate import classification_report

OPTIMIZE_FOLDER = "optimize"
TFLITE_FILE = "model.tflite"
# The compress option of the fallback: the Keras layers the int8 conversion keeps in float.
FLOAT_LAYERS_OPTION = "float_layers"
# The optimize section's key for the layers export is told explicitly (None: the folder's own).
ONNX_FLOAT_LAYERS_KEY = "onnx_float_layers"


@dataclass
class Winner:
    """The winner folder as built in staging: its manifest and what was measured on it.

    An ONNX winner's file is the one ``edgekit export`` writes into ``export/``.
    ``note`` says how the folder was made; ``onnx_float_layers`` what ``export_onnx`` passes
    as ``--onnx-float-layers`` (None: the folder's own layers).
    """

    staging: Path
    manifest: dict
    accuracy_val: float
    accuracy_test: float
    command: str
    onnx_precision: str | None = None
    onnx_fallback: bool = False
    note: str | None = None
    onnx_float_layers: list | None = None


def build_winner(source: Source, config, chosen: Outcome, staging: Path, final: Path,
                 fallback_record: dict | None, workbench, tflite_fallback=None) -> Winner:
    """Write the winner's compress folder into ``staging`` (published by the caller).

    Args:
        fallback_record: the chosen fallback's record (its ``float_layers``), if it is one.
        tflite_fallback: ``(outcome, record)`` of the TFLite fallback when the search measured
            one: an ONNX winner whose folder's TFLite int8 fails compress's own check (full
            int8 ruined) keeps that fallback's layers in float instead.

    Raises:
        EdgekitError: when compress refuses or fails (its own message).
    """
    candidate = chosen.candidate
    layers = list((fallback_record or {}).get("float_layers") or []) if candidate.fallback \
        else []
    fp32 = candidate.precision == "fp32"
    options = {"fp32": True} if fp32 else _with_layers(candidate.options, layers)
    replace_with_fp32 = False
    try:
        result = _compress(source, config, candidate, staging, options)
    except ConversionCheckError as error:
        # The folder is written all the same, marked failed. A fallback keeps it so (the
        # search measured it within budget on validation); an ONNX winner's folder gets a
        # TFLite int8 that passes, if the TFLite fallback found one, else the fp32 .tflite.
        result = error.result
        if candidate.format == "onnx" and not fp32:
            # Layers found on the parent fit a post-training int8 only (compress refuses
            # --float-layers with --qat).
            twin_layers = _twin_layers(tflite_fallback) if candidate.stage != FINE_TUNING else []
            if twin_layers and twin_layers != layers:
                options = _with_layers(candidate.options, twin_layers)
                try:
                    result = _compress(source, config, candidate, staging, options)
                except ConversionCheckError as again:
                    result, replace_with_fp32 = again.result, True
            else:
                replace_with_fp32 = True
        elif not (fp32 or candidate.fallback):
            raise
    manifest = result.manifest
    if replace_with_fp32:
        _replace_with_fp32(staging, manifest, source)
    note, onnx_float_layers = None, None
    if candidate.format == "onnx":
        recorded = recipe_float_layers(manifest)
        if candidate.precision == "int8" and recorded != layers:
            onnx_float_layers = layers or [NO_FLOAT_LAYERS]
        accuracy_test, accuracy_val = _exported_onnx_accuracy(staging, source,
                                                              candidate.precision,
                                                              onnx_float_layers)
        note = _onnx_note(candidate.precision, layers, recorded, replace_with_fp32)
    else:
        accuracy_test = float(manifest["comparison"]["rows"][-1]["accuracy"])
        accuracy_val = workbench.tflite_accuracy((staging / TFLITE_FILE).read_bytes(),
                                                 "the winner's model.tflite")
        if layers:
            note = (f"model.tflite keeps {', '.join(layers)} in float: edgekit compress --int8 "
                    "--float-layers, as command says")
    command = reproducing_command(source, config, candidate, final,
                                  options, onnx_float_layers)
    manifest["name"] = final.name
    manifest["command"] = command
    return Winner(staging=staging, manifest=manifest, accuracy_val=accuracy_val,
                  accuracy_test=accuracy_test, command=command,
                  onnx_precision=candidate.precision if candidate.format == "onnx" else None,
                  onnx_fallback=candidate.format == "onnx" and candidate.fallback, note=note,
                  onnx_float_layers=onnx_float_layers)


def finish_manifest(winner: Winner, section: dict) -> None:
    """Add the ``optimize`` section and write the manifest (every file's sha256 included).

    The build knows how the folder was made: its note replaces the section's, and the layers
    export is told explicitly are recorded for :func:`export_onnx`.
    """
    section = dict(section)
    if winner.note is not None:
        section["note"] = winner.note
    section[ONNX_FLOAT_LAYERS_KEY] = winner.onnx_float_layers
    winner.manifest["optimize"] = section
    manifest_io.write_manifest(winner.staging, winner.manifest)


def export_onnx(final: Path, precision: str, fallback: bool) -> str | None:
    """``edgekit export --to onnx`` of the published winner (fp32 and its precision); a warning
    line if it fails.

    A fallback's int8 file keeps the folder's layers in float (export's default for a folder
    made with ``--float-layers``), or the ones the optimize section names when they differ.
    """
    section = manifest_io.read_manifest(final).get("optimize") or {}
    explicit = section.get(ONNX_FLOAT_LAYERS_KEY)
    extra = {"onnx_float_layers": ",".join(explicit)} if explicit else {}
    try:
        export(final, to=("onnx",), onnx_precisions=tuple(dict.fromkeys(("fp32", precision))),
               **extra)
    except EdgekitError as error:
        kind = "the fallback's " if fallback else ""
        return (f"edgekit export --to onnx of {final} did not pass: {error}; {kind}ONNX "
                f"{precision} file is not in {final / 'export'}; run that export again to see why")
    return None


def reproducing_command(source: Source, config, candidate, final: Path, options: dict,
                        onnx_float_layers: list[str] | None = None) -> str | None:
    """The commands that make this folder (None for a live model).

    Args:
        options: the compress options the folder was made with (a fallback's
            ``float_layers`` included; ``fp32`` for an fp32 winner).
        onnx_float_layers: what export is told with ``--onnx-float-layers`` (None: nothing,
            it takes the folder's own layers).
    """
    if not source.is_path:
        return None
    extra = source.compress_options(config, *_uses(candidate))
    if source.folder is None:
        extra["dataset"] = source.spec
    args = ["compress", str(source.given), *option_flags(options), *option_flags(extra),
            "--output", str(final)]
    command = shell_command("edgekit", args)
    if candidate.format == "onnx":
        export_args = ["export", str(final), "--to", "onnx", "--onnx-precisions",
                       candidate.precision]
        if onnx_float_layers:
            export_args += ["--onnx-float-layers", ",".join(onnx_float_layers)]
        command += " && " + shell_command("edgekit", export_args)
    return command


def _with_layers(options: dict, layers: list[str]) -> dict:
    return {**options, FLOAT_LAYERS_OPTION: ",".join(layers)} if layers else dict(options)


def _twin_layers(tflite_fallback) -> list[str]:
    twin, record = tflite_fallback or (None, None)
    if twin is None or twin.artifact is None:
        return []
    return list((record or {}).get("float_layers") or [])


def _compress(source: Source, config, candidate, staging: Path, options: dict):
    """``edgekit.compress`` of the parent into ``staging`` with ``options``."""
    outputs.discard(staging)
    given = source.given if source.is_path else source.model
    extra = {} if source.is_path and source.folder is not None else {"dataset": (
        source.spec if source.is_path else source.dataset)}
    return compress(given, output_dir=staging, progress=False,
                    **source.compress_options(config, *_uses(candidate)), **extra, **options)


def _uses(candidate) -> tuple[bool, bool]:
    """(calibrates, fine-tunes): which of the search's settings the candidate's run uses."""
    return candidate.precision in ("int8", "int16x8"), candidate.stage == FINE_TUNING


def _exported_onnx_accuracy(staging: Path, source: Source, precision: str,
                            onnx_float_layers: list[str] | None) -> tuple[float, float]:
    """(test, validation) accuracy of the ONNX file ``edgekit export`` writes from the folder."""
    extra = {"onnx_float_layers": ",".join(onnx_float_layers)} if onnx_float_layers else {}
    with tempfile.TemporaryDirectory(prefix="edgekit-winner-export-") as scratch:
        try:
            result = export(staging, output_dir=Path(scratch) / "export", to=("onnx",),
                            onnx_precisions=(precision,), **extra)
        except FidelityError as error:  # written all the same; the budget judged it already
            result = error.result
        entry = result.artifacts.get(f"onnx-{precision}") or {}
        if not entry.get("file"):
            raise ModelError(f"edgekit export wrote no onnx-{precision} for the winner: "
                             f"{entry.get('reason', 'no such artifact')}; expected the ONNX file "
                             "the search measured; measure the TFLite candidates instead "
                             "(--runtime litert)")
        path = result.path(f"onnx-{precision}")
        return _onnx_accuracy(path, source, "test"), _onnx_accuracy(path, source, "val")


def _onnx_note(precision: str, layers: list[str], recorded: list[str], fp32_tflite: bool) -> str:
    kept = f", keeping {', '.join(layers)} in float" if layers else ""
    note = (f"the ONNX file is edgekit export's export/model_{precision}.onnx, written from this "
            f"folder{kept}")
    if fp32_tflite:
        return note + ("; model.tflite is the fp32 conversion (compress's own .tflite failed "
                       "its check)")
    if recorded != layers and precision == "int8":
        return note + (f"; model.tflite keeps {', '.join(recorded)} in float, so export is told "
                       "--onnx-float-layers")
    return note


def _onnx_accuracy(path: Path, source: Source, split: str) -> float:
    x, y = source.dataset.preprocessed(split)
    if not len(y):
        return 0.0
    scores = probabilities(OnnxRuntimeModel.load(path).run(x), source.from_logits)
    return float((np.asarray(scores).argmax(axis=1) == y).mean())


def _replace_with_fp32(folder: Path, manifest: dict, source: Source) -> None:
    """Put the fp32 conversion in place of compress's model.tflite and measure it as compress
    does (compress cannot be asked for fp32)."""
    content = convert_to_tflite(source.model, "fp32")
    (folder / TFLITE_FILE).write_bytes(content)
    x_test, y_test = source.test()
    runtime = LiteRTModel(content, source="the winner's model.tflite")
    scores = probabilities(runtime.run(x_test), source.from_logits)
    keras_scores = probabilities(source.model.predict(x_test, batch_size=256, verbose=0),
                                 source.from_logits)
    rows = manifest["comparison"]["rows"]
    rows[-1] = tflite_row("compressed tflite", "fp32", content, scores, y_test,
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
            config[flag] = False
    config[FLOAT_LAYERS_OPTION] = None
    mode = TFLITE_MODES.get("fp32")
    stage = manifest.setdefault("stages", {}).setdefault("ptq", {})
    for key in ("float_layers", "float_nodes", "converter"):
        stage.pop(key, None)
    stage.update(mode=mode.name, summary=mode.summary, calibration_samples=0)
    manifest["recipe"] = "fp32"
    manifest.pop("calibration", None)
