"""The conversion to .tflite, with the post-training quantization the config asks for.

``--int8`` (full integer, calibrated; ``--int8-io`` for int8 input and output tensors),
``--dynamic``, ``--fp16`` and ``--int16x8`` pick a mode of :mod:`edgekit.formats.tflite`; a
technique that decides the conversion itself (QAT: int8, with its learned ranges) sets the mode;
with none of them the file is float32 (the result of pruning or clustering alone). Calibration
uses the dataset's shared calibration set (:func:`edgekit.data.calibration.calibration_samples`),
drawn from the training split.

``--float-layers conv2,dense`` (with ``--int8``) keeps those Keras layers' ops in float inside
the int8 model (:func:`edgekit.formats.tflite_layers.convert_keeping_float`: TFLite's
QuantizationDebugger with ``denylisted_nodes``), the fix for a model one layer ruins in int8;
``edgekit optimize`` finds the fewest such layers and writes its winner with this option.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.compress.stages import (
    TECHNIQUES,
    StageContext,
    StageResult,
    Technique,
    wanted_stages,
)
from edgekit.errors import OptionError
from edgekit.formats.tflite import TFLITE_MODES, convert_to_tflite
from edgekit.formats.tflite_layers import (check_layer_names, convert_keeping_float,
                                           split_layer_names)
from edgekit.options import Option

# Post-training quantization flags; at most one per run. Each is a TFLite conversion mode.
PTQ_MODES = ("int8", "dynamic", "fp16", "int16x8", "fp32")


@dataclass(frozen=True)
class LayerNames(Option):
    """Keras layer names, comma-separated in one string (as the command line gives them)."""

    type: type = str

    def expected(self) -> str:
        return "comma-separated Keras layer names"


OPTIONS = (
    Option("int8", bool, False, "full-integer post-training quantization, calibrated on "
           "training samples"),
    Option("int8_io", bool, False, "with --int8 or --qat: int8 input and output tensors instead "
           "of float32"),
    Option("dynamic", bool, False, "dynamic-range quantization: int8 weights, float activations"),
    Option("fp16", bool, False, "float16 weights"),
    Option("int16x8", bool, False, "16-bit activations, 8-bit weights (calibrated)"),
    Option("fp32", bool, False, "no quantization: the float32 .tflite, as a baseline (what "
           "edgekit optimize records for an fp32 winner)"),
    Option("calibration_samples", int, 500, "Training samples that calibrate --int8 / --int16x8.",
           minimum=1, label="field"),
    LayerNames("float_layers", help="Keras layers whose ops stay in float in the --int8 model",
               example="conv2,dense", metavar="LAYERS"),
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
        parts = [] if self._deciders(config) else chosen_modes(config)
        layers = float_layers(config)
        return (parts + ([f"float{len(layers)}"] if layers else [])
                + (["int8io"] if config.int8_io else []))

    def _deciders(self, config) -> list[Technique]:
        """The other wanted techniques that decide the conversion (QAT)."""
        return [other for other in wanted_stages(config)
                if other.name != self.name and other.conversion(config)]

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
        if config.float_layers is None:
            return
        if not float_layers(config):
            raise OptionError(
                f"--float-layers names no layer; received {config.float_layers!r}; expected "
                "comma-separated Keras layer names. Example: --float-layers conv2,dense")
        deciders = [option.flag for other in self._deciders(config)
                    for option in other.given(config)]
        if deciders:
            raise OptionError(
                f"--float-layers keeps layers of a post-training int8 model in float; received "
                f"it with {' and '.join(deciders)}, whose int8 model keeps the ranges it learned. "
                f"Use --int8 without {' and '.join(deciders)}, or drop --float-layers")
        if not config.int8:
            given = [f"--{mode}" for mode in chosen_modes(config)]
            raise OptionError(
                f"--float-layers keeps some layers of a full-integer model in float; it needs "
                f"--int8; received {' and '.join(given) if given else 'no --int8'}. Add --int8"
                f"{' instead' if given else ''}, or drop --float-layers")

    def check(self, model, config) -> None:
        """Before any work: every --float-layers name is a layer of the model."""
        super().check(model, config)
        if float_layers(config):
            check_layer_names(model, float_layers(config))

    def apply(self, model, context: StageContext) -> StageResult:
        config = context.config
        mode = TFLITE_MODES.get(config.tflite_mode)
        uses_calibration = mode.representative_data != "unused"
        representative = context.calibration if uses_calibration else None
        layers = float_layers(config)
        record = {
            "mode": mode.name,
            "summary": mode.summary,
            "from_qat_model": "qat" in context.applied,
            "int8_io": config.int8_io,
            "calibration_samples": 0 if representative is None else int(len(representative)),
            "experimental_sparsity": False,
        }
        if layers:
            content, nodes = convert_keeping_float(model, layers, representative,
                                                   int8_io=config.int8_io)
            record.update(summary=f"{mode.summary}; layers {', '.join(layers)} kept in float",
                          float_layers=layers, float_nodes=nodes,
                          converter="TFLite QuantizationDebugger, denylisted_nodes")
        else:
            content = convert_to_tflite(model, mode.name, representative_data=representative,
                                        int8_io=config.int8_io)
        return StageResult(model=model, tflite=content, record=record)


def float_layers(config) -> list[str]:
    """The Keras layers ``--float-layers`` names, each once (none when it is not given)."""
    return split_layer_names(config.float_layers) if config.float_layers is not None else []
