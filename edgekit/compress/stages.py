"""The compression techniques' shared shape: what a technique declares, gets and returns.

A technique is a small class registered in :data:`TECHNIQUES`. Everything about it lives in its
own module and is declared on the class (see :class:`Technique`):

- ``options``: its :class:`edgekit.options.Option` values, which become fields of the flat
  :class:`edgekit.compress.config.CompressConfig`, flags of ``edgekit compress`` and rows of
  the README's option table;
- ``order``: its place in the sound order (prune 10 -> cluster 20 -> QAT 30 -> conversion 90):
  sparsity first, clustering (sparsity-preserving) on the pruned weights, fake quantization
  (preserving both) last, then the TFLite conversion with its post-training quantization;
- ``learning_rate``: the Adam learning rate of its fine-tuning (None: it does not fine-tune);
- ``recipe(config)``: its part of the output folder's name (``prune80``);
- ``validate(config)``: the contradictions that involve it;
- ``layer_table(config)``: the :mod:`edgekit.compress.layers` table it checks a model against;
- ``apply(model, context)``: the work, returning a :class:`StageResult`.

A user's own technique is one module that subclasses :class:`Technique` and registers it;
named in ``EDGEKIT_PLUGINS`` (or an ``edgekit.plugins`` entry point), it is loaded before the
techniques are read (:func:`edgekit.registry.load_plugins`).

Example:
    >>> @TECHNIQUES.register("round")
    ... class RoundWeights(Technique):
    ...     order = 40
    ...     options = (Option("round_weights", int, None, "decimals kept", minimum=0),)
    ...     def apply(self, model, context):
    ...         ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.compress.layers import check_layers
from edgekit.options import Option
from edgekit.registry import Registry, load_plugins

TECHNIQUES: Registry[type] = Registry("compression technique")


class Technique:
    """The base of a compression technique: its declarations, with defaults, and its work.

    A subclass sets ``options`` (and ``order``, ``learning_rate`` when it fine-tunes) and
    implements :meth:`apply`; the defaults make it wanted when one of its options is given and
    name its recipe part after them (``--round-weights 3`` -> ``roundweights3``).
    """

    name: str = ""
    order: int = 50
    options: tuple[Option, ...] = ()
    # The options that ask for the technique (None: all of them); the others only modify it.
    selectors: tuple[str, ...] | None = None
    learning_rate: float | None = None

    def selecting_options(self) -> list[Option]:
        return [option for option in self.options
                if self.selectors is None or option.name in self.selectors]

    def given(self, config) -> list[Option]:
        """The selecting options ``config`` sets."""
        return [option for option in self.selecting_options()
                if _set(getattr(config, option.name, None))]

    def asked(self, config) -> bool:
        """Whether the user asked for this technique."""
        return bool(self.given(config))

    def wanted(self, config) -> bool:
        """Whether it runs (a technique every run needs says True without being asked)."""
        return self.asked(config)

    def fine_tunes(self, config) -> bool:
        return self.learning_rate is not None and self.wanted(config)

    def recipe(self, config) -> list[str]:
        """Its parts of the output folder's name."""
        parts = []
        for option in self.options:
            value = getattr(config, option.name, None)
            if not _set(value):
                continue
            word = option.name.replace("_", "")
            shown = "" if value is True else (f"{value:g}" if isinstance(value, float) else str(value))
            parts.append((word + shown).replace(".", "p").replace(":", "of"))
        return parts

    def validate(self, config) -> None:
        """Raise OptionError for options that contradict each other (each value is already
        checked against its declaration)."""

    def conversion(self, config) -> str | None:
        """The TFLite conversion mode this technique needs, if it decides one."""
        return None

    def layer_table(self, config) -> str | None:
        """The name of the layer table it checks models against (None: any model)."""
        return None

    def check(self, model, config) -> None:
        """Raise before any work when the model has a layer the technique cannot handle."""
        table = self.layer_table(config)
        if table is not None:
            check_layers(model, table)

    def apply(self, model, context: StageContext) -> StageResult:
        raise NotImplementedError(f"technique {self.name!r} does not implement apply()")


def _set(value) -> bool:
    return value is not None and value is not False  # 0 and 0.0 are values (--prune 0)


def techniques() -> list[Technique]:
    """One instance of every registered technique (plug-ins loaded first), in their order."""
    load_plugins()
    found = []
    for name in TECHNIQUES.names():
        technique = TECHNIQUES.get(name)()
        technique.name = name
        found.append(technique)
    return sorted(found, key=lambda technique: (technique.order, technique.name))


@dataclass
class StageContext:
    """What every stage may read: the run's config, its data and the stages already applied."""

    config: Any  # edgekit.compress.config.CompressConfig
    dataset: Any  # edgekit.data.Dataset
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    batch_size: int
    seed: int
    policy: str  # Keras dtype policy of pruning fine-tuning
    from_logits: bool
    calibration: np.ndarray | None = None
    progress: bool = False
    applied: dict[str, dict] = field(default_factory=dict)  # stage name -> its record


@dataclass
class StageResult:
    """A stage's output.

    Attributes:
        model: what the next stage works on (a QAT model keeps its fake-quant wrappers).
        record: what the manifest keeps about the stage (options, layers, fine-tuning history).
        keras_model: the plain tf-keras model to save as model.keras, when it differs from
            ``model`` (QAT: the float model holding the fine-tuned weights).
        tflite: the .tflite bytes, from the conversion stage.
        save: ``save(folder)`` writes the stage's own files into the model folder and returns
            what the manifest's ``model`` section records about them (QAT: its QAT model).
    """

    model: Any
    record: dict
    keras_model: Any = None
    tflite: bytes | None = None
    save: Callable[[Path], dict] | None = None


def wanted_stages(config) -> list[Technique]:
    """The techniques ``config`` asks for (and the conversion every run ends with), in order."""
    return [technique for technique in techniques() if technique.wanted(config)]
