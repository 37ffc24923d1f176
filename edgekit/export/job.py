"""One export run's state, handed explicitly to every format writer, and what the writers share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit import manifest as manifest_io
from edgekit.config import shell_command
from edgekit.data.calibration import calibration_samples
from edgekit.export import fidelity
from edgekit.export.config import ExportConfig


@dataclass
class ExportJob:
    """One export run's state, passed explicitly to each format's ``write(job)``.

    Attributes:
        source: the :class:`edgekit.export.source.ExportSource` (model, dataset, folder).
        config: the run's :class:`ExportConfig`.
        staging: the folder every file is written into (renamed to ``final`` at the end).
        final: the export folder it becomes.
        x / reference: the test samples and the Keras model's outputs on them.
        artifacts: name -> manifest entry, filled by :meth:`add` and :meth:`skip`.
    """

    source: object  # edgekit.export.source.ExportSource
    config: ExportConfig
    staging: Path
    final: Path
    x: np.ndarray
    reference: np.ndarray
    artifacts: dict = field(default_factory=dict)
    _calibration: np.ndarray | None = None
    _onnx_fp32: object = None

    @property
    def quantization_aware(self) -> bool:
        """The Keras model itself is a QAT model (its every artifact is int8)."""
        return self.source.qat_model is not None and self.source.qat_model is self.source.model

    @property
    def has_qat_model(self) -> bool:
        """There is a quantization-aware model (the model itself, or a QAT folder's qat file)."""
        return self.source.qat_model is not None

    def calibration(self) -> np.ndarray:
        """The one calibration set: the samples the folder's TFLite int8 was calibrated on."""
        if self._calibration is None:
            count = self.config.calibration_samples or self.source.calibration_samples
            self._calibration = calibration_samples(self.source.dataset, count, self.source.seed)
        return self._calibration

    def command(self, artifact: str, formats: tuple, **overrides) -> str:
        """The ``edgekit export`` command that reproduces one artifact (into its own folder)."""
        config = self.config.replace(**overrides)
        output = self.final.parent / f"{self.final.name}-{artifact}"
        return shell_command("edgekit", ["export", str(self.source.path),
                                         *config.to_cli_args(formats), "--output", str(output)])

    def add(self, entry: dict, file: Path | None = None, outputs_: np.ndarray | None = None) -> dict:
        """Record an artifact: its file's size and sha256, and its fidelity when outputs are given.

        An artifact with no fidelity check and no status of its own is recorded as ``written``.
        """
        if file is not None:
            entry.setdefault("file", file.relative_to(self.staging).as_posix())
            entry["bytes"] = file.stat().st_size
            entry["sha256"] = manifest_io.sha256_file(file)
        if outputs_ is not None:
            entry["fidelity"] = fidelity.check(self.reference, outputs_, entry["precision"],
                                               self.config)
            entry["status"] = "passed" if entry["fidelity"]["passed"] else "failed"
        entry.setdefault("status", "written")
        self.artifacts[entry["name"]] = entry
        return entry

    def skip(self, name: str, format_name: str, precision: str, reason: str) -> None:
        self.artifacts[name] = {"name": name, "format": format_name, "precision": precision,
                                "status": "skipped", "reason": reason}

    def contract_record(self) -> dict:
        """The preprocessing (scale, mean, std) plus the input contract's source and raw range.

        What the ONNX metadata, the Triton config parameter and the mobile bundle carry: a
        client needs the numbers, and a person needs to see where they came from.
        """
        dataset = self.source.dataset
        record = dataset.preprocessing.to_dict()
        if dataset.contract is not None:
            record.update(source=dataset.contract.source, detail=dataset.contract.detail,
                          raw=dataset.contract.raw)
        return record
