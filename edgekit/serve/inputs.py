"""Turning an image or a .npy file into the batch a served model expects.

The model's input contract (:mod:`edgekit.data.contract`) says how raw samples become its input.
Where it comes from, in order (``--preprocess``):

* ``auto`` (default): the model config's ``parameters`` entry ``edgekit_preprocessing`` (JSON with
  scale, mean, std and the raw value range), which ``edgekit export`` writes. The client may run
  far from the repository, so the server is the one place it can always ask; Triton's metadata
  has no field for normalization. A .npy file is otherwise sent as it is (taken as model-ready),
  and an image is refused rather than guessed at.
* a model folder (or its ``manifest.json``) from ``edgekit train`` / ``compress``: the contract
  recorded in its manifest.
* ``scale=S,mean=M,std=D`` (per-channel lists allowed): the numbers themselves.
* ``none``: the model takes raw samples as they are.

A .npy file holds raw samples. An image is read with Pillow, converted to grey or RGB to match the
input's channels and resized (bilinear) to its height and width; its 0..255 pixels are the raw
values, mapped onto the raw range the contract recorded when that range is not 0..255 (the
bundled digits are 0..16: pixel * 16 / 255). Then the contract's preprocessing applies.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.data.base import Preprocessing
from edgekit.data.contract import parse_preprocess, record_of
from edgekit.errors import DataError, OptionError
from edgekit.formats.triton import PREPROCESSING_PARAMETER
from edgekit.manifest import read_manifest


@dataclass(frozen=True)
class ResolvedPreprocessing:
    """The preprocessing to apply (None: nothing known) and where it came from, for the user."""

    preprocessing: Preprocessing | None
    source: str
    known: bool
    raw: dict = field(default_factory=dict)  # the raw value range the contract recorded

    def pixel_factor(self) -> float:
        """What an image's 0..255 pixel is multiplied by to be a raw value of the contract."""
        low, high = self.raw.get("min"), self.raw.get("max")
        if low is None or high is None or low < 0 or high <= 0:
            return 1.0
        return float(high) / 255.0 if abs(high - 255.0) > 1e-6 else 1.0


def resolve_preprocessing(spec: str, model_config: dict | None = None) -> ResolvedPreprocessing:
    """Decide the preprocessing from ``--preprocess`` and the served model's config.

    Raises:
        OptionError: for a spec that is none of auto, none, KEY=VALUE numbers or a model folder.
    """
    spec = (spec or "auto").strip()
    served = _from_config(model_config or {})
    raw = served[1] if served is not None else {}
    if spec == "none":
        return ResolvedPreprocessing(Preprocessing(), "none (--preprocess none)", True, raw)
    if spec == "auto":
        if served is not None:
            return ResolvedPreprocessing(served[0], "the served model config", True, served[1])
        return ResolvedPreprocessing(None, "unknown (the served config records none)", False)
    if "=" in spec:
        return ResolvedPreprocessing(parse_preprocess(spec), "--preprocess", True, raw)
    path = Path(spec).expanduser()
    if path.exists():
        contract = _from_manifest(path)
        return ResolvedPreprocessing(contract.preprocessing, str(path), True, contract.raw)
    raise OptionError(
        f"--preprocess {spec!r} is neither auto, none, scale=S,mean=M,std=D nor an existing model "
        "folder or manifest.json; e.g. --preprocess models/cnn-digits"
    )


def _from_config(config: dict) -> tuple[Preprocessing, dict] | None:
    entry = (config.get("parameters") or {}).get(PREPROCESSING_PARAMETER)
    if not entry:
        return None
    text = entry.get("string_value", "") if isinstance(entry, dict) else str(entry)
    try:
        values = json.loads(text)
        return Preprocessing.from_dict(values), dict(values.get("raw") or {})
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise OptionError(f"the served config's {PREPROCESSING_PARAMETER} parameter is not JSON with scale, "
                          f"mean and std ({text!r}); pass --preprocess explicitly") from error


def _from_manifest(path: Path):
    manifest = read_manifest(path.parent if path.is_file() else path)
    contract = record_of(manifest)
    if contract is None:
        raise OptionError(f"{path} records no input contract; pass --preprocess "
                          "scale=S,mean=M,std=D or --preprocess none")
    return contract


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
            "--preprocess scale=S,mean=M,std=D, or --preprocess none for 0..255 pixels as they are"
        )
    values = _read_image(path, input_shape)[np.newaxis] * np.float32(resolved.pixel_factor())
    if resolved.preprocessing is not None:
        values = resolved.preprocessing.apply(values)
    return values.astype(dtype, copy=False)


def _read_npy(path: Path, input_shape: list[int]) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path} as a .npy array ({error}); save it with numpy.save") from error
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
            or array.dtype == np.bool_):
        raise DataError(f"{path.name} holds {array.dtype} values; expected real numbers (raw "
                        "samples as integers or floats); save the samples as a numeric array")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise DataError(f"{path.name} holds {bad} NaN or infinite value(s); expected finite raw "
                        "samples; clean the data before sending it")
    if array.size == 0:
        raise DataError(f"{path.name} holds no samples (shape {list(array.shape)}); expected one "
                        f"sample of shape {input_shape} or a batch of them")
    if _fits(array.shape, input_shape):
        return array[np.newaxis]
    if array.ndim == len(input_shape) + 1 and _fits(array.shape[1:], input_shape):
        return array
    raise DataError(f"{path.name} holds an array of shape {list(array.shape)}; the model expects "
                    f"{input_shape} per sample (or [N, {', '.join(map(str, input_shape))}])")


def _fits(shape, expected) -> bool:
    return len(shape) == len(expected) and all(e in (-1, s) for s, e in zip(shape, expected))


def _read_image(path: Path, input_shape: list[int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError  # lazy: a heavy library, for images only

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
        raise DataError(f"cannot read image {path} ({error}); expected a file Pillow can open") from error
    if channels == 1:
        pixels = pixels[..., np.newaxis]
    return pixels
