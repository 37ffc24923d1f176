"""The conversion to .tflite, with the post-training quantization the config asks for.

``--int8`` (full integer, calibrated; ``--int8-io`` for int8 input and output tensors),
``--dynamic``, ``--fp16`` and ``--int16x8`` pick a mode of :mod:`edgekit.formats.tflite`; a QAT
model converts to int8 with its learned ranges; with none of them the file is float32 (the
result of pruning or clustering alone). Calibration uses the dataset's shared calibration set
(:func:`edgekit.data.calibration.calibration_samples`), drawn from the training split.
"""

from __future__ import annotations

from edgekit.compress.config import CompressConfig
from edgekit.compress.stages import TECHNIQUES, StageContext, StageResult
from edgekit.formats.tflite import TFLITE_MODES, convert_to_tflite


@TECHNIQUES.register("ptq")
class PostTrainingQuantization:
    """Convert the (possibly QAT) model to .tflite in the chosen mode."""

    name = "ptq"
    order = 90

    def wanted(self, config: CompressConfig) -> bool:
        return True  # every run ships a .tflite; without a PTQ flag it is float32

    def check(self, model, config: CompressConfig) -> None:
        return None  # any TFLite-convertible model; the converter's own error names the op

    def apply(self, model, context: StageContext) -> StageResult:
        config = context.config
        mode = TFLITE_MODES.get(config.tflite_mode)
        uses_calibration = mode.representative_data != "unused"
        representative = context.calibration if uses_calibration else None
        content = convert_to_tflite(model, mode.name, representative_data=representative,
                                    int8_io=config.int8_io)
        return StageResult(model=model, tflite=content, record={
            "mode": mode.name,
            "summary": mode.summary,
            "from_qat_model": "qat" in context.applied,
            "int8_io": config.int8_io,
            "calibration_samples": 0 if representative is None else int(len(representative)),
            "experimental_sparsity": False,
        })
