"""A user's custom layers and functions: ``--custom-objects FILE.py`` or ``package.module``.

The classes and functions a module defines (or its ``CUSTOM_OBJECTS`` dict) become the
``custom_objects`` Keras loads the model with. The manifest records the module's path and sha256,
so a child folder reloads without the flag while the file is unchanged; a changed or missing file
is refused with a line that says so (its code would no longer be the code the model was made with).

Importing the module runs its code: that is what the user asked for by naming it.

Example:
    >>> objects = load_custom_objects("my_layers.py")
    >>> sorted(objects.objects)
    ['Swish', 'scaled_relu']
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import ModelError, OptionError
from edgekit.manifest import sha256_file

HOW = ("pass --custom-objects FILE.py (or package.module) defining the classes, or a "
       "CUSTOM_OBJECTS dict")


@dataclass
class CustomObjects:
    """What Keras needs to rebuild a model's custom layers, and where it came from."""

    objects: dict = field(default_factory=dict)
    spec: str | None = None
    path: str | None = None
    sha256: str | None = None

    def record(self) -> dict | None:
        """The manifest entry (None when there are no custom objects)."""
        if self.spec is None:
            return None
        return {"spec": self.spec, "path": self.path, "sha256": self.sha256,
                "names": sorted(self.objects)}

    def __bool__(self) -> bool:
        return bool(self.objects)


def load_custom_objects(spec, flag: str = "--custom-objects") -> CustomObjects:
    """Import ``spec`` (a .py file, a dotted module name, a dict or None) as custom objects.

    Raises:
        OptionError: a file or module that does not exist, does not import, or defines nothing.
    """
    if spec is None:
        return CustomObjects()
    if isinstance(spec, CustomObjects):
        return spec
    if isinstance(spec, dict):
        return CustomObjects(objects=dict(spec), spec="<custom_objects dict>")
    if not isinstance(spec, (str, os.PathLike)):
        raise OptionError(f"{flag} takes a .py file or a module name; received {spec!r}")
    text = os.fspath(spec)
    if text.endswith(".py") or os.sep in text or Path(text).is_file():
        module, path = _import_file(Path(text).expanduser(), flag)
    else:
        module, path = _import_module(text, flag)
    objects = _objects_of(module)
    if not objects:
        raise OptionError(f"{flag} {text!r} defines no class, no function and no CUSTOM_OBJECTS "
                          "dict; expected the module that defines the model's custom layers")
    return CustomObjects(objects=objects, spec=text, path=str(path) if path else None,
                         sha256=sha256_file(path) if path else None)


def from_record(record: dict | None, source: str) -> CustomObjects:
    """Reload the custom objects a manifest recorded, if their file is unchanged.

    Raises:
        ModelError: the recorded file is missing or its sha256 changed.
    """
    if not isinstance(record, dict) or not record.get("spec"):
        return CustomObjects()
    path = record.get("path")
    if path and not Path(path).is_file():
        raise ModelError(
            f"{source} was made with custom objects from {path}, which is missing now; "
            f"pass --custom-objects with the module that defines {', '.join(record.get('names') or [])}")
    if path and record.get("sha256") and sha256_file(Path(path)) != record["sha256"]:
        raise ModelError(
            f"{source} was made with custom objects from {path}, and that file has changed since "
            f"(sha256 {record['sha256'][:12]}... recorded); its layers may no longer compute what "
            "the model was made with. Pass --custom-objects again to use the file as it is now")
    return load_custom_objects(path or record["spec"])


def missing_message(source: str, missing: list[str]) -> str:
    return (f"model {source} uses custom class(es) {', '.join(missing)} that edgekit cannot "
            f"rebuild without their code; {HOW}")


def _import_file(path: Path, flag: str):
    if not path.is_file():
        raise OptionError(f"{flag} file {str(path)!r} does not exist; expected a .py file "
                          "defining the model's custom layers")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"edgekit_custom_objects_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise OptionError(f"{flag} {str(path)!r} is not a Python file; expected a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001  (the user's code may raise anything)
        sys.modules.pop(name, None)
        raise OptionError(f"{flag} {str(path)!r} does not import: {type(error).__name__}: "
                          f"{error}; fix the file, or check it with python {path}") from error
    return module, path.resolve()


def _import_module(name: str, flag: str):
    try:
        module = importlib.import_module(name)
    except Exception as error:  # noqa: BLE001
        raise OptionError(f"{flag} {name!r} does not import: {type(error).__name__}: {error}; "
                          "pass an importable module name or a .py file path") from error
    path = getattr(module, "__file__", None)
    return module, Path(path).resolve() if path else None


def _objects_of(module) -> dict:
    declared = getattr(module, "CUSTOM_OBJECTS", None)
    if isinstance(declared, dict):
        return dict(declared)
    objects = {}
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(value) or inspect.isfunction(value):
            objects[name] = value
            registered = _registered_name(value)
            if registered and registered != name:
                objects[registered] = value
    return objects


def _registered_name(value) -> str | None:
    """Keras 3's ``package>Name`` for an object registered with register_keras_serializable."""
    keras3 = sys.modules.get("keras")
    saving = getattr(keras3, "saving", None)
    if saving is None or not hasattr(saving, "get_registered_name"):
        return None
    try:
        return saving.get_registered_name(value)
    except Exception:  # noqa: BLE001
        return None
