"""The input contract: what a model's raw input looks like and how it becomes model input.

A model folder records it once; every stage (accuracy, calibration, fine-tuning, fidelity, bench,
the Triton config, the mobile bundle, ``edgekit infer``) uses that one record. It is decided in
this order and never guessed:

1. stated by the user: ``--preprocess scale=S,mean=M,std=D`` (per-channel lists allowed) or
   ``--preprocess none``;
2. read from the model: leading ``Rescaling`` / ``Normalization`` layers mean it takes raw data;
3. recorded in the model folder's manifest (a compressed child inherits its parent's);
4. chosen by ``edgekit train`` for a model it builds (standardisation fitted on the training split);
5. otherwise a model file is refused with the data's value range and the flag to pass.

Example:
    >>> contract = resolve_contract(dataset, stated="scale=0.0625", model_source="'m.h5'")
    >>> contract.line()
    'input contract: raw (8, 8, 1) float32 in [0, 16] -> (x * 0.0625 - 0) / 1 (from --preprocess)'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.data.base import Preprocessing
from edgekit.errors import OptionError

STATED, MODEL, MANIFEST, TRAIN = "stated", "model", "manifest", "train"
PREPROCESSING_LAYERS = ("Rescaling", "Normalization")
FLAG_EXAMPLE = ("--preprocess scale=S,mean=M,std=D (e.g. scale=0.00392 for x / 255; per-channel "
                "mean=0.49,0.48,0.45) or --preprocess none")


@dataclass(frozen=True)
class InputContract:
    """The preprocessing a model's raw input gets, where that was decided, and the raw data seen.

    Attributes:
        preprocessing: raw -> model input; the identity when the model takes raw data.
        source: ``stated``, ``model``, ``manifest`` or ``train``.
        detail: where exactly, for people (``--preprocess``, ``layer 'rescaling' (Rescaling)``...).
        raw: ``{"shape", "dtype", "min", "max"}`` of the raw samples the contract was decided on.
    """

    preprocessing: Preprocessing
    source: str
    detail: str
    raw: dict
    origin: str = ""  # for a recorded contract: where it was first decided (e.g. --preprocess)

    @property
    def takes_raw(self) -> bool:
        return self.preprocessing.identity

    def line(self) -> str:
        """One line for the terminal: the contract and where it came from."""
        raw = self.raw or {}
        shape = "(" + ", ".join(str(size) for size in raw.get("shape", [])) + ")"
        low, high = raw.get("min"), raw.get("max")
        span = f" in [{low:.6g}, {high:.6g}]" if low is not None and high is not None else ""
        target = ("the model takes them as they are" if self.takes_raw
                  else f"model input = {self.preprocessing.describe()}")
        first = f", first decided by {self.origin}" if self.origin else ""
        return (f"input contract: raw {shape} {raw.get('dtype', '?')}{span}; {target} "
                f"(from {self.detail}{first})")

    def to_dict(self) -> dict:
        return {"preprocessing": self.preprocessing.to_dict(), "takes_raw": self.takes_raw,
                "source": self.source, "detail": self.detail, "origin": self.origin or self.detail,
                "raw": dict(self.raw or {})}

    @classmethod
    def from_dict(cls, values: dict) -> "InputContract":
        return cls(preprocessing=Preprocessing.from_dict(values["preprocessing"]),
                   source=str(values.get("source", MANIFEST)),
                   detail=str(values.get("detail", "a manifest")), raw=dict(values.get("raw") or {}),
                   origin=str(values.get("origin") or ""))


def parse_preprocess(spec, channels: int | None = None, flag: str = "--preprocess") -> Preprocessing:
    """``none``, ``scale=S,mean=M,std=D`` (lists per channel), a dict or a Preprocessing.

    ``mean=0.49,0.48,0.45`` is a per-channel list: a bare number after a ``key=value`` belongs to
    that key. ``channels`` (the samples' last axis) checks a list's length.

    Raises:
        OptionError: for a malformed spec, an unknown key, a number that is not finite, a zero
            scale or std, or a per-channel list whose length is not ``channels``.
    """
    if isinstance(spec, Preprocessing):
        preprocessing = spec
    elif isinstance(spec, dict):
        unknown = set(spec) - {"scale", "mean", "std", "formula", "none"}
        if unknown:
            raise OptionError(f"preprocess= takes scale, mean and std; received keys "
                              f"{sorted(unknown)}. Example: preprocess={{'scale': 1 / 255}}")
        preprocessing = _build({key: spec[key] for key in ("scale", "mean", "std") if key in spec},
                               repr(spec), flag)
    elif isinstance(spec, str):
        preprocessing = _parse_text(spec.strip(), flag)
    else:
        raise OptionError(f"{flag} must be text such as 'scale=0.0625' or 'none'; received "
                          f"{spec!r}. Use {FLAG_EXAMPLE}")
    _check_values(preprocessing, str(spec), channels, flag)
    return preprocessing


def preprocess_text(spec) -> str | None:
    """The canonical ``--preprocess`` text of a spec (text, dict or Preprocessing), for configs."""
    if spec is None:
        return None
    preprocessing = parse_preprocess(spec)
    if preprocessing.identity:
        return "none"

    def numbers(value):
        return ",".join(f"{v:.9g}" for v in np.atleast_1d(value))

    return (f"scale={preprocessing.scale:.9g},mean={numbers(preprocessing.mean)},"
            f"std={numbers(preprocessing.std)}")


def _parse_text(text: str, flag: str) -> Preprocessing:
    if text.lower() == "none":
        return Preprocessing()
    values: dict[str, list[str]] = {}
    key = None
    for part in (piece.strip() for piece in text.split(",")):
        if "=" in part:
            key, _, number = part.partition("=")
            key = key.strip().lower()
            if key not in ("scale", "mean", "std"):
                raise OptionError(f"{flag} knows scale, mean and std; received {key!r} in "
                                  f"{text!r}. Use {FLAG_EXAMPLE}")
            if key in values:
                raise OptionError(f"{flag} names {key} twice in {text!r}; give it once "
                                  "(per-channel values as mean=0.49,0.48,0.45)")
            values[key] = [number.strip()]
        elif key is not None and part:
            values[key].append(part)
        else:
            raise OptionError(f"{flag} takes scale=S,mean=M,std=D or none; received {text!r}. "
                              f"Use {FLAG_EXAMPLE}")
    if not values:
        raise OptionError(f"{flag} is empty; expected scale=S,mean=M,std=D or none. "
                          f"Use {FLAG_EXAMPLE}")
    return _build(values, repr(text), flag)


def _build(values: dict, shown: str, flag: str) -> Preprocessing:
    parsed = {}
    for key, value in values.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        try:
            numbers = [float(item) for item in items]
        except (TypeError, ValueError) as error:
            raise OptionError(f"{flag} {key} must be numbers; received {shown}. "
                              f"Use {FLAG_EXAMPLE}") from error
        if key == "scale" and len(numbers) != 1:
            raise OptionError(f"{flag} scale is one number; received {len(numbers)} in {shown}. "
                              "Per-channel values go in mean and std")
        parsed[key] = numbers[0] if len(numbers) == 1 else tuple(numbers)
    return Preprocessing(**parsed)


def _check_values(preprocessing: Preprocessing, shown: str, channels: int | None, flag: str) -> None:
    for key in ("scale", "mean", "std"):
        for value in np.atleast_1d(getattr(preprocessing, key)):
            if not math.isfinite(float(value)):
                raise OptionError(f"{flag} {key} must be finite; received {shown}")
    if preprocessing.scale == 0:
        raise OptionError(f"{flag} scale=0 would turn every input into the same value; received "
                          f"{shown}. Pass the factor that maps raw values to the model's range")
    if any(float(value) == 0 for value in np.atleast_1d(preprocessing.std)):
        raise OptionError(f"{flag} std must not be 0 (it divides); received {shown}. "
                          "Pass the data's standard deviation, or std=1")
    for key in ("mean", "std"):
        value = getattr(preprocessing, key)
        if isinstance(value, tuple) and channels is not None and len(value) != channels:
            raise OptionError(f"{flag} {key} has {len(value)} values; the samples have {channels} "
                              f"channel(s) (their last axis). Give one {key} per channel, or one "
                              f"number for all; received {shown}")


def raw_description(dataset) -> dict:
    """Shape, stored dtype and value range of the dataset's raw training samples."""
    x = dataset.x_train if len(dataset.x_train) else dataset.x_test
    low = float(np.min(x)) if x.size else None
    high = float(np.max(x)) if x.size else None
    return {"shape": list(dataset.sample_shape), "dtype": getattr(dataset, "raw_dtype", "float32"),
            "min": low, "max": high}


def leading_preprocessing_layers(model) -> list[tuple[str, str]]:
    """``(name, class)`` of the Rescaling / Normalization layers a model starts with.

    Works on tf-keras and Keras 3 models; a nested model at the start is looked into. Layers are
    in graph order, so the first non-input layers are the ones fed by the input.
    """
    found = []
    for layer in getattr(model, "layers", []):
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if kind in PREPROCESSING_LAYERS:
            found.append((layer.name, kind))
            continue
        if hasattr(layer, "layers") and not found:
            found.extend(leading_preprocessing_layers(layer))
        break
    return found


def record_of(manifest: dict | None) -> InputContract | None:
    """The contract a model folder's manifest recorded (older manifests: their preprocessing)."""
    if not isinstance(manifest, dict):
        return None
    dataset = manifest.get("dataset") if isinstance(manifest.get("dataset"), dict) else {}
    recorded = manifest.get("input_contract") or dataset.get("input_contract")
    if isinstance(recorded, dict) and "preprocessing" in recorded:
        return InputContract.from_dict(recorded)
    if isinstance(dataset.get("preprocessing"), dict):
        return InputContract(Preprocessing.from_dict(dataset["preprocessing"]), MANIFEST,
                             "the manifest's dataset preprocessing", {})
    return None


def recorded_beside(model_file) -> tuple[InputContract | None, str]:
    """The contract of the edgekit model folder a model file sits in (its manifest names it)."""

    path = Path(model_file)
    manifest_path = path.parent / "manifest.json"
    if not manifest_path.is_file():
        return None, ""
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None, ""
    model = manifest.get("model") if isinstance(manifest, dict) else None
    if not isinstance(model, dict) or model.get("file", "model.keras") != path.name:
        return None, ""
    return record_of(manifest), str(manifest_path)


def resolve_contract(dataset, *, stated=None, model_layers=(), recorded: InputContract | None = None,
                     recorded_in: str = "", trained_here: bool = False,
                     model_source: str = "the model") -> InputContract:
    """Decide the input contract once, in the documented order.

    Args:
        dataset: the :class:`edgekit.data.Dataset` the run uses (its raw samples).
        stated: ``--preprocess`` as given (text, dict or Preprocessing), or None.
        model_layers: from :func:`leading_preprocessing_layers`.
        recorded: the model folder's recorded contract, or None.
        recorded_in: where ``recorded`` was read (a manifest path), for messages.
        trained_here: True for a model ``edgekit train`` builds: its fitted standardisation.
        model_source: how messages name the model.

    Raises:
        OptionError: for a bad ``stated``, a ``stated`` that contradicts the model's own
            preprocessing layers or the folder's record, or a model file with nothing to go by.
    """
    raw = raw_description(dataset)
    channels = dataset.sample_shape[-1] if dataset.sample_shape else None
    layers = ", ".join(f"{name!r} ({kind})" for name, kind in model_layers)
    if stated is not None:
        preprocessing = parse_preprocess(stated, channels)
        if model_layers and not preprocessing.identity:
            raise OptionError(
                f"--preprocess {preprocessing.describe()} contradicts {model_source}, whose own "
                f"layer {layers} already maps raw data to its input; scaling it again would feed "
                "it the wrong range. Drop --preprocess, or pass --preprocess none")
        if recorded is not None and not _same(recorded.preprocessing, preprocessing):
            raise OptionError(
                f"--preprocess {preprocessing.describe()} contradicts {model_source}, recorded in "
                f"{recorded_in or 'its manifest'} as taking {recorded.preprocessing.describe()}; "
                "a model's input contract never changes. Drop --preprocess")
        return InputContract(preprocessing, STATED, "--preprocess", raw)
    if model_layers:
        return InputContract(Preprocessing(), MODEL, f"layer {layers} inside {model_source}", raw)
    if recorded is not None:
        origin = recorded.origin or recorded.detail
        return InputContract(recorded.preprocessing, MANIFEST, recorded_in or recorded.detail, raw,
                             origin=origin if origin != recorded_in else "")
    if trained_here:
        return InputContract(dataset.preprocessing, TRAIN,
                             "edgekit train (standardised on the training split)", raw)
    high = raw["max"]
    hint = f"scale={1 / high:.6g} (x / {high:g})" if high and high > 1 else "scale=S"
    span = f"[{raw['min']:.6g}, {high:.6g}]" if high is not None else "(no samples)"
    raise OptionError(
        f"{model_source} does not say how its input is scaled: no --preprocess, no leading "
        f"Rescaling / Normalization layer, no edgekit manifest. Dataset {dataset.name!r} holds raw "
        f"{raw['dtype']} values in {span}. Pass how you scaled them in training, e.g. "
        f"--preprocess {hint}, --preprocess scale=S,mean=M,std=D, or --preprocess none if the "
        "model takes these values as they are")


def _same(first: Preprocessing, second: Preprocessing) -> bool:
    """Equal up to float noise; a scalar equals a per-channel list of that value."""
    return all(np.allclose(np.atleast_1d(getattr(first, key)), np.atleast_1d(getattr(second, key)),
                           rtol=1e-6, atol=1e-9) for key in ("scale", "mean", "std"))
