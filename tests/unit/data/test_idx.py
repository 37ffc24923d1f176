"""The IDX and Keras .npz readers, on files written byte by byte."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from edgekit.data.idx import read_idx, read_keras_npz
from edgekit.errors import DataError


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_idx_round_trip_gives_back_the_array(tmp_path, idx_bytes, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("images.gz" if gz else "images")
    data = idx_bytes(images)
    path.write_bytes(gzip.compress(data) if gz else data)
    np.testing.assert_array_equal(read_idx(path), images)


def test_idx_labels_file_reads_as_one_dimension(tmp_path, idx_bytes):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.array([3, 1, 4], dtype=np.uint8)))
    assert read_idx(path).tolist() == [3, 1, 4]


def test_truncated_idx_file_names_the_file(tmp_path, idx_bytes):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((5, 4, 4), dtype=np.uint8))[:-10])
    with pytest.raises(DataError, match=r"IDX file .*train-images-idx3-ubyte is truncated: .*"
                                        r"\(5, 4, 4\) = 80 bytes of data, found 70"):
        read_idx(path)


def test_idx_file_longer_than_its_header_is_rejected(tmp_path, idx_bytes):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.zeros(5, dtype=np.uint8)) + b"\0")
    with pytest.raises(DataError, match="longer than its header says"):
        read_idx(path)


def test_idx_header_cut_short_is_truncated(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(struct.pack(">I", 0x0803) + struct.pack(">I", 5))
    with pytest.raises(DataError, match="is truncated: 8 bytes, expected a 16-byte header"):
        read_idx(path)


def test_truncated_gzip_idx_file_names_the_file(tmp_path, idx_bytes):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))[:30])
    with pytest.raises(DataError,
                       match=r"train-labels-idx1-ubyte.gz is a truncated or corrupt gzip"):
        read_idx(path)


@pytest.mark.parametrize("magic", [0x00000802, 0x00000D03, 0x12345678])
def test_idx_file_with_bad_magic_number_names_the_file_and_the_magic(tmp_path, magic):
    path = tmp_path / "odd-file"
    path.write_bytes(struct.pack(">I", magic) + b"\0" * 64)
    with pytest.raises(DataError, match=rf"odd-file is not an IDX file .*0x{magic:08X}, "
                                        r"expected 0x00000801 \(labels\) or 0x00000803"):
        read_idx(path)


def test_keras_npz_reader_returns_the_four_arrays(tmp_path, mnist_like_arrays):
    path = tmp_path / "mnist.npz"
    np.savez(path, **mnist_like_arrays)
    x_train, y_train, x_test, y_test = read_keras_npz(path)
    np.testing.assert_array_equal(x_test, mnist_like_arrays["x_test"])
    assert x_train.shape == (30, 28, 28) and y_train.shape == (30,) and y_test.shape == (10,)


def test_keras_npz_without_a_key_names_the_missing_key(tmp_path, mnist_like_arrays):
    path = tmp_path / "mnist.npz"
    np.savez(path, **{k: v for k, v in mnist_like_arrays.items() if k != "y_test"})
    with pytest.raises(DataError,
                       match=r"mnist.npz lacks y_test; it holds x_test, x_train, y_train"):
        read_keras_npz(path)


def test_truncated_keras_npz_names_the_file(tmp_path, mnist_like_arrays):
    path = tmp_path / "mnist.npz"
    np.savez(path, **mnist_like_arrays)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match=r"cannot read Keras dataset file .*mnist.npz"):
        read_keras_npz(path)


def test_single_npy_array_named_like_a_keras_file_is_rejected(tmp_path):
    path = tmp_path / "mnist.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))
    with pytest.raises(DataError, match="mnist.npz holds a single array, not a .npz archive"):
        read_keras_npz(path)
