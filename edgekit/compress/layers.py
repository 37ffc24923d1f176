"""Which layers each technique handles: one table per technique, read before any work starts.

A technique declares a :class:`LayerTable` in its own module and registers it here. Per table
a layer class is
- ``COMPRESS``: the technique acts on it (prunes or clusters its kernel, fake-quantizes it);
- ``KEEP``: it stays as it is (no weights the technique touches, or left in float during QAT and
  quantized by calibration at conversion);
- absent: unsupported. Any such layer stops the run with one error naming it, before a
  fine-tuning epoch is spent; post-training quantization applies to any TFLite-convertible model.

A user's custom layer (a class not in any table) gets a technique only through the table's
``custom_interface`` (tfmot's ``PrunableLayer``, ``ClusterableLayer``, a ``quantize_config``);
otherwise it is left alone and the manifest names it. :data:`LAYER_SUPPORT` is the view of all
tables side by side (``LAYER_SUPPORT["Conv2D"]["qat"]``); ``tests/unit/compress`` checks it
against tfmot's own registries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

from edgekit.errors import ModelError
from edgekit.registry import Registry

COMPRESS = "compress"
KEEP = "keep"
# Layers with no weights any technique prunes or clusters: activations, merging, pooling,
# reshaping, dropout, preprocessing. A table lists the ones it keeps or acts on.
WEIGHTLESS_LAYERS = (
    "InputLayer", "ReLU", "LeakyReLU", "Activation", "Softmax", "Add", "Concatenate", "Multiply",
    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "ZeroPadding2D", "UpSampling2D", "Flatten", "Reshape", "Permute",
    "Dropout", "SpatialDropout2D", "Resizing", "Rescaling",
)
PTQ_STILL_APPLIES = ("post-training quantization (--int8, --int16x8, --dynamic, --fp16) still "
                     "applies to any TFLite-convertible model")


@dataclass(frozen=True)
class LayerTable:
    """The layer classes one technique acts on and keeps; any other class is unsupported.

    Attributes:
        technique: the table's name (``prune``, ``prune_m_by_n``, ``cluster``, ``qat``).
        flag: how the technique is spelled on the command line, for messages.
        compress: the classes it acts on.
        keep: the classes it leaves as they are.
        custom_interface: ``custom_interface(layer)`` says whether a user's custom layer opts in
            (implements tfmot's interface for the technique); None: custom layers are kept.
    """

    technique: str
    flag: str
    compress: tuple[str, ...]
    keep: tuple[str, ...]
    custom_interface: Callable[[object], bool] | None = None

    def role(self, class_name: str) -> str | None:
        if class_name in self.compress:
            return COMPRESS
        return KEEP if class_name in self.keep else None


LAYER_TABLES: Registry[LayerTable] = Registry("layer table")


def register_layer_table(table: LayerTable) -> LayerTable:
    return LAYER_TABLES.register(table.technique)(table)


class _LayerSupport(Mapping):
    """Layer class -> {table: role}, across every registered table (a live view)."""

    def _classes(self) -> list[str]:
        tables = [LAYER_TABLES.get(name) for name in LAYER_TABLES.names()]
        return list(dict.fromkeys(name for table in tables for name in (*table.compress, *table.keep)))

    def __getitem__(self, class_name: str) -> dict[str, str | None]:
        if class_name not in self._classes():
            raise KeyError(class_name)
        return {name: LAYER_TABLES.get(name).role(class_name) for name in LAYER_TABLES.names()}

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes())

    def __len__(self) -> int:
        return len(self._classes())


LAYER_SUPPORT: Mapping[str, dict[str, str | None]] = _LayerSupport()


def is_custom_layer(layer) -> bool:
    """A layer class the user wrote (passed with --custom-objects), not one of Keras' own."""
    module = type(layer).__module__ or ""
    return not module.startswith(("tf_keras.", "keras.", "tensorflow.", "tensorflow_model_optimization."))


def _is_users_own(layer) -> bool:
    return (type(layer).__name__ not in LAYER_SUPPORT and is_custom_layer(layer)
            and not hasattr(layer, "layers"))


def custom_layer_role(layer, technique: str) -> str:
    """A custom layer gets a technique only through tfmot's interface for it; else it is left alone."""
    interface = LAYER_TABLES.get(technique).custom_interface
    return COMPRESS if interface is not None and interface(layer) else KEEP


def role(layer, technique: str) -> str | None:
    """COMPRESS, KEEP or None (unsupported) for one layer instance."""
    if _is_users_own(layer):
        return custom_layer_role(layer, technique)
    return LAYER_TABLES.get(technique).role(type(layer).__name__)


def custom_layers_left_alone(model, technique: str) -> list[str]:
    """Names of the user's custom layers the technique leaves as they are (no tfmot interface)."""
    return [layer.name for layer in getattr(model, "layers", [])
            if _is_users_own(layer) and role(layer, technique) == KEEP]


def layers_to_compress(model, technique: str) -> list:
    """The model's layers the technique acts on, after :func:`check_layers`."""
    return [layer for layer in model.layers if role(layer, technique) == COMPRESS]


def check_layers(model, technique: str) -> None:
    """Raise ModelError naming the first layer ``technique`` cannot handle.

    Raises:
        ModelError: for a subclassed model, a nested model or a layer absent from the table.
    """
    table = LAYER_TABLES.get(technique)
    flag = table.flag
    if not hasattr(model, "layers"):
        return  # not a Keras model at all: check_single_input_output says so
    if not getattr(model, "_is_graph_network", False) and type(model).__name__ != "Sequential":
        raise ModelError(
            f"{flag} cannot handle model {model.name!r}: it is a subclassed "
            f"{type(model).__name__} whose layers run from Python code, so they cannot be "
            f"wrapped; {PTQ_STILL_APPLIES}. Rebuild it as a functional model for {flag}"
        )
    unsupported = [layer for layer in model.layers if role(layer, technique) is None]
    if not unsupported:
        return
    first = unsupported[0]
    kind = type(first).__name__
    more = f" (and {len(unsupported) - 1} more layer(s))" if len(unsupported) > 1 else ""
    why = "a model nested inside the model" if hasattr(first, "layers") else f"a {kind} layer"
    raise ModelError(
        f"{flag} cannot handle layer {first.name!r} ({why}){more}: edgekit's {flag} supports "
        f"{', '.join(sorted(table.compress))} and weightless layers; {PTQ_STILL_APPLIES}. Drop "
        f"{flag}, or replace that layer"
    )
