"""Keras / TensorFlow: a .keras / .h5 / SavedModel run as a compiled ``tf.function``.

The reference every artifact is compared with. Calls go through one ``tf.function`` with a
dynamic batch dimension (not ``model.predict``, whose per-call set-up would dominate the timing of
a small model), so its latency is what a TensorFlow server would see.

Example:
    >>> from edgekit.runtimes.keras import KerasModel
    >>> runtime = KerasModel.load("models/cnn-digits/model.keras", num_threads=1)
    >>> probabilities = runtime.run(x_test)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgekit._compat import tensorflow, tfmot
from edgekit.errors import DataError, ModelError
from edgekit.models.fileinfo import read_model_info
from edgekit.models.loading import is_quantization_aware_file, load_model_file
from edgekit.options import Option
from edgekit.runtimes.base import NUM_THREADS, Runtime

EXPECTED = "a .keras / .h5 file or a SavedModel folder written by tf-keras (edgekit train / compress)"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
# Writers of model files (read_model_info) that Keras 3 itself must run.
KERAS3_WRITERS = ("keras3", "tensorflow")
# Shared with every command that loads a model file (--custom-objects, --unsafe-deserialization);
# not repeated on the benchmark's command line.
CUSTOM_OBJECTS = Option("custom_objects", str, None, "the module defining the model's custom "
                        "layers (a .py file or a module name)", cli=False)
UNSAFE_DESERIALIZATION = Option("unsafe_deserialization", bool, False, "let a model file you "
                                "trust run the Python code it holds", cli=False)


def is_keras_artifact(path: str | os.PathLike) -> bool:
    """A .keras / .h5 / .hdf5 file, or a SavedModel folder."""
    path = Path(path)
    if path.is_dir():
        return (path / "saved_model.pb").is_file()
    return path.suffix.lower() in KERAS_SUFFIXES


def written_by_keras3(path: str | os.PathLike) -> bool:
    """True for a Keras 3 file (or a Keras-less SavedModel), read without TensorFlow."""
    try:
        return read_model_info(path).writer in KERAS3_WRITERS
    except ModelError:
        return False  # unreadable: loading it says why


class KerasModel(Runtime):
    """A tf-keras model behind the runtime interface (``load``, ``run``, ``describe``).

    Args:
        model: a loaded tf-keras model with one input and one output.
        num_threads: TensorFlow intra-op threads; applied only before TensorFlow's first op runs
            in this process (the benchmark gives each artifact its own process).
        source: how messages name the model (its path).
    """

    name = "keras"
    format = "keras"
    suffixes = KERAS_SUFFIXES
    options = (NUM_THREADS, CUSTOM_OBJECTS, UNSAFE_DESERIALIZATION)
    libraries = ("tensorflow", "tf-keras")

    def __init__(self, model, num_threads: int | None = None, source: str = "model"):
        tf = tensorflow()
        self.model = model
        self.num_threads = num_threads
        self.source = source
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ModelError(f"Keras model {source} has {len(model.inputs)} inputs and "
                             f"{len(model.outputs)} outputs; edgekit runs single-input "
                             "single-output classifiers")
        self._input_shape = tuple(int(size) for size in model.input_shape[1:])
        self._input_dtype = tf.as_dtype(model.inputs[0].dtype).name
        signature = tf.TensorSpec((None, *self._input_shape), model.inputs[0].dtype)
        self._function = tf.function(lambda x: model(x, training=False),
                                     input_signature=[signature])

    @classmethod
    def accepts(cls, path: str | os.PathLike) -> bool:
        """A Keras file or SavedModel folder written by tf-keras (Keras 3's run as keras3)."""
        return is_keras_artifact(path) and not written_by_keras3(path)

    @classmethod
    def import_library(cls) -> None:
        tensorflow()

    @classmethod
    def load(cls, path: str | os.PathLike, num_threads: int | None = None, custom_objects=None,
             unsafe_deserialization: bool | None = None) -> "KerasModel":
        """Load a model file; ModelError for a missing or unreadable one.

        ``custom_objects`` / ``unsafe_deserialization`` as in
        :func:`edgekit.models.load_model_file` (None: what the folder's manifest recorded).
        """
        path = Path(path)
        if not path.exists():
            raise ModelError(f"Keras model {str(path)!r} does not exist; expected {EXPECTED}")
        tf = tensorflow()
        if num_threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(int(num_threads))
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # TensorFlow already ran an op: its thread pools are fixed
                pass
        loading = {"custom_objects": custom_objects,
                   "unsafe_deserialization": unsafe_deserialization or None}
        try:
            model = load_model_file(path, **loading)
        except ModelError as first:
            if not is_quantization_aware_file(path):
                raise
            try:  # a quantization-aware model loads only inside tfmot's scope
                with tfmot().quantization.keras.quantize_scope():
                    model = load_model_file(path, **loading)
            except Exception as second:  # noqa: BLE001  (the first error says what is wrong)
                raise first from second
        return cls(model, num_threads=num_threads, source=repr(str(path)))

    @property
    def input_shape(self) -> tuple:
        return self._input_shape

    @property
    def input_dtype(self) -> str:
        return self._input_dtype

    def describe(self) -> dict:
        output_shape = [-1, *[int(size) for size in self.model.output_shape[1:]]]
        return {"runtime": self.name, "num_threads": self.num_threads,
                "input": {"name": self.model.inputs[0].name, "shape": [-1, *self._input_shape],
                          "dtype": self._input_dtype, "quantization": None},
                "output": {"name": self.model.outputs[0].name, "shape": output_shape,
                           "dtype": "float32", "quantization": None}}

    def run(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Float32 outputs for float32 model-ready inputs ``(N, *input_shape)``."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != len(self._input_shape) + 1 or tuple(x.shape[1:]) != self._input_shape:
            raise DataError(f"samples of shape {tuple(x.shape)} do not fit Keras model "
                            f"{self.source}, which takes (N, "
                            f"{', '.join(str(size) for size in self._input_shape)}); pass samples "
                            "of the dataset the model was trained on")
        step = max(1, int(batch_size))
        outputs = [self._function(x[start:start + step]).numpy()
                   for start in range(0, len(x), step)]
        if not outputs:
            return np.zeros((0, *self.model.output_shape[1:]), dtype=np.float32)
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def prepared_call(self, batch: np.ndarray):
        """The compiled function on ``batch``, converted to a tensor once, up front."""
        tensor = tensorflow().convert_to_tensor(np.asarray(batch, dtype=np.float32))
        function = self._function
        return (lambda: function(tensor).numpy()), "tf.function call on a prepared tensor"
