"""``OptimizeConfig``: what ``edgekit optimize`` searches for, declared once.

The options are :class:`edgekit.options.Option` declarations: the flat config's fields and
checks, the CLI's flags (:func:`edgekit.options.click_options`) and the README's table all come
from :data:`OPTIONS`. A value out of range is an :class:`edgekit.errors.OptionError` (exit 2)
before anything is loaded.
"""

from __future__ import annotations

from edgekit.bench import BenchConfig
from edgekit.config import FlatConfig
from edgekit.errors import OptionError
from edgekit.options import Option, markdown_table

OBJECTIVES = ("latency", "size")
RUNTIME_CHOICES = ("litert", "onnxruntime", "both")
# The runtimes each --runtime choice searches.
RUNTIMES = {"litert": ("litert",), "onnxruntime": ("onnxruntime",),
            "both": ("litert", "onnxruntime")}
# What the objective reads off a measured candidate: p50 latency, or the gzipped size (the bytes
# an app store or an OTA update ships; pruning and clustering pay off there, not in the raw size).
OBJECTIVE_FIELDS = {"latency": "p50_ms", "size": "gzip_bytes"}

OPTIONS = (
    Option("max_drop", float, None, "the points of validation accuracy the artifact may "
           "lose against the parent's Keras model", minimum=0, example="0.5", metavar="POINTS"),
    Option("objective", str, "latency", "what the winner minimises among the candidates within "
           "budget: p50 latency, or gzipped size", choices=OBJECTIVES),
    Option("runtime", str, "litert", "the runtime whose artifacts compete: LiteRT (.tflite), "
           "ONNX Runtime (.onnx) or both", choices=RUNTIME_CHOICES),
    Option("threads", int, 1, "the threads of every latency measurement", minimum=1),
    Option("time_budget", float, None, "the minutes the search may take; the layer fallback and "
           "fine-tuning candidates left when it runs out are skipped and named", minimum=0,
           above=True, example="10", metavar="MINUTES", default_text="no limit"),
    Option("finetune", bool, True, "search the fine-tuning candidates (pruning, clustering, "
           "QAT) too", cli=False),
    Option("finetune_epochs", int, 2, "the fine-tuning epochs of each fine-tuning candidate",
           minimum=1),
    Option("calibration_samples", int, 500, "the training samples that calibrate every int8 / "
           "int16x8 candidate (one set, shared)", minimum=1),
    Option("candidates", str, None, "only these candidates, comma-separated (e.g. "
           "tflite-int8,tflite-int8-fallback; a first run's table names them all)",
           metavar="NAMES", default_text="every one"),
    Option("dataset", str, None, "the dataset of a model file (digits, fashion_mnist, "
           "npz:PATH, ...)", aliases=("-d",), default_text="a model folder's own"),
    Option("data_dir", str, None, "the folder holding IDX .gz or .npz files for "
           "fashion_mnist / mnist", path="folder"),
    Option("seed", int, None, "the seed of a model file's validation split, of calibration "
           "and of fine-tuning", minimum=0, default_text="the parent's, or 0"),
    Option("validation_fraction", float, None, "the validation share of a model file's training split", minimum=0, above=True, maximum=0.5, default_text="the parent's, or 0.1"),
    # Set on the command line by the flags every model-reading command shares.
    Option("preprocess", str, None, "the model's input contract", cli=False),
    Option("custom_objects", str, None, "the module of the model's custom layers", cli=False),
    Option("unsafe_deserialization", bool, False, "let a trusted model file run its code",
           cli=False),
    Option("bench_options", dict, None, "edgekit.bench timing options of every latency "
           "measurement (warmup_runs, min_runs, min_seconds, ...)", cli=False),
)


class OptimizeConfig(FlatConfig):
    """The options of one search (see :data:`OPTIONS` for each one's meaning and range).

    ``model`` is the parent, as ``edgekit compress`` takes it.

    Example:
        >>> OptimizeConfig.from_options({"model": "models/cnn-digits", "max_drop": 0.5}).objective
        'latency'
    """

    kind = "optimization"
    OPTIONS = (Option("model", str, "", "The model to optimize.", cli=False, label="field"),
               *OPTIONS)

    @property
    def runtimes(self) -> tuple[str, ...]:
        return RUNTIMES[self.runtime]

    @property
    def objective_field(self) -> str:
        """The candidate record field the objective minimises (``p50_ms`` or ``gzip_bytes``)."""
        return OBJECTIVE_FIELDS[self.objective]

    @property
    def time_budget_seconds(self) -> float | None:
        return None if self.time_budget is None else self.time_budget * 60

    def candidate_names(self) -> list[str] | None:
        """The names ``candidates`` restricts the search to (None: every candidate)."""
        if self.candidates is None:
            return None
        return [name.strip() for name in self.candidates.split(",") if name.strip()]

    def validate(self) -> None:
        """Raise OptionError for a missing budget, a value out of range or a bad choice."""
        if self.max_drop is None:
            raise OptionError("no accuracy budget given; expected --max-drop POINTS, the points "
                              "of validation accuracy the artifact may lose (>= 0). Example: "
                              "edgekit optimize MODEL --max-drop 0.5")
        super().validate()
        if self.candidates is not None and not self.candidate_names():
            raise OptionError("--candidates names no candidate; expected comma-separated names "
                              "such as tflite-int8,tflite-fp16, or drop --candidates")
        if self.bench_options is not None:
            # Checked here so a bad timing option is exit 2 before the parent loads.
            BenchConfig.from_options(dict(self.bench_options))


def option_table() -> str:
    """The README's table of ``edgekit optimize`` options, from the declarations."""
    return markdown_table(OPTIONS)
