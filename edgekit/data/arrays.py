"""``npz:PATH``: a user's own arrays in one NumPy .npz file.

Required arrays: ``x_train``, ``y_train``, ``x_test``, ``y_test``. Optional: ``class_names``
(strings, one per class; default ``"0"``..``"K-1"`` with K = largest label + 1) and ``kind``
(``"image"`` or ``"sequence"``).

How the sample shape is read:

* 4-D ``x`` ``(N, H, W, C)``: images.
* 3-D ``x`` of an integer dtype ``(N, H, W)``: grey images; a channel axis is added.
* 3-D ``x`` of a float dtype ``(N, T, F)``: sequences, unless ``kind`` is ``"image"``.
* anything else: rejected.

Raw values are scaled by ``1/255`` when ``x`` is of an integer dtype with values up to 255
(8-bit pixels), else by 1. Example of writing one::

    np.savez("my.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             class_names=np.array(["cat", "dog"]), kind="image")
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from edgekit.data.sources import SPEC_FORMS, RawSplits
from edgekit.errors import DataError

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
KINDS = ("image", "sequence")


def _read_archive(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(
            f"npz file {path} does not exist; expected a .npz holding {', '.join(REQUIRED_KEYS)}; "
            "check the path after 'npz:'"
        )
    not_valid = (
        f"{path} is not a valid .npz file ({{reason}}); expected a complete archive written by "
        "np.savez or np.savez_compressed; write it again"
    )
    readable_errors = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
    # We open the file ourselves: np.load leaks its handle when the zip directory is broken.
    with open(path, "rb") as handle:
        try:
            archive = np.load(handle, allow_pickle=False)
        except readable_errors as error:  # a text file ends up here as "pickled data"
            raise DataError(not_valid.format(reason=error)) from error
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(
                f"{path} holds a single array, not a .npz archive; expected arrays named "
                f"{', '.join(REQUIRED_KEYS)}; write it with np.savez(path, x_train=..., ...)"
            )
        with archive:
            return {key: _read_member(archive, key, path, not_valid) for key in archive.files}


def _read_member(archive, key: str, path: Path, not_valid: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise DataError(
                f"{path}: {key} holds Python objects (a pickled array); expected plain "
                "numeric arrays and string class_names; save e.g. np.asarray(x, dtype=np.float32)"
            ) from error
        raise DataError(not_valid.format(reason=error)) from error
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:  # a member cut short
        raise DataError(not_valid.format(reason=error)) from error


def _infer_kind(x: np.ndarray, declared: str | None, path: Path) -> str:
    """Decide image or sequence from the array rank, dtype and the optional ``kind`` entry."""
    if x.ndim == 4:
        if declared == "sequence":
            raise DataError(
                f"{path}: kind is 'sequence' but x_train has shape {x.shape}; expected (N, T, F) "
                "for sequences; drop 'kind' or reshape x"
            )
        return "image"
    if x.ndim == 3:
        if declared is not None:
            return declared
        return "image" if np.issubdtype(x.dtype, np.integer) else "sequence"
    raise DataError(
        f"{path}: x_train has shape {x.shape} ({x.ndim}-D); expected (N, H, W, C) images, "
        "(N, H, W) grey images or (N, T, F) sequences; reshape x so each sample is 2-D or 3-D"
    )


def _check_values(name: str, array: np.ndarray, path: Path) -> None:
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise DataError(
            f"{path}: {name} has dtype {array.dtype}; expected numbers (integers or floats); "
            "convert it with np.asarray(..., dtype=np.float32)"
        )
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise DataError(
            f"{path}: {name} holds {bad} NaN or infinite value(s); expected finite numbers; "
            "clean or drop those samples"
        )


def _labels(name: str, y: np.ndarray, path: Path) -> np.ndarray:
    """Integer class indices from ``y`` of shape (N,) or (N, 1)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        hint = "it looks one-hot: use y.argmax(axis=1)" if y.ndim == 2 else "flatten it to (N,)"
        raise DataError(f"{path}: {name} has shape {y.shape}; expected class indices (N,); {hint}")
    _check_values(name, y, path)
    if np.issubdtype(y.dtype, np.floating) and not np.array_equal(y, np.round(y)):
        raise DataError(
            f"{path}: {name} holds non-integer values (e.g. {y[y != np.round(y)][0]}); "
            "expected class indices 0..K-1; store labels as integers"
        )
    if len(y) and y.min() < 0:
        raise DataError(
            f"{path}: {name} holds negative labels (min {y.min()}); expected class indices "
            "0..K-1; map your labels to 0..K-1"
        )
    return y.astype(np.int64)


