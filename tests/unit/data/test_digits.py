"""The bundled sklearn digits dataset: splits, determinism and preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.data import load_dataset
from edgekit.data.base import Preprocessing


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_digits_splits_1797_samples_into_train_val_and_20_percent_test(digits):
    assert digits.describe()["splits"] == {"train": 1293, "val": 144, "test": 360}
    assert digits.sample_shape == (8, 8, 1)
    assert digits.class_names == [str(digit) for digit in range(10)]
    assert digits.kind == "image"
    assert digits.augmentable == {"flip": False}
    assert digits.source == "sklearn.datasets.load_digits"


def test_digits_keeps_raw_values_as_float32_and_labels_as_int64(digits):
    assert digits.x_train.dtype == np.float32 and digits.y_train.dtype == np.int64
    assert digits.x_train.min() == 0 and digits.x_train.max() == 16
    assert digits.preprocessing.scale == pytest.approx(1 / 16)


def test_digits_validation_and_test_splits_are_stratified(digits):
    for labels in (digits.y_val, digits.y_test):
        counts = np.bincount(labels, minlength=10)
        assert counts.min() >= 0.8 * counts.mean()


def test_same_seed_gives_the_same_validation_split(digits):
    again = load_dataset("digits", seed=0)
    np.testing.assert_array_equal(again.x_val, digits.x_val)
    np.testing.assert_array_equal(again.y_train, digits.y_train)


def test_different_seed_gives_a_different_validation_split_but_the_same_test_split(digits):
    other = load_dataset("digits", seed=1)
    assert not np.array_equal(other.x_val, digits.x_val)
    np.testing.assert_array_equal(other.x_test, digits.x_test)


def test_validation_fraction_sets_the_validation_size():
    dataset = load_dataset("digits", validation_fraction=0.5)
    assert len(dataset.y_val) == len(dataset.y_train) + 1  # 1437 -> ceil(718.5) held out


def test_preprocessing_gives_zero_mean_unit_std_on_train(digits):
    x, y = digits.preprocessed("train")
    assert x.dtype == np.float32 and x.shape == digits.x_train.shape
    assert abs(float(x.mean())) < 1e-5
    assert float(x.std()) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(y, digits.y_train)


def test_chunked_statistics_match_preprocessing_fit(digits):
    reference = Preprocessing.fit(digits.x_train, scale=1 / 16)
    assert digits.preprocessing.mean == pytest.approx(reference.mean, rel=1e-9)
    assert digits.preprocessing.std == pytest.approx(reference.std, rel=1e-9)
