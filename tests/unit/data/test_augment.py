"""augmentation_layers: which layers, output shape, and the refusal for sequence data."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.data import Dataset, Preprocessing, augmentation_layers
from edgekit.errors import OptionError


def _dataset(kind="image", flip=False, shape=(12, 10, 1)) -> Dataset:
    x = np.random.default_rng(0).random((4, *shape)).astype(np.float32)
    y = np.arange(4, dtype=np.int64) % 2
    return Dataset(name="tiny", x_train=x, y_train=y, x_val=x, y_val=y, x_test=x, y_test=y,
                   class_names=["a", "b"], preprocessing=Preprocessing(), kind=kind,
                   augmentable={"flip": flip})


def _layer_types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_augmentation_keeps_the_batch_shape_in_training_mode():
    dataset = _dataset(flip=True, shape=(12, 10, 3))
    augment = augmentation_layers(dataset, seed=0)
    out = np.asarray(augment(dataset.x_train, training=True))
    assert out.shape == dataset.x_train.shape
    assert not np.allclose(out, dataset.x_train)


def test_augmentation_is_identity_at_inference():
    dataset = _dataset(flip=True)
    out = np.asarray(augmentation_layers(dataset, seed=0)(dataset.x_train, training=False))
    np.testing.assert_allclose(out, dataset.x_train)


def test_flip_is_added_only_when_the_dataset_allows_it():
    assert _layer_types(augmentation_layers(_dataset(flip=True))) == [
        "RandomTranslation", "RandomZoom", "RandomFlip"]
    assert _layer_types(augmentation_layers(_dataset(flip=False))) == [
        "RandomTranslation", "RandomZoom"]


def test_augmentation_is_a_keras2_sequential():
    from edgekit._compat import keras

    assert isinstance(augmentation_layers(_dataset()), keras().Sequential)


def test_sequence_dataset_cannot_be_augmented():
    with pytest.raises(OptionError, match=r"--augment works on image datasets; received sequence "
                                          r"data \(12, 10\)"):
        augmentation_layers(_dataset(kind="sequence", shape=(12, 10)))
