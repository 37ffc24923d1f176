"""Each candidate's artifact, built in the search's work folder and scored on the validation split.

- post-training, LiteRT: :func:`edgekit.formats.tflite.convert_to_tflite` of the parent in the
  candidate's mode, calibrated on the shared calibration set;
- post-training, ONNX Runtime: the parent's fp32 graph (:func:`edgekit.formats.onnx.convert_to_onnx`,
  converted once), its fp16 copy, or :func:`edgekit.formats.onnx_quantize.quantize_static_int8`;
- fine-tuning: ``edgekit.compress`` itself on the already loaded parent and dataset (so a
  registered technique runs exactly as it does for a user), then, for ONNX Runtime,
  ``edgekit.export`` of that folder (a QAT model keeps its learned ranges as QDQ);
- the per-layer fallback: :mod:`edgekit.optimize.sensitivity`.

Accuracy is measured here, in this process, on the validation split only: choosing never sees
the test split. Latency is measured elsewhere (:mod:`edgekit.optimize.latency`), each artifact
in a process of its own.
"""

from __future__ import annotations

import gzip
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.compress import compress
from edgekit.compress.run import ConversionCheckError
from edgekit.errors import ModelError
from edgekit.export import export
from edgekit.export.run import FidelityError
from edgekit.formats.onnx import check_onnx_file, convert_to_onnx, to_float16
from edgekit.formats.onnx_quantize import quantize_static_int8
from edgekit.formats.tflite import TFLITE_MODES, convert_to_tflite
from edgekit.optimize.candidates import Candidate
from edgekit.optimize.source import Source, probabilities
from edgekit.runtimes.litert import LiteRTModel
from edgekit.runtimes.onnxruntime import OnnxRuntimeModel

ONNX_OPSET = 17


@dataclass
class Artifact:
    """A built candidate: its file, sizes and validation accuracy (None until scored).

    ``details`` holds what candidates.json keeps beside the record (the float layers of a
    fallback, the compress folder of a fine-tuned one, seconds spent).
    """

    path: Path
    accuracy_val: float | None
    size_bytes: int
    gzip_bytes: int
    details: dict = field(default_factory=dict)


def gzip_size(content: bytes) -> int:
    """Bytes after gzip -9 (mtime 0, so the figure is reproducible), as compress measures it."""
    return len(gzip.compress(content, compresslevel=9, mtime=0))


