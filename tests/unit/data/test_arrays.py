"""``npz:PATH``: shape rules, scaling, class names and every malformed-file error."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.data import load_dataset
from edgekit.errors import DataError


def _load(path, **options):
    return load_dataset(f"npz:{path}", **options)


def test_npz_of_4d_uint8_images_loads_as_images_scaled_by_1_over_255(write_npz, image_arrays):
    path = write_npz(**image_arrays, class_names=np.array(["ant", "bee", "cat", "dog"]))
    dataset = _load(path)
    assert dataset.kind == "image" and dataset.sample_shape == (6, 5, 3)
    assert dataset.class_names == ["ant", "bee", "cat", "dog"]
    assert dataset.describe()["splits"] == {"train": 36, "val": 4, "test": 10}
    assert dataset.preprocessing.scale == pytest.approx(1 / 255)
    assert dataset.augmentable == {"flip": False}
    assert dataset.name == f"npz:{path}" and dataset.source == str(path.resolve())


def test_npz_without_class_names_numbers_the_classes(write_npz, image_arrays):
    assert _load(write_npz(**image_arrays)).class_names == ["0", "1", "2", "3"]


def test_3d_integer_array_is_grey_images_with_a_channel_added(write_npz, image_arrays):
    arrays = dict(image_arrays, x_train=image_arrays["x_train"][..., 0],
                  x_test=image_arrays["x_test"][..., 0])
    dataset = _load(write_npz(**arrays))
    assert dataset.kind == "image" and dataset.sample_shape == (6, 5, 1)


def test_3d_float_array_is_a_sequence_of_time_steps_and_features(write_npz):
    rng = np.random.default_rng(0)
    path = write_npz(x_train=rng.normal(size=(20, 16, 3)).astype(np.float32) * 40,
                     y_train=np.arange(20) % 2, x_test=rng.normal(size=(6, 16, 3)),
                     y_test=np.arange(6) % 2, kind="sequence")
    dataset = _load(path, seed=3)
    assert dataset.kind == "sequence" and dataset.sample_shape == (16, 3)
    assert dataset.preprocessing.scale == 1.0
    x, _ = dataset.preprocessed("train")
    assert abs(float(x.mean())) < 1e-5 and float(x.std()) == pytest.approx(1.0, abs=1e-4)


def test_kind_image_turns_3d_float_array_into_grey_images(write_npz):
    path = write_npz(x_train=np.random.default_rng(0).random((10, 4, 4)), y_train=np.arange(10) % 2,
                     x_test=np.zeros((2, 4, 4)), y_test=np.array([0, 1]), kind="image")
    dataset = _load(path)
    assert dataset.kind == "image" and dataset.sample_shape == (4, 4, 1)


def test_integer_values_above_255_are_not_scaled(write_npz, image_arrays):
    arrays = dict(image_arrays, x_train=image_arrays["x_train"].astype(np.int32) * 4)
    assert _load(write_npz(**arrays)).preprocessing.scale == 1.0


def test_float_labels_holding_whole_numbers_are_accepted(write_npz, image_arrays):
    arrays = dict(image_arrays, y_train=image_arrays["y_train"].astype(np.float32).reshape(-1, 1))
    dataset = _load(write_npz(**arrays))
    assert dataset.y_train.dtype == np.int64


def test_missing_npz_file_is_reported(tmp_path):
    with pytest.raises(DataError, match=r"npz file .*absent.npz does not exist"):
        _load(tmp_path / "absent.npz")


def test_truncated_npz_file_is_not_a_valid_npz(write_npz, image_arrays):
    path = write_npz(**image_arrays)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"data.npz is not a valid .npz file"):
        _load(path)


def test_text_file_is_not_a_valid_npz(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("x_train,y_train\n1,2\n")
    with pytest.raises(DataError, match=r"notes.npz is not a valid .npz file"):
        _load(path)


def test_single_npy_array_is_not_an_archive(tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(DataError, match="holds a single array, not a .npz archive"):
        _load(path)


def test_missing_key_is_named_with_the_keys_present(write_npz, image_arrays):
    arrays = {k: v for k, v in image_arrays.items() if k != "y_train"}
    with pytest.raises(DataError, match=r"lacks y_train; it holds x_test, x_train, y_test; "
                                        "expected x_train, y_train, x_test, y_test"):
        _load(write_npz(**arrays))


def test_x_and_y_of_different_lengths_are_rejected(write_npz, image_arrays):
    arrays = dict(image_arrays, y_test=image_arrays["y_test"][:7])
    with pytest.raises(DataError, match="x_test has 10 samples but y_test has 7"):
        _load(write_npz(**arrays))


def test_train_and_test_samples_of_different_shapes_are_rejected(write_npz, image_arrays):
    arrays = dict(image_arrays, x_test=image_arrays["x_test"][:, :5])
    with pytest.raises(DataError, match=r"train samples have shape \(6, 5, 3\) but test samples "
                                        r"\(5, 5, 3\)"):
        _load(write_npz(**arrays))


def test_empty_split_is_rejected(write_npz, image_arrays):
    arrays = dict(image_arrays, x_test=image_arrays["x_test"][:0],
                  y_test=image_arrays["y_test"][:0])
    with pytest.raises(DataError, match="the test split is empty"):
        _load(write_npz(**arrays))


def test_non_numeric_samples_are_rejected(write_npz, image_arrays):
    arrays = dict(image_arrays, x_train=np.full((40, 6, 5, 3), "a"))
    with pytest.raises(DataError, match="x_train has dtype <U1; expected numbers"):
        _load(write_npz(**arrays))


def test_object_arrays_are_rejected_without_unpickling(write_npz, image_arrays):
    arrays = dict(image_arrays, y_train=np.array([[1], [2, 3]] * 20, dtype=object))
    with pytest.raises(DataError, match="y_train holds Python objects"):
        _load(write_npz(**arrays))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_samples_are_rejected(write_npz, image_arrays, bad):
    x_train = image_arrays["x_train"].astype(np.float32)
    x_train[3, 0, 0, 0] = bad
    with pytest.raises(DataError, match="x_train holds 1 NaN or infinite value"):
        _load(write_npz(**dict(image_arrays, x_train=x_train)))


def test_fractional_labels_are_rejected(write_npz, image_arrays):
    y_train = image_arrays["y_train"].astype(np.float64)
    y_train[0] = 0.5
    with pytest.raises(DataError, match=r"y_train holds non-integer values \(e.g. 0.5\)"):
        _load(write_npz(**dict(image_arrays, y_train=y_train)))


def test_negative_labels_are_rejected(write_npz, image_arrays):
    y_test = image_arrays["y_test"].copy()
    y_test[0] = -1
    with pytest.raises(DataError, match=r"y_test holds negative labels \(min -1\)"):
        _load(write_npz(**dict(image_arrays, y_test=y_test)))


def test_labels_beyond_the_class_names_are_rejected(write_npz, image_arrays):
    path = write_npz(**image_arrays, class_names=np.array(["ant", "bee", "cat"]))
    with pytest.raises(DataError, match="labels go up to 3 but class_names has 3 entries"):
        _load(path)


def test_one_hot_labels_get_an_argmax_hint(write_npz, image_arrays):
    one_hot = np.eye(4)[image_arrays["y_train"]]
    with pytest.raises(DataError, match=r"y_train has shape \(40, 4\).*one-hot.*argmax"):
        _load(write_npz(**dict(image_arrays, y_train=one_hot)))


@pytest.mark.parametrize("shape", [(40, 30), (40, 2, 3, 4, 5)], ids=["2d", "5d"])
def test_samples_that_are_not_2d_or_3d_are_rejected(write_npz, image_arrays, shape):
    x_test_shape = (10,) + shape[1:]
    path = write_npz(**dict(image_arrays, x_train=np.zeros(shape), x_test=np.zeros(x_test_shape)))
    with pytest.raises(DataError, match=rf"x_train has shape .*\({len(shape)}-D\); expected"):
        _load(path)


def test_unknown_kind_is_rejected(write_npz, image_arrays):
    with pytest.raises(DataError, match=r"kind is 'video'; expected 'image' or 'sequence'"):
        _load(write_npz(**image_arrays, kind="video"))


def test_kind_sequence_on_4d_samples_is_rejected(write_npz, image_arrays):
    with pytest.raises(DataError,
                       match=r"kind is 'sequence' but x_train has shape \(40, 6, 5, 3\)"):
        _load(write_npz(**image_arrays, kind="sequence"))


def test_class_names_that_are_not_strings_are_rejected(write_npz, image_arrays):
    with pytest.raises(DataError, match="class_names has dtype int64"):
        _load(write_npz(**image_arrays, class_names=np.arange(4)))
