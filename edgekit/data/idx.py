"""Readers for the two layouts MNIST-style datasets ship in: IDX (plain or gzip) and Keras .npz.

IDX (http://yann.lecun.com/exdb/mnist/) is a 4-byte magic number ``0x000008DD`` (``08`` = unsigned
bytes, ``DD`` = number of dimensions), one big-endian uint32 per dimension, then the bytes.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from edgekit.errors import DataError

IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_GZIP_SIGNATURE = b"\x1f\x8b"

KERAS_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the file starts with the gzip signature."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(
            f"cannot read IDX file {path}: {error.strerror or error}; expected a readable file; "
            "check the path and permissions"
        ) from error
    if not data.startswith(_GZIP_SIGNATURE):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"IDX file {path} is a truncated or corrupt gzip file ({error}); "
            "expected a complete .gz download; download it again"
        ) from error


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (labels 0x0801 or images 0x0803), gzipped or not.

    Args:
        path: The file; gzip is detected from its first bytes, not its name.

    Returns:
        A uint8 array with the dimensions the header declares.

    Raises:
        DataError: If the file cannot be read, is a broken gzip, has another magic number,
            or holds fewer or more bytes than its header declares. The message names the file.

    Example:
        >>> labels = read_idx("train-labels-idx1-ubyte.gz")  # shape (60000,)
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(
            f"IDX file {path} is truncated: {len(data)} bytes, expected at least a 4-byte header; "
            "download it again"
        )
    (magic,) = struct.unpack(">I", data[:4])
    if magic not in (IDX_LABELS_MAGIC, IDX_IMAGES_MAGIC):
        raise DataError(
            f"{path} is not an IDX file of unsigned bytes: magic number 0x{magic:08X}, "
            f"expected 0x{IDX_LABELS_MAGIC:08X} (labels) or 0x{IDX_IMAGES_MAGIC:08X} (images); "
            "point at the original MNIST-format files"
        )
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"IDX file {path} is truncated: {len(data)} bytes, expected a {header_size}-byte "
            f"header for {ndim} dimension(s); download it again"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = int(np.prod(dims, dtype=np.int64))
    found = len(data) - header_size
    if found != expected:
        state = "truncated" if found < expected else "longer than its header says"
        raise DataError(
            f"IDX file {path} is {state}: header declares shape {tuple(dims)} = {expected} bytes "
            f"of data, found {found}; download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)


def read_keras_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read a Keras dataset cache file (``mnist.npz`` layout) of grey images and labels.

    Args:
        path: A .npz holding ``x_train (N, H, W)``, ``y_train (N,)``, ``x_test``, ``y_test``.

    Returns:
        ``(x_train, y_train, x_test, y_test)`` as stored.

    Raises:
        DataError: If the file is not a readable .npz, lacks a key, or an array has the
            wrong number of dimensions or sample count. The message names the file.
    """
    path = Path(path)
    try:
        # We open the file ourselves: np.load leaks its handle when the zip directory is broken.
        with open(path, "rb") as handle:
            archive = np.load(handle, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(
                    f"Keras dataset file {path} holds a single array, not a .npz archive; expected "
                    f"{', '.join(KERAS_NPZ_KEYS)}; use a file in the Keras mnist.npz layout"
                )
            with archive:
                missing = [key for key in KERAS_NPZ_KEYS if key not in archive.files]
                if missing:
                    raise DataError(
                        f"Keras dataset file {path} lacks {', '.join(missing)}; it holds "
                        f"{', '.join(sorted(archive.files)) or 'nothing'}; expected "
                        f"{', '.join(KERAS_NPZ_KEYS)}; use a file in the Keras mnist.npz layout"
                    )
                x_train, y_train, x_test, y_test = (archive[key] for key in KERAS_NPZ_KEYS)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(
            f"cannot read Keras dataset file {path} ({error}); expected a complete .npz; "
            "download it again"
        ) from error
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"Keras dataset file {path} has x_{split} {x.shape} and y_{split} {y.shape}; "
                "expected x (N, H, W) and y (N,) with the same N"
            )
    return x_train, y_train, x_test, y_test
