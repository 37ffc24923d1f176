"""``images:DIR``: class folders of PNGs written with Pillow, and the folder errors."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.data import load_dataset
from edgekit.data.images import load_image_folder, most_common_size
from edgekit.errors import DataError

GREY_8x6 = ("L", (8, 6))  # Pillow sizes are (width, height)


def test_grey_folder_loads_with_sorted_class_names_and_most_common_size(write_image_folder):
    root = write_image_folder({
        "zebra": [GREY_8x6] * 5,
        "cat": [GREY_8x6] * 4 + [("L", (20, 20))],
        "dog": [GREY_8x6] * 5,
    })
    dataset = load_dataset(f"images:{root}", seed=0)
    assert dataset.class_names == ["cat", "dog", "zebra"]
    assert dataset.sample_shape == (6, 8, 1)  # (height, width, channels)
    assert dataset.describe()["splits"] == {"train": 10, "val": 2, "test": 3}
    assert np.bincount(dataset.y_test).tolist() == [1, 1, 1]  # 20% of each class
    assert dataset.kind == "image" and dataset.augmentable == {"flip": True}
    assert dataset.preprocessing.scale == pytest.approx(1 / 255)
    assert dataset.source == str(root.resolve())


def test_one_colour_image_makes_the_whole_folder_rgb(write_image_folder):
    root = write_image_folder({"a": [GREY_8x6] * 3, "b": [GREY_8x6, ("RGB", (8, 6))]})
    raw = load_image_folder(root)
    assert raw.x_train.shape[1:] == (6, 8, 3) and raw.x_train.dtype == np.uint8


def test_grey_pixels_are_kept_exactly(write_image_folder):
    root = write_image_folder({"a": [GREY_8x6] * 3, "b": [GREY_8x6] * 3})
    raw = load_image_folder(root)
    pixels = np.concatenate([raw.x_train, raw.x_test])
    assert sorted(np.unique(pixels).tolist()) == [0, 20, 40]  # fill colours 0, 20, 40


def test_non_image_files_in_class_folders_are_ignored(write_image_folder):
    root = write_image_folder({"a": [GREY_8x6] * 3, "b": [GREY_8x6] * 3})
    (root / "a" / "README.txt").write_text("labels by hand")
    (root / ".hidden").mkdir()
    raw = load_image_folder(root)
    assert len(raw.y_train) + len(raw.y_test) == 6 and raw.class_names == ["a", "b"]


def test_most_common_size_breaks_ties_toward_the_larger_image():
    assert most_common_size([(8, 8), (4, 4), (4, 4), (8, 8)]) == (8, 8)
    assert most_common_size([(8, 8), (4, 4), (4, 4)]) == (4, 4)


def test_missing_image_folder_is_reported(tmp_path):
    with pytest.raises(DataError, match=r"image folder .*nowhere does not exist"):
        load_dataset(f"images:{tmp_path / 'nowhere'}")


def test_folder_with_one_class_is_rejected(write_image_folder):
    root = write_image_folder({"only": [GREY_8x6] * 3})
    with pytest.raises(DataError,
                       match=r"has 1 class sub-folder\(s\) \(only\); expected at least 2"):
        load_image_folder(root)


def test_empty_class_folder_is_named(write_image_folder):
    root = write_image_folder({"a": [GREY_8x6] * 3, "b": []})
    with pytest.raises(DataError, match=r"class folder .*/b holds no images"):
        load_image_folder(root)


def test_corrupt_image_names_the_file(write_image_folder):
    root = write_image_folder({"a": [GREY_8x6] * 3, "b": [GREY_8x6] * 3})
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match=r"cannot read image .*b/broken.png"):
        load_image_folder(root)


def test_truncated_image_names_the_file(write_image_folder):
    root = write_image_folder({"a": [("RGB", (64, 64))] * 2, "b": [("RGB", (64, 64))] * 2})
    path = root / "a" / "1.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataError, match=r"cannot read image .*a/1.png"):
        load_image_folder(root)


def test_palette_images_of_greys_count_as_grey(write_image_folder):
    from PIL import Image

    root = write_image_folder({"a": [GREY_8x6] * 2, "b": [GREY_8x6] * 2})
    Image.new("L", (8, 6), 90).convert("P").save(root / "b" / "palette.gif")
    raw = load_image_folder(root)
    assert raw.x_train.shape[-1] == 1
    assert 90 in np.concatenate([raw.x_train, raw.x_test])
