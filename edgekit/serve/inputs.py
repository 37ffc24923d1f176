"""Turning an image or a .npy file into the batch a served model expects.

Where the preprocessing comes from, in order (``--preprocess``):

* ``auto`` (default): the model config's ``parameters`` entry ``edgekit_preprocessing`` (JSON with
  scale, mean, std) when the served config carries one. The client may run far from the
  repository, so the server is the one place it can always ask; Triton's metadata has no field for
  normalization. A .npy file is otherwise sent as it is (taken as model-ready), and an image is
  refused rather than guessed at.
* a model folder (or its ``manifest.json``) from ``edgekit train`` / ``compress``: the
  preprocessing recorded in its manifest, the same the model was trained and exported with.
* ``scale=S,mean=M,std=D``: the numbers themselves.
* ``none``: images as pixels / 255, .npy files as they are.

Images are read with Pillow, converted to grey or RGB to match the input's channels, resized
(bilinear) to its height and width, and mapped to ``pixel / 255``, which is ``x_raw * scale`` for
every edgekit dataset (raw values span ``0 .. 1/scale``); then ``(v - mean) / std``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.data.base import Preprocessing
from edgekit.errors import DataError, OptionError

CONFIG_PARAMETER = "edgekit_preprocessing"


@dataclass(frozen=True)
class ResolvedPreprocessing:
    """The preprocessing to apply (None: nothing known) and where it came from, for the user."""

    preprocessing: Preprocessing | None
    source: str
    known: bool


def resolve_preprocessing(spec: str, model_config: dict | None = None) -> ResolvedPreprocessing:
    """Decide the preprocessing from ``--preprocess`` and the served model's config.

    Raises:
        OptionError: for a spec that is none of auto, none, KEY=VALUE numbers or a model folder.
    """
    spec = (spec or "auto").strip()
    if spec == "none":
        return ResolvedPreprocessing(None, "none (--preprocess none)", True)
    if spec == "auto":
        found = _from_config(model_config or {})
        if found is not None:
            return ResolvedPreprocessing(found, "the served model config", True)
        return ResolvedPreprocessing(None, "unknown (the served config records none)", False)
    if "=" in spec:
        return ResolvedPreprocessing(_from_numbers(spec), "--preprocess", True)
    path = Path(spec).expanduser()
    if path.exists():
        return ResolvedPreprocessing(_from_manifest(path), str(path), True)
    raise OptionError(
        f"--preprocess {spec!r} is neither auto, none, scale=S,mean=M,std=D nor an existing model "
        "folder or manifest.json; e.g. --preprocess models/cnn-digits"
    )


def _from_config(config: dict) -> Preprocessing | None:
    entry = (config.get("parameters") or {}).get(CONFIG_PARAMETER)
    if not entry:
        return None
    text = entry.get("string_value", "") if isinstance(entry, dict) else str(entry)
    try:
        return Preprocessing.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError):
        raise OptionError(f"the served config's {CONFIG_PARAMETER} parameter is not JSON with scale, "
                          f"mean and std ({text!r}); pass --preprocess explicitly") from None


def _from_numbers(spec: str) -> Preprocessing:
    from edgekit.cli.common import parse_key_values

    values = parse_key_values(tuple(part for part in spec.split(",") if part), "--preprocess")
    unknown = set(values) - {"scale", "mean", "std"}
    if unknown or not values:
        raise OptionError(f"--preprocess takes scale=S,mean=M,std=D; received {spec!r}")
    try:
        return Preprocessing(**{key: float(value) for key, value in values.items()})
    except (TypeError, ValueError):
        raise OptionError(f"--preprocess numbers must be numbers; received {spec!r}") from None


def _from_manifest(path: Path) -> Preprocessing:
    from edgekit.manifest import read_manifest

    manifest = read_manifest(path.parent if path.is_file() else path)
    try:
        return Preprocessing.from_dict(manifest["dataset"]["preprocessing"])
    except (KeyError, TypeError, ValueError):
        raise OptionError(f"{path} records no dataset preprocessing; pass --preprocess scale=S,mean=M,std=D") from None


def load_batch(path: str | os.PathLike, input_shape: list[int], dtype: str,
               resolved: ResolvedPreprocessing) -> np.ndarray:
    """Read ``path`` (an image or a .npy file) as a batch for an input of ``input_shape``.

    Args:
        path: the file.
        input_shape: the input's shape without the batch dimension, e.g. ``[28, 28, 1]``.
        dtype: the input's numpy dtype name (e.g. "float32"); .npy data is cast to it.
        resolved: from :func:`resolve_preprocessing`.

    Raises:
        DataError: for a missing or unreadable file, a shape that does not fit the input, or an
            image whose preprocessing is unknown.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file {path} does not exist; expected an image or a .npy file")
    if path.suffix.lower() == ".npy":
        batch = _read_npy(path, input_shape)
        if resolved.preprocessing is not None:
            batch = resolved.preprocessing.apply(batch)
        return batch.astype(dtype, copy=False)
    if not resolved.known:
        raise DataError(
            f"cannot tell how to preprocess image {path.name}: the served model config records no "
            f"preprocessing; pass --preprocess MODEL_FOLDER (from edgekit train), "
            "--preprocess scale=S,mean=M,std=D, or --preprocess none for pixels / 255"
        )
    values = _read_image(path, input_shape)[np.newaxis]
    if resolved.preprocessing is not None:
        values = (values - resolved.preprocessing.mean) / resolved.preprocessing.std
    return values.astype(dtype, copy=False)


def _read_npy(path: Path, input_shape: list[int]) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path} as a .npy array ({error}); save it with numpy.save") from None
    if _fits(array.shape, input_shape):
        return array[np.newaxis]
    if array.ndim == len(input_shape) + 1 and _fits(array.shape[1:], input_shape):
        return array
    raise DataError(f"{path.name} holds an array of shape {list(array.shape)}; the model expects "
                    f"{input_shape} per sample (or [N, {', '.join(map(str, input_shape))}])")


def _fits(shape, expected) -> bool:
    return len(shape) == len(expected) and all(e in (-1, s) for s, e in zip(shape, expected))


def _read_image(path: Path, input_shape: list[int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if len(input_shape) != 3 or input_shape[-1] not in (1, 3) or -1 in input_shape[:2]:
        raise DataError(f"the model's input shape {input_shape} is not an image (H, W, 1 or 3); "
                        "pass a .npy file instead")
    height, width, channels = input_shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"cannot read image {path} ({error}); expected a file Pillow can open") from None
    if channels == 1:
        pixels = pixels[..., np.newaxis]
    return pixels / 255.0