def _check_every_class_is_trained(y_train: np.ndarray, classes: int, path: Path) -> None:
    """A label set with holes (a lone 99 among 0..2) would make a 100-way model: refuse it."""
    present = np.unique(y_train)
    missing = classes - len(present)
    if missing <= 0:
        return
    absent = sorted(set(range(classes)) - set(int(v) for v in present))
    shown = ", ".join(str(v) for v in absent[:8]) + (" ..." if len(absent) > 8 else "")
    labels = ", ".join(str(int(v)) for v in present[:12]) + (" ..." if len(present) > 12 else "")
    raise DataError(
        f"{path}: {missing} of the {classes} classes 0..{classes - 1} have no training sample "
        f"(missing: {shown}; labels present: {labels}); expected every class index 0..K-1 to "
        "occur in y_train. Map your labels to 0..K-1 (e.g. numpy.unique(y, return_inverse=True))")


def _class_names(arrays: dict[str, np.ndarray], largest_label: int, path: Path) -> list[str]:
    if "class_names" not in arrays:
        return [str(index) for index in range(largest_label + 1)]
    names = arrays["class_names"]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(
            f"{path}: class_names has dtype {names.dtype} and shape {names.shape}; expected a 1-D "
            "array of strings; save np.array(['cat', 'dog', ...])"
        )
    names = [str(name, "utf-8") if isinstance(name, bytes) else str(name) for name in names]
    if largest_label >= len(names):
        raise DataError(
            f"{path}: labels go up to {largest_label} but class_names has {len(names)} entries; "
            f"expected labels 0..{len(names) - 1}; add the missing class names or fix the labels"
        )
    return names


def _declared_kind(arrays: dict[str, np.ndarray], path: Path) -> str | None:
    if "kind" not in arrays:
        return None
    kind = arrays["kind"]
    value = None
    if kind.size == 1 and kind.dtype.kind in "US":
        value = kind.item()
        value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if value not in KINDS:
        raise DataError(
            f"{path}: kind is {kind.tolist()!r}; expected 'image' or 'sequence'; "
            "save kind='image' or kind='sequence'"
        )
    return value


@SPEC_FORMS.register("npz")
def load_npz(path: str | Path) -> RawSplits:
    """Load ``npz:PATH``: checks every array and infers image or sequence samples.

    Args:
        path: The .npz file.

    Returns:
        The train and test splits; images gain a channel axis when stored as (N, H, W).

    Raises:
        DataError: If the file is missing or not a valid .npz; a required array is missing;
            x and y differ in length; train and test samples differ in shape; a split is empty;
            values are not finite numbers; labels are not integers in 0..K-1.

    Example:
        >>> raw = load_npz("my.npz")
    """
    path = Path(path).expanduser()
    arrays = _read_archive(path)
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise DataError(
            f"{path} lacks {', '.join(missing)}; it holds "
            f"{', '.join(sorted(arrays)) or 'nothing'}; "
            f"expected {', '.join(REQUIRED_KEYS)}; save them with np.savez"
        )
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    for name in ("x_train", "x_test"):
        _check_values(name, arrays[name], path)
    kind = _infer_kind(x_train, _declared_kind(arrays, path), path)
    if x_train.shape[1:] != x_test.shape[1:] or x_test.ndim != x_train.ndim:
        raise DataError(
            f"{path}: train samples have shape {x_train.shape[1:]} but test samples "
            f"{x_test.shape[1:]}; expected the same sample shape; reshape or resize one split"
        )
    y_train = _labels("y_train", arrays["y_train"], path)
    y_test = _labels("y_test", arrays["y_test"], path)
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) == 0:
            raise DataError(
                f"{path}: the {split} split is empty (x_{split} has shape {x.shape}); "
                f"expected at least one sample; add samples to x_{split} and y_{split}"
            )
        if len(x) != len(y):
            raise DataError(
                f"{path}: x_{split} has {len(x)} samples but y_{split} has {len(y)}; "
                "expected one label per sample; fix the arrays so their lengths match"
            )
    if kind == "image" and x_train.ndim == 3:
        x_train, x_test = x_train[..., np.newaxis], x_test[..., np.newaxis]
    largest_label = int(max(y_train.max(), y_test.max()))
    class_names = _class_names(arrays, largest_label, path)
    _check_every_class_is_trained(y_train, len(class_names), path)
    eight_bit = np.issubdtype(x_train.dtype, np.integer) and max(x_train.max(), x_test.max()) <= 255
    return RawSplits(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
        scale=1.0 / 255.0 if eight_bit else 1.0,
        source=str(path.resolve()),
        kind=kind,
        augmentable={"flip": False},  # we cannot know whether a mirrored sample keeps its label
    )
