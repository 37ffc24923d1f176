"""``CompressConfig``: everything that decides what ``edgekit compress`` computes, flat and plain.

Its fields are the options every run shares (the parent, its data, fine-tuning) plus the options
each registered technique declares in its own module, so a technique registered later (a
plug-in, a test) adds its fields, checks, recipe part and CLI flags without touching this file.
The CLI and the Python API build the same config; ``to_cli_args`` gives back the command that
reproduces a run, and the manifest stores ``to_dict()``.
"""

from __future__ import annotations

from edgekit.compress.stages import TECHNIQUES, techniques
from edgekit.config import PRECISIONS, FlatConfig
from edgekit.errors import OptionError
from edgekit.options import Option, markdown_table

# The parent and its data (None: the parent folder's own; see edgekit.compress.parent).
_SOURCE_OPTIONS = (
    Option("model", str, "", "The model to compress.", cli=False, label="field"),
    Option("dataset", str, None, "Dataset of a model file (digits, fashion_mnist, npz:PATH, ...).",
           aliases=("-d",), default_text="a model folder's own", label="field"),
    Option("data_dir", str, None, "Folder holding IDX .gz or .npz files for fashion_mnist / "
           "mnist.", path="folder", label="field"),
    Option("seed", int, None, "Seed of a model file's validation split and of fine-tuning.",
           minimum=0, default_text="the parent's, or 0", label="field"),
    Option("validation_fraction", float, None, "Validation share of a model file's training "
           "split.", minimum=0, above=True, maximum=0.5, default_text="the parent's, or 0.1",
           label="field"),
    Option("batch_size", int, None, "Fine-tuning batch size.", minimum=1,
           default_text="the parent's", label="field"),
)
# How the parent loads: set on the command line by the flags every model-reading command shares.
_LOADING_OPTIONS = (
    Option("preprocess", str, None, "The model's input contract.", cli=False, label="field"),
    Option("custom_objects", str, None, "The module of the model's custom layers.", cli=False,
           label="field"),
    Option("unsafe_deserialization", bool, False, "Let a trusted model file run its code.",
           cli=False, label="field"),
)


def _fine_tuning_options(declared: list) -> tuple[Option, ...]:
    rates = ", ".join(f"{technique.name} {technique.learning_rate:g}" for technique in declared
                      if technique.learning_rate is not None)
    return (
        Option("finetune_epochs", int, 2, "Fine-tuning epochs of the techniques that fine-tune.",
               minimum=1, label="field"),
        Option("learning_rate", float, None, "Fine-tuning learning rate (Adam).", minimum=0,
               above=True, aliases=("--lr",), default_text=rates or None, label="field"),
        Option("precision", str, "auto", "Keras dtype policy of --prune fine-tuning (as in "
               "train; clustering and QAT run in float32).", choices=PRECISIONS, label="field"),
    )


class CompressConfig(FlatConfig):
    """The options of one compression run.

    ``model`` is the parent: a model folder from ``edgekit train`` / ``compress`` or a .keras /
    .h5 / SavedModel path. ``dataset``, ``data_dir``, ``seed``, ``validation_fraction`` and
    ``batch_size`` default to the parent folder's (a model file needs ``dataset``). Then come
    the registered techniques' options (``prune``, ``prune_structure``, ``cluster``, ``qat``,
    ``int8``, ``int8_io``, ``dynamic``, ``fp16``, ``int16x8``, ``calibration_samples``; see
    :func:`option_table`). ``finetune_epochs`` and ``learning_rate`` (Adam; None = each
    technique's own ``learning_rate``) drive the fine-tuning of the techniques that fine-tune;
    ``precision`` is the Keras dtype policy of pruning fine-tuning (clustering and QAT run in
    float32).

    Example:
        >>> CompressConfig.from_options({"model": "models/cnn-digits", "prune": 0.8, "qat": True}).recipe()
        'prune80-qat'
    """

    kind = "compression"

    @classmethod
    def options(cls) -> list[Option]:
        """The shared options and every registered technique's, in the order techniques run."""
        declared = techniques()
        found = [*_SOURCE_OPTIONS, *(option for technique in declared
                                     for option in technique.options),
                 *_fine_tuning_options(declared), *_LOADING_OPTIONS]
        owners: dict[str, str] = {}
        for technique in declared:
            for option in technique.options:
                if option.name in owners or option.name in _SHARED_NAMES:
                    raise OptionError(
                        f"compression technique {technique.name!r} declares option "
                        f"{option.name!r}, which {owners.get(option.name, 'compress itself')!r} "
                        "declares already; rename the technique's option")
                owners[option.name] = technique.name
        return found

    @property
    def tflite_mode(self) -> str:
        """The TFLite conversion mode: the first one a wanted technique decides (QAT: int8,
        else the post-training quantization flag); fp32 when none does."""
        for technique in techniques():
            mode = technique.wanted(self) and technique.conversion(self)
            if mode:
                return mode
        return "fp32"

    @property
    def fine_tunes(self) -> bool:
        return any(technique.fine_tunes(self) for technique in techniques())

    def learning_rate_for(self, technique: str) -> float:
        """The fine-tuning learning rate of one technique."""
        return self.learning_rate or TECHNIQUES.get(technique).learning_rate

    def recipe(self) -> str:
        """The output folder suffix, e.g. ``int8``, ``prune80-qat``, ``cluster16-int8``."""
        return "-".join(part for technique in techniques() if technique.wanted(self)
                        for part in technique.recipe(self))

    def technique_flags(self) -> list[str]:
        """The flags given that ask for a technique (``--prune``, ``--int8``)."""
        return [option.flag for technique in techniques() for option in technique.given(self)]

    def validate(self) -> None:
        """Raise OptionError for values out of range and flags that contradict each other."""
        if not isinstance(self.model, str) or not self.model:
            raise OptionError("no model to compress; pass a model folder from edgekit train or a "
                              ".keras / .h5 / SavedModel path")
        super().validate()
        declared = techniques()
        for technique in declared:
            technique.validate(self)
        if not any(technique.asked(self) for technique in declared):
            flags = [option.flag for technique in declared
                     for option in technique.selecting_options()]
            raise OptionError(
                f"no compression technique given; expected one or more of {', '.join(flags)}. "
                "Example: edgekit compress MODEL --int8"
            )

    def to_cli_args(self) -> list[str]:
        """The ``edgekit compress`` arguments that reproduce this configuration."""
        return [self.model, *self.option_args(skip=("model",))]


_SHARED_NAMES = frozenset(option.name for option in (*_SOURCE_OPTIONS, *_fine_tuning_options([]),
                                                     *_LOADING_OPTIONS))


def option_table() -> str:
    """The README's table of ``edgekit compress`` options, from the declarations; each
    technique's options name it."""
    owners = {option.name: technique.name for technique in techniques()
              for option in technique.options}
    return markdown_table(CompressConfig.options(), owners=owners)
