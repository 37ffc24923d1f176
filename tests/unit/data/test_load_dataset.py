"""load_dataset: spec parsing, option checks and the registry."""

from __future__ import annotations

import pytest

import edgekit
from edgekit.data import DATASETS, dataset_names, load_dataset
from edgekit.errors import DataError, OptionError, UnknownNameError


def test_dataset_names_are_the_three_named_datasets():
    assert dataset_names() == ["digits", "fashion_mnist", "mnist"]
    assert DATASETS.names() == dataset_names()


def test_unknown_dataset_name_lists_known_names_and_spec_forms():
    with pytest.raises(UnknownNameError, match="unknown dataset 'cifar10'") as caught:
        load_dataset("cifar10")
    message = str(caught.value)
    for expected in ("digits", "fashion_mnist", "mnist", "npz:PATH", "images:DIR"):
        assert expected in message
    assert "\n" not in message


def test_unknown_prefix_is_an_unknown_name():
    with pytest.raises(UnknownNameError, match="unknown dataset 'csv:data.csv'"):
        load_dataset("csv:data.csv")


def test_bare_npz_path_suggests_the_npz_form():
    with pytest.raises(UnknownNameError, match="did you mean npz:data.npz"):
        load_dataset("data.npz")


def test_bare_folder_suggests_the_images_form(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean images:"):
        load_dataset(str(tmp_path))


def test_spec_form_without_path_is_a_data_error():
    with pytest.raises(DataError, match="no path after 'npz:'"):
        load_dataset("npz:")


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 0.51, 1.0, "0.1", True])
def test_validation_fraction_outside_zero_to_half_is_rejected(fraction):
    with pytest.raises(OptionError, match=r"validation fraction must be in \(0, 0.5\]; received"):
        load_dataset("digits", validation_fraction=fraction)


def test_non_integer_seed_is_rejected():
    with pytest.raises(OptionError, match="seed must be an integer; received 1.5"):
        load_dataset("digits", seed=1.5)


def test_edgekit_exposes_load_dataset_lazily():
    assert edgekit.load_dataset is load_dataset


def test_non_string_spec_is_rejected(tmp_path):
    with pytest.raises(OptionError, match="dataset spec must be a string; received PosixPath"):
        load_dataset(tmp_path)


def test_numpy_integer_seed_is_accepted():
    import numpy as np

    assert load_dataset("digits", seed=np.int64(2)).describe()["splits"]["val"] == 144


def test_empty_spec_lists_known_names_without_a_folder_hint():
    with pytest.raises(UnknownNameError, match="unknown dataset ''") as caught:
        load_dataset("")
    assert "did you mean" not in str(caught.value)
