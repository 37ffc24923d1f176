"""``CompressConfig``: everything that decides what ``edgekit compress`` computes, flat and plain.

The CLI and the Python API build the same config; ``to_cli_args`` gives back the command that
reproduces a run, and the manifest stores ``to_dict()``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, fields

from edgekit.config import PRECISIONS, FlatConfig
from edgekit.errors import OptionError

# Post-training quantization flags; at most one per run. Each is a TFLite conversion mode.
PTQ_MODES = ("int8", "dynamic", "fp16", "int16x8")
# Fine-tuning learning rate (Adam) per technique when --learning-rate is not given: pruning must
# regrow accuracy around new zeros (tfmot's pruning guide fine-tunes at Adam's 1e-3); clustering
# and QAT only adjust a trained model, so they move gently.
DEFAULT_LEARNING_RATES = {"prune": 1e-3, "cluster": 1e-4, "qat": 1e-4}
# Structured pruning patterns: "M:N" keeps N-M of every N consecutive input-channel weights.
PRUNE_STRUCTURES = {"2:4": (2, 4)}


@dataclass
class CompressConfig(FlatConfig):
    """The options of one compression run.

    ``model`` is the parent: a model folder from ``edgekit train`` / ``compress`` or a .keras /
    .h5 / SavedModel path. ``dataset``, ``data_dir``, ``seed``, ``validation_fraction`` and
    ``batch_size`` default to the parent folder's (a model file needs ``dataset``).
    ``prune`` is the target fraction of zero weights, in [0, 1); ``prune_structure`` "2:4" prunes
    2 of every 4 consecutive weights (a sparsity of 0.5). ``cluster`` is the number of weight
    clusters per layer (>= 2). ``qat`` fine-tunes with fake int8 quantization, then converts to
    int8. One of ``int8`` (with ``int8_io`` for int8 input/output tensors), ``dynamic``, ``fp16``
    and ``int16x8`` picks the post-training quantization of the .tflite. ``finetune_epochs`` and
    ``learning_rate`` (Adam; None = each technique's default in ``DEFAULT_LEARNING_RATES``) drive
    the fine-tuning of pruning, clustering and QAT; ``precision`` is the
    Keras dtype policy of pruning fine-tuning (clustering and QAT run in float32).
    """

    model: str = ""
    dataset: str | None = None
    data_dir: str | None = None
    seed: int | None = None
    validation_fraction: float | None = None
    batch_size: int | None = None
    prune: float | None = None
    prune_structure: str | None = None
    cluster: int | None = None
    qat: bool = False
    int8: bool = False
    int8_io: bool = False
    dynamic: bool = False
    fp16: bool = False
    int16x8: bool = False
    finetune_epochs: int = 2
    learning_rate: float | None = None
    calibration_samples: int = 500
    precision: str = "auto"
    preprocess: str | None = None
    custom_objects: str | None = None
    unsafe_deserialization: bool = False

    kind = "compression"

    @property
    def ptq_mode(self) -> str | None:
        """The post-training quantization flag given, if any."""
        chosen = [mode for mode in PTQ_MODES if getattr(self, mode)]
        return chosen[0] if chosen else None

    @property
    def tflite_mode(self) -> str:
        """The TFLite conversion mode: QAT implies int8; no PTQ flag means fp32."""
        return "int8" if self.qat else (self.ptq_mode or "fp32")

    @property
    def prune_sparsity(self) -> float | None:
        if self.prune_structure is not None:
            zeros, block = PRUNE_STRUCTURES[self.prune_structure]
            return zeros / block
        return self.prune

    def learning_rate_for(self, technique: str) -> float:
        """The fine-tuning learning rate of one technique."""
        return self.learning_rate or DEFAULT_LEARNING_RATES[technique]

    @property
    def fine_tunes(self) -> bool:
        return self.prune_sparsity is not None or self.cluster is not None or self.qat

    def recipe(self) -> str:
        """The output folder suffix, e.g. ``int8``, ``prune80-qat``, ``cluster16-int8``."""
        parts = []
        if self.prune_structure is not None:
            parts.append("prune" + self.prune_structure.replace(":", "of"))
        elif self.prune is not None:
            parts.append(f"prune{self.prune * 100:g}".replace(".", "p"))
        if self.cluster is not None:
            parts.append(f"cluster{self.cluster}")
        if self.qat:
            parts.append("qat")
        elif self.ptq_mode:
            parts.append(self.ptq_mode)
        if self.int8_io:
            parts.append("int8io")
        return "-".join(parts)

    def validate(self) -> None:
        """Raise OptionError for values out of range and flags that contradict each other."""
        if not isinstance(self.model, str) or not self.model:
            raise OptionError("no model to compress; pass a model folder from edgekit train or a "
                              ".keras / .h5 / SavedModel path")
        if self.prune is not None and (_not_number(self.prune) or not 0 <= self.prune < 1):
            raise OptionError(
                f"--prune takes the fraction of weights set to zero, in [0, 1); received "
                f"{self.prune!r}. Example: --prune 0.8 for 80% zeros"
            )
        if self.prune_structure is not None and self.prune_structure not in PRUNE_STRUCTURES:
            raise OptionError(
                f"unknown --prune-structure {self.prune_structure!r}; expected one of: "
                f"{', '.join(PRUNE_STRUCTURES)}"
            )
        if self.prune_structure is not None and self.prune is not None \
                and abs(self.prune - self.prune_sparsity) > 1e-9:
            raise OptionError(
                f"--prune-structure {self.prune_structure} sets a sparsity of "
                f"{self.prune_sparsity:g}; received --prune {self.prune:g} as well. Drop --prune, "
                f"or pass --prune {self.prune_sparsity:g}"
            )
        if self.cluster is not None and (_not_integer(self.cluster) or self.cluster < 2):
            raise OptionError(
                f"--cluster takes the number of weight clusters per layer, an integer >= 2; "
                f"received {self.cluster!r}. Example: --cluster 16"
            )
        chosen = [mode for mode in PTQ_MODES if getattr(self, mode)]
        if len(chosen) > 1:
            raise OptionError(
                f"pick one post-training quantization; received --{' and --'.join(chosen)}. "
                "They are alternative formats of the same weights"
            )
        if self.qat and chosen and chosen != ["int8"]:
            raise OptionError(
                f"--qat trains for int8 and converts to int8; received --{chosen[0]} as well. "
                f"Drop --{chosen[0]}, or drop --qat"
            )
        if self.int8_io and self.tflite_mode != "int8":
            raise OptionError(
                "--int8-io makes the input and output tensors of a full-integer model int8; it "
                "needs --int8 (or --qat). Add --int8, or drop --int8-io"
            )
        if not (self.fine_tunes or chosen):
            raise OptionError(
                "no compression technique given; expected one or more of --prune, "
                "--prune-structure, --cluster, --qat, --int8, --dynamic, --fp16, --int16x8. "
                "Example: edgekit compress MODEL --int8"
            )
        _at_least("finetune_epochs", self.finetune_epochs, 1)
        _at_least("calibration_samples", self.calibration_samples, 1)
        if self.batch_size is not None:
            _at_least("batch_size", self.batch_size, 1)
        if self.seed is not None:
            _at_least("seed", self.seed, 0)
        if self.learning_rate is not None and (_not_number(self.learning_rate)
                                               or not self.learning_rate > 0):
            raise OptionError(f"learning_rate must be > 0; received {self.learning_rate!r}")
        if self.precision not in PRECISIONS:
            raise OptionError(
                f"unknown precision {self.precision!r}; expected one of: {', '.join(PRECISIONS)}"
            )
        if self.precision.startswith("mixed") and self.prune_sparsity is None:
            raise OptionError(
                f"--precision sets the dtype policy of pruning fine-tuning; received --precision "
                f"{self.precision} without --prune (clustering and QAT fine-tune in float32: "
                "tfmot's k-means and fake-quant ops are float32 only). Drop --precision, or add "
                "--prune"
            )

    def to_cli_args(self) -> list[str]:
        """The ``edgekit compress`` arguments that reproduce this configuration."""
        args = [self.model]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "model" or value is None or value is False:
                continue
            flag = "--" + f.name.replace("_", "-")
            args += [flag] if value is True else [flag, f"{value:g}" if isinstance(value, float)
                                                  else str(value)]
        return args


def _not_number(value) -> bool:
    return isinstance(value, bool) or not isinstance(value, numbers.Real)


def _not_integer(value) -> bool:
    return isinstance(value, bool) or not isinstance(value, numbers.Integral)


def _at_least(name: str, value, minimum: int) -> None:
    if _not_integer(value) or value < minimum:
        raise OptionError(f"{name} must be an integer >= {minimum}; received {value!r}")