class Workbench:
    """Builds and scores candidates for one search; every file lands under ``work``."""

    def __init__(self, source: Source, config, work: Path):
        self.source = source
        self.config = config
        self.work = Path(work)
        self.x_val, self.y_val = source.validation()
        self._onnx_fp32: Path | None = None
        self._refused: dict[str, str] = {}  # recipe -> compress's ConversionCheckError

    # --- scores ------------------------------------------------------------------------------

    def reference_accuracy(self) -> float:
        """The parent Keras model's validation accuracy: the budget is measured from it."""
        outputs = self.source.model.predict(self.x_val, batch_size=256, verbose=0)
        return self._accuracy(outputs)

    def tflite_accuracy(self, content: bytes, source: str = "candidate") -> float:
        runtime = LiteRTModel(content, num_threads=self.config.threads, source=source)
        return self._accuracy(runtime.run(self.x_val))

    def onnx_accuracy(self, path: Path) -> float:
        return self._accuracy(OnnxRuntimeModel.load(path, num_threads=self.config.threads)
                              .run(self.x_val))

    def _accuracy(self, outputs) -> float:
        if not len(self.y_val):
            return 0.0
        scores = probabilities(outputs, self.source.from_logits)
        return float((np.asarray(scores).argmax(axis=1) == self.y_val).mean())

    # --- building ------------------------------------------------------------------------------

    def artifact(self, candidate: Candidate, path: Path, details: dict | None = None,
                 accuracy: float | None = None, score: bool = True) -> Artifact:
        """A written file's sizes, scored (unless ``accuracy`` is known or ``score`` is off)."""
        content = path.read_bytes()
        found = Artifact(path=path, accuracy_val=accuracy, size_bytes=len(content),
                         gzip_bytes=gzip_size(content), details=dict(details or {}))
        if accuracy is None and score:
            found.accuracy_val = self.score(candidate, found)
        return found

    def score(self, candidate: Candidate, artifact: Artifact) -> float:
        """Validation accuracy of a built candidate's file."""
        if candidate.format == "tflite":
            return self.tflite_accuracy(artifact.path.read_bytes(), repr(str(artifact.path)))
        return self.onnx_accuracy(artifact.path)

    def post_training(self, candidate: Candidate) -> Artifact:
        """The parent converted (and quantized) in the candidate's precision, not yet scored
        (the search scores the ones that can still win first; see :meth:`score`)."""
        started = time.time()
        path = self.path_for(candidate)
        if candidate.format == "tflite":
            mode = TFLITE_MODES.get(candidate.precision)
            uses_data = mode.representative_data != "unused"
            path.write_bytes(convert_to_tflite(
                self.source.model, mode.name,
                representative_data=self.source.calibration if uses_data else None))
        elif candidate.precision == "fp32":
            shutil.copyfile(self.onnx_fp32(), path)
        elif candidate.precision == "fp16":
            import onnx  # lazy: onnx takes about 0.15 s to import; ONNX candidates only

            onnx.save(to_float16(onnx.load(str(self.onnx_fp32()))), str(path))
            check_onnx_file(path)
        else:
            self.quantize_onnx(path)
        return self.artifact(candidate, path, {"seconds": round(time.time() - started, 2)},
                             score=False)

    def quantize_onnx(self, path: Path, nodes_to_exclude=()) -> dict:
        """Static QDQ int8 of the parent's fp32 graph (the host's scheme), some nodes in float."""
        options = quantize_static_int8(self.onnx_fp32(), path, self.source.calibration,
                                       nodes_to_exclude=nodes_to_exclude)
        check_onnx_file(path)
        return options

    def fine_tuning(self, candidate: Candidate) -> Artifact:
        """``edgekit.compress`` with the candidate's options, on the parent already loaded.

        The folder it writes (model.keras, model.tflite, manifest) stays in the work folder; for
        ONNX Runtime, ``edgekit.export`` writes that folder's ONNX file of the same precision.
        """
        started = time.time()
        folder = self.work / "fine-tuned" / candidate.recipe
        details = {"compress_folder": str(folder)}
        if not folder.exists():  # LiteRT and ONNX Runtime share one fine-tuning run
            try:
                compress(self.source.model, output_dir=folder, dataset=self.source.dataset,
                         progress=False, preprocess=self.source.preprocess,
                         seed=self.source.seed,
                         calibration_samples=self.config.calibration_samples,
                         finetune_epochs=self.config.finetune_epochs, **candidate.options)
            except ConversionCheckError as error:
                # Written all the same: measured for the record, but compress refuses it, so
                # it cannot be the winner.
                self._refused[candidate.recipe] = str(error)
        if candidate.recipe in self._refused:
            details["refused"] = self._refused[candidate.recipe]
        if candidate.format == "tflite":
            source_file = folder / "model.tflite"
        else:
            source_file = self._exported_onnx(folder, candidate.precision)
        path = self.path_for(candidate)
        shutil.copyfile(source_file, path)
        details["seconds"] = round(time.time() - started, 2)
        return self.artifact(candidate, path, details)

    def _exported_onnx(self, folder: Path, precision: str) -> Path:
        try:
            result = export(folder, output_dir=folder / "export", to=("onnx",),
                            onnx_precisions=(precision,))
        except FidelityError as error:  # written all the same; the budget judges it here
            result = error.result
        entry = result.artifacts.get(f"onnx-{precision}") or {}
        if entry.get("status") == "skipped" or not entry.get("file"):
            raise ModelError(f"edgekit export wrote no onnx-{precision} for {folder.name}: "
                             f"{entry.get('reason', 'no such artifact')}; expected an ONNX file "
                             "of that precision; measure the TFLite candidate instead")
        return result.path(f"onnx-{precision}")

    def onnx_fp32(self) -> Path:
        """The parent's fp32 ONNX graph, converted once per search."""
        if self._onnx_fp32 is None:
            import onnx  # lazy: onnx takes about 0.15 s to import; ONNX candidates only

            path = self.work / "parent_fp32.onnx"
            onnx.save(convert_to_onnx(self.source.model, ONNX_OPSET), str(path))
            check_onnx_file(path)
            self._onnx_fp32 = path
        return self._onnx_fp32

    def path_for(self, candidate: Candidate) -> Path:
        """Where a candidate's file goes: ``<work>/artifacts/<name>.<format>``."""
        folder = self.work / "artifacts"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{candidate.name}.{candidate.format}"
