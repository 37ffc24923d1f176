"""Load a user's model file (.keras, .h5 or a SavedModel folder) as a tf-keras model.

Whatever goes wrong (missing path, unknown format, corrupt file, a model edgekit cannot
work with) becomes one :class:`ModelError` line, never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgekit._compat import keras
from edgekit.errors import ModelError
from edgekit.models.describe import check_single_input_output

KERAS_EXTENSIONS = (".keras",)
HDF5_EXTENSIONS = (".h5", ".hdf5")
EXPECTED = "a .keras or .h5/.hdf5 file, or a SavedModel folder saved by tf-keras"
_REASON_LENGTH = 200


def load_model_file(path: str | os.PathLike):
    """Load a tf-keras model from a ``.keras`` or ``.h5``/``.hdf5`` file or a SavedModel folder.

    The model is loaded without its training config (``compile=False``): the trainer compiles
    it again. Custom layers are not supported (only Keras' own layers can be read back).

    Args:
        path: the file or SavedModel folder.

    Returns:
        The ``tf_keras.Model``, with one input and one output.

    Raises:
        ModelError: if the path is missing, has an unknown extension, cannot be read (corrupt or
            truncated, or saved by a Keras that tf-keras cannot read), is a SavedModel without a
            Keras model inside, or holds a model with more than one input or output.

    Example:
        >>> model = load_model_file("runs/digits/model.keras")
        >>> model.output_shape
        (None, 10)
    """
    model_path = Path(path).expanduser()
    if not model_path.exists():
        raise ModelError(
            f"model path {str(path)!r} does not exist; expected {EXPECTED}; check the path"
        )
    if model_path.is_dir():
        _check_saved_model_folder(model_path)
    elif model_path.suffix.lower() not in KERAS_EXTENSIONS + HDF5_EXTENSIONS:
        raise ModelError(
            f"model file {str(path)!r} has extension {model_path.suffix or '(none)'!r}; expected "
            f"{EXPECTED}; save it with model.save('model.keras')"
        )
    tf_keras = keras()
    try:
        model = tf_keras.models.load_model(str(model_path), compile=False)
    except Exception as error:  # noqa: BLE001  (h5py, zipfile, protobuf, Keras: any reader fails)
        raise ModelError(
            f"cannot read model {str(path)!r}: {short_reason(error)}; expected {EXPECTED}, "
            f"readable by tf-keras {tf_keras.__version__}; save it again"
        ) from None
    check_single_input_output(model, source=f"model {str(path)!r}")
    return model


def short_reason(error: BaseException) -> str:
    """The exception's type and the first line of its message, cut to a few words."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = lines[0] if lines else "no message"
    if len(message) > _REASON_LENGTH:
        message = message[: _REASON_LENGTH - 3] + "..."
    return f"{type(error).__name__}: {message}"


def _check_saved_model_folder(folder: Path) -> None:
    if not (folder / "saved_model.pb").is_file() and not (folder / "saved_model.pbtxt").is_file():
        raise ModelError(
            f"folder {str(folder)!r} is not a SavedModel (no saved_model.pb inside); expected "
            f"{EXPECTED}; pass the folder that holds saved_model.pb"
        )
    if not (folder / "keras_metadata.pb").is_file():
        raise ModelError(
            f"SavedModel {str(folder)!r} holds no Keras model (no keras_metadata.pb; saved with "
            f"tf.saved_model.save?); expected one saved by tf-keras model.save(folder); save the "
            f"Keras model with model.save('model.keras')"
        )
