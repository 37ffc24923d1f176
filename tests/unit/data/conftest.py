"""Fixtures that write small real dataset files (IDX, .npz, image folders) into tmp_path."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def _idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes, written by hand from the format description."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


@pytest.fixture
def idx_bytes():
    """``idx_bytes(array)``: the bytes of an IDX file holding ``array`` as unsigned bytes."""
    return _idx_bytes


@pytest.fixture
def idx_names() -> dict[str, str]:
    """Split key -> IDX file name without ".gz", as the MNIST distribution names them."""
    return dict(IDX_NAMES)


@pytest.fixture
def mnist_like_arrays() -> dict[str, np.ndarray]:
    """30 train and 10 test random grey 28x28 images, labels cycling 0..9."""
    rng = np.random.default_rng(7)
    return {
        "x_train": rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(30) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(10) % 10).astype(np.uint8),
    }


@pytest.fixture
def write_idx_folder(mnist_like_arrays):
    """``write_idx_folder(folder, gz=True)`` writes the four IDX files and returns the folder."""

    def write(folder: Path, gz: bool = True) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for key, name in IDX_NAMES.items():
            data = _idx_bytes(mnist_like_arrays[key])
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        return folder

    return write


@pytest.fixture
def write_npz(tmp_path):
    """``write_npz(name="data.npz", **arrays)`` saves the arrays with np.savez, returns the path."""

    def write(name: str = "data.npz", **arrays) -> Path:
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return write


@pytest.fixture
def image_arrays() -> dict[str, np.ndarray]:
    """A valid 4-D image set: 40 train / 10 test RGB 6x5 uint8 images, 4 classes."""
    rng = np.random.default_rng(3)
    return {
        "x_train": rng.integers(0, 256, size=(40, 6, 5, 3), dtype=np.uint8),
        "y_train": np.arange(40) % 4,
        "x_test": rng.integers(0, 256, size=(10, 6, 5, 3), dtype=np.uint8),
        "y_test": np.arange(10) % 4,
    }


@pytest.fixture
def write_image_folder(tmp_path):
    """``write_image_folder(spec)`` writes PNGs: spec maps class -> list of (mode, (w, h))."""
    from PIL import Image

    def write(spec: dict[str, list[tuple[str, tuple[int, int]]]], name: str = "photos") -> Path:
        root = tmp_path / name
        for class_name, images in spec.items():
            (root / class_name).mkdir(parents=True)
            for number, (mode, size) in enumerate(images):
                color = number * 20 if mode == "L" else (number * 20, 50, 200)
                Image.new(mode, size, color).save(root / class_name / f"{number}.png")
        return root

    return write
