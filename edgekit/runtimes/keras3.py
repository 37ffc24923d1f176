"""Keras 3: a model saved by ``import keras`` (or a Keras-less SavedModel) as the reference.

Runs the model as Keras 3 itself loaded it, through one ``tf.function`` like
:class:`edgekit.runtimes.keras.KerasModel`; registered apart so a benchmark row says which Keras
ran it, and a Keras 3 file is never silently rebuilt as tf-keras before it is measured.

Example:
    >>> from edgekit.runtimes.keras3 import Keras3Model
    >>> runtime = Keras3Model.load("my_model.keras", num_threads=1)
    >>> probabilities = runtime.run(x_test)
"""

from __future__ import annotations

import os

from edgekit.errors import ModelError
from edgekit.models.keras3 import is_keras3_model, keras3
from edgekit.runtimes.keras import KerasModel, is_keras_artifact, written_by_keras3


class Keras3Model(KerasModel):
    """A Keras 3 model behind the runtime interface (``load``, ``run``, ``describe``)."""

    name = "keras3"
    libraries = ("keras", "tensorflow")

    @classmethod
    def accepts(cls, path: str | os.PathLike) -> bool:
        """A Keras file or SavedModel folder written by Keras 3 (or by TensorFlow without Keras)."""
        return is_keras_artifact(path) and written_by_keras3(path)

    @classmethod
    def import_library(cls) -> None:
        super().import_library()
        keras3()

    @classmethod
    def load(cls, path, num_threads=None, custom_objects=None, unsafe_deserialization=None):
        runtime = super().load(path, num_threads=num_threads, custom_objects=custom_objects,
                               unsafe_deserialization=unsafe_deserialization)
        if not is_keras3_model(runtime.model):
            raise ModelError(f"{runtime.source} was written by tf-keras, not Keras 3; run it with "
                             "the keras runtime")
        return runtime

    def describe(self) -> dict:
        return {**super().describe(), "keras_version": keras3().__version__}
