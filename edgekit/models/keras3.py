"""Keras 3 models brought by users: what ``import keras`` saves, loaded beside tf-keras.

``TF_USE_LEGACY_KERAS=1`` (set by :mod:`edgekit._compat`) only redirects ``tf.keras``; plain
``import keras`` still gives Keras 3 in the same process. So a Keras 3 ``.keras`` / ``.h5`` file
loads with Keras 3 itself, and a SavedModel without a Keras model inside (Keras 3's
``model.export()``, ``tf.saved_model.save``) is wrapped in a Keras 3 ``TFSMLayer`` that calls its
serving signature. Post-training quantization and export convert these directly; pruning,
clustering and QAT rebuild the graph as tf-keras first (:mod:`edgekit.models.keras3_rebuild`).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import shutil
import tempfile
from pathlib import Path

from edgekit._compat import _import_silently, tensorflow
from edgekit.errors import ModelError, short_reason
from edgekit.models.custom_objects import missing_message
from edgekit.models.keras3_rebuild import is_keras3_model as check


def keras3():
    """The Keras 3 module (``import keras``), imported after TensorFlow with Keras 2 selected."""

    tensorflow()
    return _import_silently("keras")


def is_keras3_model(model) -> bool:
    """True for a Keras 3 model object (not a tf-keras one), a user's subclass included."""

    return check(model)


def load_keras3(path: Path, info, settings):
    """Load a Keras 3 file, or a Keras-less SavedModel through its serving signature.

    Raises:
        ModelError: the file does not load, or the SavedModel has no usable serving signature.
    """
    keras = keras3()
    if info.writer == "tensorflow":
        return _saved_model(path, keras)
    objects = settings.custom_objects.objects or None
    try:
        if settings.unsafe_deserialization:
            keras.config.enable_unsafe_deserialization()
        model = keras.saving.load_model(str(path), compile=False, custom_objects=objects,
                                        safe_mode=not settings.unsafe_deserialization)
    except Exception as error:  # noqa: BLE001  (zip, h5py, Keras: any reader fails)
        missing = [name for name in info.custom_classes if name not in (objects or {})]
        if missing:
            raise ModelError(missing_message(repr(str(path)), missing)) from error
        raise ModelError(
            f"cannot read Keras {info.keras_version or '3'} model {str(path)!r}: "
            f"{short_reason(error)}; expected a model saved by Keras {keras.__version__} or "
            "earlier; save it again with model.save('model.keras')") from error
    _check_single_input_output(model, f"model {str(path)!r}")
    return model


def _saved_model(path: Path, keras):
    """A Keras 3 functional model around the SavedModel's serving signature."""

    tf = tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # noqa: BLE001
        raise ModelError(f"cannot read SavedModel {str(path)!r}: {type(error).__name__}; "
                         "expected a folder written by model.export() or tf.saved_model.save") \
            from error
    signature = (getattr(loaded, "signatures", None) or {}).get("serving_default")
    if signature is None:
        raise ModelError(f"SavedModel {str(path)!r} has no 'serving_default' signature, so "
                         "edgekit cannot tell what to call; export it with model.export(folder)")
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"SavedModel {str(path)!r} serves {len(inputs)} input(s) and "
                         f"{len(outputs)} output(s); edgekit handles single-input single-output "
                         "classifiers")
    (input_name, spec), = inputs.items()
    if spec.shape.rank is None or any(size is None for size in spec.shape[1:]):
        raise ModelError(f"SavedModel {str(path)!r} input {input_name!r} has shape {spec.shape}; "
                         "expected a fixed sample shape (only the batch may be None)")
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    model_input = keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype.name, name=input_name)
    output = layer(model_input)
    if isinstance(output, dict):
        output = next(iter(output.values()))
    model = keras.Model(model_input, output, name=path.resolve().name or "saved_model")
    model._edgekit_saved_model = str(path)  # what compress copies instead of re-saving
    return model


def _check_single_input_output(model, source: str) -> None:
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs:
        raise ModelError(
            f"{source} is a subclassed Keras 3 model with no functional graph; edgekit needs "
            "its inputs and outputs. Call it once on data before saving, or export it with "
            "model.export(folder)")
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"{source} has {len(inputs)} inputs and {len(outputs)} outputs; edgekit handles "
            "single-input single-output classifiers; save a model with one input and one output")


def is_subclassed(model) -> bool:
    """A Keras 3 model with no functional graph (its layers run from Python code in ``call``)."""
    return is_keras3_model(model) and not getattr(model, "inputs", None)


def functional_view(model, sample_shape, fine_tunes: bool, source: str):
    """A subclassed Keras 3 model as a functional model around its traced ``call``.

    Post-training quantization and export work on it; it is kept as a SavedModel (the traced
    graph), since a .keras file of it would need its Python class to load again.

    Raises:
        ModelError: for pruning, clustering or QAT (they need the layers of a functional graph),
            or a ``call`` that cannot be traced on the dataset's sample shape.
    """
    if not is_subclassed(model):
        return model
    kind = type(model).__name__
    if fine_tunes:
        raise ModelError(
            f"{source} is a subclassed Keras 3 model ({kind}) whose layers run from Python code, "
            "so pruning, clustering and QAT cannot wrap them. Rebuild it as a functional model "
            "(keras.Input ... keras.Model(inputs, outputs)), or use post-training quantization "
            "(--int8, --int8-io, --dynamic, --fp16, --int16x8), which traces its call")

    keras = keras3()
    try:
        model_input = keras.Input(shape=tuple(sample_shape), name="input")
        wrapper = keras.Model(model_input, model(model_input), name=model.name)
    except Exception as error:  # noqa: BLE001  (the user's call() may raise anything)
        raise ModelError(f"{source} ({kind}) cannot be traced on samples of shape "
                         f"{tuple(sample_shape)}: {type(error).__name__}: {error}. Check that its "
                         "call() takes one batch of the dataset's samples") from error
    folder = Path(tempfile.mkdtemp(prefix="edgekit-traced-"))
    atexit.register(shutil.rmtree, folder, True)
    with contextlib.redirect_stdout(io.StringIO()):  # export() prints its endpoints
        wrapper.export(str(folder / "saved_model"), verbose=False)
    wrapper._edgekit_saved_model = str(folder / "saved_model")
    return wrapper
