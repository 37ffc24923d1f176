"""Load a user's model file (.keras, .h5 or a SavedModel folder), safely.

Before Keras reads a file, :mod:`edgekit.models.fileinfo` reads its architecture without
TensorFlow: a ``Lambda`` layer or any other serialized Python code is refused unless the user
allowed it (``--unsafe-deserialization``), so loading never runs code from a model file the user
did not vouch for. Custom layers come from ``--custom-objects``. A model file inside an edgekit
model folder is loaded with what that folder's manifest recorded (its custom-objects module, if
unchanged, and its unsafe-deserialization permission for the very file edgekit wrote).

Whatever goes wrong (missing path, unknown format, corrupt file, a model edgekit cannot work
with) becomes one :class:`ModelError` line, never a traceback.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgekit._compat import keras
from edgekit.data.contract import preprocess_text
from edgekit.errors import ModelError, short_reason
from edgekit.manifest import sha256_file
from edgekit.models.custom_objects import (CustomObjects, from_record, load_custom_objects,
                                           missing_message)
from edgekit.models.describe import check_single_input_output
from edgekit.models.fileinfo import read_model_info, unsafe_code_message
from edgekit.models.keras3 import load_keras3

KERAS_EXTENSIONS = (".keras",)
HDF5_EXTENSIONS = (".h5", ".hdf5")
EXPECTED = "a .keras or .h5/.hdf5 file, or a SavedModel folder"
# Where a model folder's manifest keeps how its model file loads.
CUSTOM_OBJECTS_KEY = "custom_objects"
UNSAFE_KEY = "unsafe_deserialization"


@dataclass
class LoadSettings:
    """How to load a model: its custom objects and whether serialized code may run."""

    custom_objects: CustomObjects
    unsafe_deserialization: bool = False  # the user's own --unsafe-deserialization
    inherited_unsafe: bool = False  # the parent folder's manifest records that it was used

    def record(self) -> dict:
        """The manifest's ``model`` entries that let a later stage load the folder's files."""
        entries = {}
        if self.custom_objects.record():
            entries[CUSTOM_OBJECTS_KEY] = self.custom_objects.record()
        if self.unsafe_deserialization or self.inherited_unsafe:
            entries[UNSAFE_KEY] = True
        return entries


def plain_loading_options(options: dict):
    """Make ``preprocess`` / ``custom_objects`` plain config values, in place; return the latter.

    ``preprocess`` becomes its canonical text; a ``custom_objects`` path becomes a string, and a
    dict of classes (Python only, no plain value) leaves the options. Returns ``custom_objects``
    as given, for loading.
    """
    custom_objects = options.get("custom_objects")
    if custom_objects is not None and not isinstance(custom_objects, (str, os.PathLike)):
        options.pop("custom_objects")
    elif custom_objects is not None:
        options["custom_objects"] = os.fspath(custom_objects)
    if options.get("preprocess") is not None:
        options["preprocess"] = preprocess_text(options["preprocess"])
    return custom_objects


def load_settings(custom_objects=None, unsafe_deserialization: bool = False,
                  manifest: dict | None = None, source: str = "model") -> LoadSettings:
    """Settings from the user's options, else from a model folder's manifest."""
    recorded = (manifest or {}).get("model") if isinstance(manifest, dict) else None
    recorded = recorded if isinstance(recorded, dict) else {}
    if custom_objects is not None:
        objects = load_custom_objects(custom_objects)
    else:
        objects = from_record(recorded.get(CUSTOM_OBJECTS_KEY), source)
    return LoadSettings(objects, bool(unsafe_deserialization), bool(recorded.get(UNSAFE_KEY)))


def load_model_file(path: str | os.PathLike, custom_objects=None,
                    unsafe_deserialization: bool | None = None, settings: LoadSettings | None = None):
    """Load a tf-keras model from a ``.keras`` or ``.h5``/``.hdf5`` file or a SavedModel folder.

    The model is loaded without its training config (``compile=False``): the trainer compiles
    it again.

    Args:
        path: the file or SavedModel folder.
        custom_objects: a .py file, a module name, a dict or :class:`CustomObjects`; None uses
            what the manifest of the folder holding ``path`` recorded, if any.
        unsafe_deserialization: allow ``Lambda`` layers and other serialized code to run; None
            uses the manifest's record (only for the very file edgekit wrote there).
        settings: both at once (overrides the two arguments above).

    Returns:
        The ``tf_keras.Model``, with one input and one output.

    Raises:
        ModelError: if the path is missing, has an unknown extension, cannot be read, holds
            serialized code without permission, uses custom classes nobody defined, is a
            SavedModel without a Keras model inside, or has more than one input or output.

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
    if model_path.is_file() and model_path.suffix.lower() not in KERAS_EXTENSIONS + HDF5_EXTENSIONS:
        raise ModelError(
            f"model file {str(path)!r} has extension {model_path.suffix or '(none)'!r}; expected "
            f"{EXPECTED}; save it with model.save('model.keras')"
        )
    if settings is None:
        settings = load_settings(custom_objects, bool(unsafe_deserialization),
                                 _manifest_beside(model_path) if custom_objects is None else None,
                                 source=f"model {str(path)!r}")
    info = read_model_info(model_path)
    allowed = settings.unsafe_deserialization or _recorded_permission(model_path)
    if info.unsafe_layers and not allowed:
        raise ModelError(unsafe_code_message(info))
    settings = LoadSettings(settings.custom_objects, allowed, settings.inherited_unsafe)
    if info.writer != "tf-keras":
        return load_keras3(model_path, info, settings)
    tf_keras = keras()
    try:
        model = tf_keras.models.load_model(str(model_path), compile=False,
                                           custom_objects=settings.custom_objects.objects or None,
                                           safe_mode=not settings.unsafe_deserialization)
    except Exception as error:  # noqa: BLE001  (h5py, zipfile, protobuf, Keras: any reader fails)
        missing = [name for name in info.custom_classes
                   if name not in settings.custom_objects.objects and not _is_tfmot(name)]
        if missing:
            raise ModelError(missing_message(repr(str(path)), missing)) from error
        raise ModelError(
            f"cannot read model {str(path)!r}: {short_reason(error)}; expected {EXPECTED}, "
            f"readable by tf-keras {tf_keras.__version__}; save it again"
        ) from error
    check_single_input_output(model, source=f"model {str(path)!r}")
    return model


def _recorded_permission(model_path: Path) -> bool:
    """The folder's manifest allowed serialized code, and this is the very file edgekit wrote."""
    manifest = _manifest_beside(model_path)
    if not manifest or not (manifest.get("model") or {}).get(UNSAFE_KEY):
        return False
    return _written_by_edgekit(model_path, manifest)


def _manifest_beside(model_path: Path) -> dict | None:
    candidate = model_path.parent / "manifest.json"
    if not candidate.is_file():
        return None
    try:
        manifest = json.loads(candidate.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _written_by_edgekit(model_path: Path, manifest: dict) -> bool:

    entry = (manifest.get("files") or {}).get(model_path.name)
    return (isinstance(entry, dict) and model_path.is_file()
            and entry.get("sha256") == sha256_file(model_path))


def _is_tfmot(name: str) -> bool:
    return name.startswith(("Quantize", "Prune", "Cluster")) or name in ("NoOpQuantizeConfig",)


def is_quantization_aware_file(path) -> bool:
    """True for a model file holding tfmot's QAT wrappers (it loads inside quantize_scope)."""

    try:
        classes = read_model_info(path).custom_classes
    except ModelError:
        return False
    return any(name.startswith("Quantize") for name in classes)
