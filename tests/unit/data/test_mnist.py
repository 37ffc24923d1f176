"""MNIST and Fashion-MNIST: finding the files, reading them, and saying how to get them."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from edgekit.data import load_dataset
from edgekit.data.mnist import DEBIAN_FASHION_MNIST_DIR, load_fashion_mnist, load_mnist
from edgekit.errors import DataError

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
def test_idx_files_in_data_dir_load_with_official_test_split(tmp_path, write_idx_folder,
                                                             mnist_like_arrays, name, gz):
    folder = write_idx_folder(tmp_path / "data", gz=gz)
    dataset = load_dataset(name, data_dir=str(folder), seed=0)
    assert dataset.describe()["splits"] == {"train": 27, "val": 3, "test": 10}
    assert dataset.sample_shape == (28, 28, 1)
    np.testing.assert_array_equal(dataset.x_test[..., 0], mnist_like_arrays["x_test"])
    np.testing.assert_array_equal(dataset.y_test, mnist_like_arrays["y_test"])
    assert dataset.preprocessing.scale == pytest.approx(1 / 255)
    assert dataset.source == str(folder)


def test_fashion_mnist_has_clothing_class_names_and_allows_flips(tmp_path, write_idx_folder):
    raw = load_fashion_mnist(write_idx_folder(tmp_path), search_dirs=[])
    assert raw.class_names == FASHION_CLASSES
    assert raw.augmentable == {"flip": True}


def test_mnist_has_digit_class_names_and_forbids_flips(tmp_path, write_idx_folder):
    raw = load_mnist(write_idx_folder(tmp_path), search_dirs=[])
    assert raw.class_names == [str(digit) for digit in range(10)]
    assert raw.augmentable == {"flip": False}


@pytest.mark.parametrize("name, subfolder", [("fashion_mnist", "fashion-mnist"),
                                             ("fashion_mnist", "fashion_mnist"),
                                             ("mnist", "mnist")])
def test_data_dir_sub_folder_named_after_the_dataset_is_searched(tmp_path, write_idx_folder,
                                                                 name, subfolder):
    write_idx_folder(tmp_path / subfolder)
    loader = load_fashion_mnist if name == "fashion_mnist" else load_mnist
    assert loader(tmp_path, search_dirs=[]).source == str(tmp_path / subfolder)


def test_keras_npz_in_data_dir_loads(tmp_path, mnist_like_arrays):
    np.savez(tmp_path / "mnist.npz", **mnist_like_arrays)
    dataset = load_dataset("mnist", data_dir=str(tmp_path))
    assert dataset.describe()["splits"] == {"train": 27, "val": 3, "test": 10}
    assert dataset.source == str(tmp_path / "mnist.npz")


def test_mnist_npz_is_not_mistaken_for_fashion_mnist(tmp_path, mnist_like_arrays):
    np.savez(tmp_path / "mnist.npz", **mnist_like_arrays)
    with pytest.raises(DataError, match="Fashion-MNIST not found"):
        load_fashion_mnist(tmp_path, search_dirs=[])


def test_search_folders_are_tried_after_data_dir(tmp_path, write_idx_folder):
    empty, cache = tmp_path / "empty", write_idx_folder(tmp_path / "cache")
    empty.mkdir()
    assert load_mnist(empty, search_dirs=[tmp_path / "nowhere", cache]).source == str(cache)


def test_fashion_mnist_not_found_lists_apt_get_data_dir_and_keras_cache(tmp_path):
    with pytest.raises(DataError, match="Fashion-MNIST not found") as caught:
        load_fashion_mnist(None, search_dirs=[tmp_path / "nowhere"])
    message = str(caught.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir DIR" in message and "train-images-idx3-ubyte.gz" in message
    assert "~/.keras/datasets/fashion-mnist/" in message
    assert str(tmp_path / "nowhere") in message and "\n" not in message


def test_mnist_not_found_lists_data_dir_and_keras_cache_but_not_apt_get(tmp_path):
    with pytest.raises(DataError, match="MNIST not found") as caught:
        load_mnist(None, search_dirs=[])
    message = str(caught.value)
    assert "--data-dir DIR" in message and "~/.keras/datasets/" in message
    assert "apt-get" not in message


def test_missing_data_dir_is_an_error_not_a_silent_fallback(tmp_path):
    with pytest.raises(DataError, match=r"data directory .*missing does not exist.*--data-dir"):
        load_dataset("fashion_mnist", data_dir=str(tmp_path / "missing"))


def test_folder_with_only_some_idx_files_names_the_missing_ones(tmp_path, write_idx_folder):
    folder = write_idx_folder(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"holds only part of MNIST: t10k-labels-idx1-ubyte\(.gz\) "
                                        "missing"):
        load_mnist(folder, search_dirs=[])


def test_truncated_idx_file_in_data_dir_names_the_file(tmp_path, write_idx_folder):
    folder = write_idx_folder(tmp_path, gz=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is truncated"):
        load_mnist(folder, search_dirs=[])


def test_images_and_labels_of_different_counts_are_rejected(tmp_path, write_idx_folder,
                                                            idx_bytes, idx_names):
    folder = write_idx_folder(tmp_path)
    labels = np.arange(29, dtype=np.uint8) % 10
    (folder / f"{idx_names['y_train']}.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(DataError, match=r"train images \(30, 28, 28\) and labels \(29,\) do not "
                                        "match"):
        load_mnist(folder, search_dirs=[])


def test_labels_above_nine_are_rejected(tmp_path, write_idx_folder, idx_bytes, idx_names):
    folder = write_idx_folder(tmp_path)
    labels = np.full(10, 12, dtype=np.uint8)
    (folder / f"{idx_names['y_test']}.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(DataError, match="test labels go up to 12; expected 0..9"):
        load_mnist(folder, search_dirs=[])


@pytest.mark.skipif(not Path(DEBIAN_FASHION_MNIST_DIR).is_dir(),
                    reason="dataset-fashion-mnist (Debian package) is not installed")
def test_real_debian_fashion_mnist_has_60000_train_and_10000_test_images():
    dataset = load_dataset("fashion_mnist", seed=0)
    assert len(dataset.y_train) + len(dataset.y_val) == 60000
    assert len(dataset.y_val) == 6000 and len(dataset.y_test) == 10000
    assert dataset.sample_shape == (28, 28, 1)
    assert dataset.x_train.max() == 255 and dataset.class_names == FASHION_CLASSES
    assert np.bincount(dataset.y_val).tolist() == [600] * 10  # stratified
