"""The conversion to .tflite, with the post-training quantization the config asks for.

``--int8`` (full integer, calibrated; ``--int8-io`` for int8 input and output tensors),
``--dynamic``, ``--fp16`` and ``--int16x8`` pick a mode of :mod:`edgekit.formats.tflite`; a
technique that decides the conversion itself (QAT: int8, with its learned ranges) sets the mode;
with none of them the file is float32 (the result of pruning or clustering alone). Calibration
uses the dataset's shared calibration set (:func:`edgekit.data.calibration.calibration_samples`),
drawn from the training split.
"""

from __future__ import annotations

from edgekit.compress.stages import (
    TECHNIQUES,
    StageContext,
    StageResult,
    Technique,
    wanted_stages,
)
from edgekit.errors import OptionError
from edgekit.formats.tflite import TFLITE_MODES, convert_to_tflite
from edgekit.options import Option

# Post-training quantization flags; at most one per run. Each is a TFLite conversion mode.
PTQ_MODES = ("int8", "dynamic", "fp16", "int16x8")

OPTIONS = (
    Option("int8", bool, False, "full-integer post-training quantization, calibrated on "
           "training samples"),
    Option("int8_io", bool, False, "with --int8 or --qat: int8 input and output tensors instead "
           "of float32"),
    Option("dynamic", bool, False, "dynamic-range quantization: int8 weights, float activations"),
    Option("fp16", bool, False, "float16 weights"),
    Option("int16x8", bool, False, "16-bit activations, 8-bit weights (calibrated)"),
    Option("calibration_samples", int, 500, "Training samples that calibrate --int8 / --int16x8.",
           minimum=1, label="field"),
)


def chosen_modes(config) -> list[str]:
    """The post-training quantization flags ``config`` sets."""
    return [mode for mode in PTQ_MODES if getattr(config, mode)]


@TECHNIQUES.register("ptq")
class PostTrainingQuantization(Technique):
    """Convert the (possibly QAT) model to .tflite in the chosen mode."""

    name = "ptq"
    order = 90
    options = OPTIONS
    selectors = PTQ_MODES  # --int8-io and --calibration-samples only modify a conversion

    def wanted(self, config) -> bool:
        return True  # every run ships a .tflite; without a PTQ flag it is float32

    def conversion(self, config) -> str | None:
        chosen = chosen_modes(config)
        return chosen[0] if chosen else None

    def recipe(self, config) -> list[str]:
        decided_elsewhere = any(other.conversion(config) for other in wanted_stages(config)
                                if other.name != self.name)
        parts = [] if decided_elsewhere else chosen_modes(config)
        return parts + (["int8io"] if config.int8_io else [])

    def validate(self, config) -> None:
        chosen = chosen_modes(config)
        if len(chosen) > 1:
            raise OptionError(
                f"pick one post-training quantization; received --{' and --'.join(chosen)}. "
                "They are alternative formats of the same weights"
            )
        if config.int8_io and config.tflite_mode != "int8":
            raise OptionError(
                "--int8-io makes the input and output tensors of a full-integer model int8; it "
                "needs --int8 (or --qat). Add --int8, or drop --int8-io"
            )

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
