"""A folder edgekit wrote: its manifest, the folders it was made from, the artifacts it records.

Train and compress write a model folder (``model.keras``; compress adds its recipe's
``model.tflite``), export an ``export/`` sub-folder listing each artifact's file, precision,
sha256 and fidelity; each manifest's ``parent`` entry names what it was made from. A
:class:`ModelFolder` answers what every later stage asks of one: which stage wrote it, which
folders it descends from, where the artifact of a format and precision is (still the file that
was checked, or not), and which input contract it recorded.

Example:
    >>> folder = ModelFolder.open("models/cnn-digits-int8")
    >>> [ancestor.stage for ancestor in folder.chain()]
    ['compress', 'train']
    >>> folder.find_artifact("onnx", "int8", verify=True).path
    PosixPath('models/cnn-digits-int8/export/model_int8.onnx')
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from edgekit import manifest as manifest_io
from edgekit.data.contract import InputContract, record_of
from edgekit.errors import ModelError

EXPORT_STAGE = "export"
STAGE_KINDS = {"train": "training", "compress": "compression", EXPORT_STAGE: "export"}
# A compress recipe's TFLite conversion: QAT means int8, else its one PTQ flag, else fp32
# (the order of edgekit.compress.config.PTQ_MODES).
_PTQ_MODES = ("int8", "dynamic", "fp16", "int16x8")
_KERAS_PRECISIONS = {"float32": "fp32", "mixed_float16": "mixed-fp16", "mixed_bfloat16": "mixed-bf16"}
# Which words say how an artifact was made and how to make it again, per stage.
_REDO = {"train": ("trained", "train the model again"),
         "compress": ("compressed", "compress the model again"),
         EXPORT_STAGE: ("exported and checked", "export the model again")}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class NotAModelFolderError(ModelError):
    """A path that is not a folder edgekit wrote: missing, a file, or a folder without a manifest."""


def safe_model_name(name: str) -> str:
    """A model's name as a folder name (letters, digits, ``_``, ``.``, ``-``): the name export
    and deploy give a model in a Triton repository when none is passed.

    Example:
        >>> safe_model_name("my model (v2)")
        'my_model__v2_'
    """
    return _UNSAFE_NAME.sub("_", name).lstrip("_.-") or "model"


@dataclass(frozen=True)
class Artifact:
    """One file a folder's manifest records: ``name`` (``keras``, a compress recipe's
    ``tflite-<mode>``, an export's ``onnx-fp16``...), ``format`` (``keras``, ``saved_model``,
    ``tflite``, ``onnx``, ``mobile``...), ``precision`` (None when unrecorded), ``path``, the
    ``folder`` whose manifest records it, and that manifest's ``entry`` for it.
    """

    name: str
    format: str
    precision: str | None
    path: Path
    folder: "ModelFolder" = field(repr=False, compare=False)
    entry: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def status(self) -> str | None:
        """An export's verdict (``passed`` / ``failed``); None for a model folder's own files."""
        return self.entry.get("status")

    @property
    def sha256(self) -> str | None:
        """The sha256 recorded for the file, or None (a SavedModel folder, an old manifest)."""
        return self.entry.get("sha256") or self.folder.recorded_sha256(self.path)

    def verify(self) -> Path:
        """Check the file is there and is the one recorded; returns its path.

        Raises:
            ModelError: when it is missing, or its sha256 differs from the manifest's.
        """
        made, redo = _REDO.get(self.folder.stage, ("written", "re-run the stage that wrote it"))
        if not self.path.exists():
            raise ModelError(f"{self.path} is missing (listed in {self.folder.manifest_path}); {redo}")
        for path, sha256 in self._recorded_files().items():
            try:
                changed = manifest_io.sha256_file(path) != sha256
            except OSError as error:
                raise ModelError(f"cannot read {path} to check it against "
                                 f"{self.folder.manifest_path} ({error.strerror}); {redo}") from error
            if changed:
                raise ModelError(f"{path} changed since it was {made} (sha256 differs from its "
                                 f"manifest); {redo}")
        return self.path

    def _recorded_files(self) -> dict[Path, str]:
        """``{file: recorded sha256}`` for the file, or for each file of a SavedModel folder."""
        if self.entry.get("sha256") and self.path.is_file():
            return {self.path: self.entry["sha256"]}
        files = self.folder.manifest.get("files") or {}
        relative = self.folder.relative(self.path)
        if relative is None:
            return {}
        return {self.folder.path / name: entry["sha256"] for name, entry in files.items()
                if (name == relative or name.startswith(relative + "/"))
                and isinstance(entry, dict) and entry.get("sha256")}


@dataclass(frozen=True)
class ModelFolder:
    """A folder edgekit wrote (train, compress or export), read through its manifest.

    Attributes:
        path: the folder, as given (not resolved: messages show what the user typed).
        manifest: its manifest, read and checked by :func:`edgekit.manifest.read_manifest`.
    """

    path: Path
    manifest: dict = field(repr=False, compare=False)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "ModelFolder":
        """Read the folder at ``path``.

        Raises:
            NotAModelFolderError: for a path that does not exist, is a file, or has no manifest.
            ModelError: for a manifest that is not valid JSON or not an edgekit manifest.
        """
        folder, expected = Path(path).expanduser(), "expected a folder written by edgekit train, compress or export"
        if not folder.is_dir():
            what = "is a file" if folder.exists() else "does not exist"
            raise NotAModelFolderError(f"model folder {str(path)!r} {what}; {expected}")
        if not (folder / manifest_io.MANIFEST_NAME).is_file():
            raise NotAModelFolderError(f"{str(path)!r} has no {manifest_io.MANIFEST_NAME}; {expected}")
        manifest = manifest_io.read_manifest(folder)
        _check_entries(folder / manifest_io.MANIFEST_NAME, manifest)
        return cls(folder, manifest)

    @classmethod
    def find(cls, path: str | os.PathLike) -> "ModelFolder | None":
        """The folder at ``path``, or None when it is not one edgekit wrote.

        Raises:
            ModelError: for a folder whose manifest is there but broken.
        """
        try:
            return cls.open(path)
        except NotAModelFolderError:
            return None

    @classmethod
    def recording(cls, path: str | os.PathLike, levels: int = 3) -> tuple["ModelFolder", Artifact | None] | None:
        """The folder whose manifest records the file at ``path`` (same sha256), and its entry.

        Looks in the file's folder and up to ``levels - 1`` folders above it; a folder with a
        broken manifest is passed over. The artifact is None when the manifest lists the file
        among its files but not as an artifact (``edgekit inspect`` starts its lineage here).
        """
        path = Path(path)
        if not path.is_file():
            return None
        digest = manifest_io.sha256_file(path)
        for above in list(path.parents)[:levels]:
            try:
                folder = cls.find(above)
            except ModelError:  # a broken manifest records nothing
                folder = None
            if folder is None:
                continue
            artifact = next((item for item in folder.artifacts(include_exports=False)
                             if item.sha256 == digest), None)
            files = folder.manifest.get("files") or {}
            if artifact is not None or any(isinstance(entry, dict) and entry.get("sha256") == digest
                                           for entry in files.values()):
                return folder, artifact
        return None


    @property
    def manifest_path(self) -> Path:
        return self.path / manifest_io.MANIFEST_NAME

    @property
    def stage(self) -> str | None:
        """``train``, ``compress`` or ``export``; None for a manifest that does not say."""
        return self.manifest.get("stage")

    @property
    def kind(self) -> str:
        """``training``, ``compression`` or ``export``, or the stage itself when edgekit has no word."""
        return STAGE_KINDS.get(self.stage, self.stage or "unknown")

    @property
    def is_export(self) -> bool:
        return self.stage == EXPORT_STAGE

    @property
    def name(self) -> str:
        """The name the manifest gives the folder, else the folder's own name."""
        return self.manifest.get("name") or self.path.resolve().name

    @property
    def created(self) -> str:
        return self.manifest.get("created") or ""

    @property
    def model_name(self) -> str:
        """The model's name: the folder's, or for an export folder the model it was exported from."""
        if not self.is_export:
            return self.path.resolve().name
        parent = self.parent_record.get("path")
        return Path(parent).resolve().name if parent else self.path.resolve().parent.name

    @property
    def parent_record(self) -> dict:
        """The manifest's ``parent`` entry (empty for a model trained from scratch)."""
        return self.manifest.get("parent") or {}

    @property
    def model_file(self) -> Path:
        """The Keras model (or SavedModel folder) a train / compress folder holds."""
        return self.path / self._model_entry().get("file", "model.keras")

    @property
    def qat_file(self) -> Path | None:
        """A compress folder's quantization-aware model, when its recipe had QAT."""
        name = self._model_entry().get("qat_file")
        return self.path / name if name else None

    @property
    def tflite_mode(self) -> str | None:
        """A compress recipe's TFLite conversion mode (``int8``, ``fp16``, ``fp32``...); else None."""
        if self.stage != "compress":
            return None
        config = self.manifest.get("config") or {}
        if config.get("qat"):
            return "int8"
        return next((mode for mode in _PTQ_MODES if config.get(mode)), "fp32")

    def input_contract(self) -> InputContract | None:
        """The input contract the manifest recorded (see :mod:`edgekit.data.contract`), or None."""
        return record_of(self.manifest)

    def setting(self, key: str, default=None):
        """The first value of ``key`` in the calibration or config section of this folder or of
        the folders it descends from (compress leaves the seed, dataset... to its parent's run).

        Raises:
            ModelError: for a parent whose manifest is broken.
        """
        for folder in self.chain():
            for section in (folder.manifest.get("calibration"), folder.manifest.get("config")):
                value = section.get(key) if isinstance(section, dict) else None
                if value is not None:
                    return value
        return default

    def relative(self, path: str | os.PathLike) -> str | None:
        """``path`` relative to this folder, as the manifest's ``files`` keys write it; or None."""
        resolved, root = Path(path).resolve(), self.path.resolve()
        return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else None

    def recorded_sha256(self, path: str | os.PathLike) -> str | None:
        """The sha256 the manifest's ``files`` entry holds for ``path``, or None."""
        relative = self.relative(path)
        entry = (self.manifest.get("files") or {}).get(relative) if relative else None
        return entry.get("sha256") if isinstance(entry, dict) else None


    def parent(self) -> "ModelFolder | None":
        """The folder this one was made from; None for a root, a model file or a folder gone.

        Raises:
            ModelError: for a parent folder whose manifest is there but broken.
        """
        record = self.parent_record
        given, absolute = record.get("path"), record.get("absolute_path")
        same = given and absolute and Path(given).resolve() == Path(absolute).resolve()
        candidates = [given if same else absolute, given]  # the path as recorded, if it is that one
        if record.get("manifest"):
            candidates.append(Path(record["manifest"]).parent)
        for candidate in candidates:
            if candidate and Path(candidate).is_dir():
                found = ModelFolder.find(candidate)
                if found is not None:
                    return found
        return None

    def chain(self, strict: bool = True) -> list["ModelFolder"]:
        """This folder, then each folder it descends from, up to one made from scratch or from a
        model file, or gone. A parent met twice (a cycle, a copied folder) ends the chain too.

        Raises:
            ModelError: for a parent whose manifest is broken; ``strict=False`` ends the chain there.
        """
        folders, seen = [self], {self.path.resolve()}
        while True:
            try:
                parent = folders[-1].parent()
            except ModelError:
                if strict:
                    raise
                return folders
            if parent is None or parent.path.resolve() in seen:
                return folders
            seen.add(parent.path.resolve())
            folders.append(parent)

    def exports(self) -> list["ModelFolder"]:
        """The export folders of a model folder (its sub-folders), or ``[self]`` for one.

        Raises:
            ModelError: for a sub-folder whose manifest is there but broken.
        """
        if self.is_export:
            return [self]
        found = (ModelFolder.find(sub) for sub in sorted(self.path.iterdir()) if sub.is_dir())
        return [folder for folder in found if folder is not None and folder.is_export]

    def artifacts(self, include_exports: bool = True) -> list[Artifact]:
        """Every file the manifest records as a model or an artifact, then its exports' files.

        A train / compress folder gives its Keras model (``keras``) and a compress recipe's
        TFLite file (``tflite-<mode>``); an export folder gives each artifact that has a file.
        """
        found = []
        if self.is_export:
            for entry in (self.manifest.get("artifacts") or {}).values():
                if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                    found.append(Artifact(entry.get("name", entry["file"]), entry.get("format", ""),
                                          entry.get("precision"), self.path / entry["file"], self, entry))
            return found
        model = self._model_entry()
        if "file" in model or self.model_file.exists():
            policy = (self.manifest.get("runtime") or {}).get("precision_policy") or "float32"
            found.append(Artifact("keras", model.get("format", "keras"),
                                  _KERAS_PRECISIONS.get(policy, policy), self.model_file, self, model))
        tflite = self.path / model.get("tflite", "model.tflite")
        if self.tflite_mode is not None and ("tflite" in model or tflite.exists()):
            found.append(Artifact(f"tflite-{self.tflite_mode}", "tflite", self.tflite_mode, tflite,
                                  self, {"file": tflite.name}))
        if include_exports:
            for export in self.exports():
                found.extend(export.artifacts())
        return found

    def find_artifact(self, kind: str, precision: str | None = None, verify: bool = False,
                      include_exports: bool = True) -> Artifact | None:
        """The artifact named ``kind`` (``onnx-int8``), or of format ``kind`` and ``precision``.

        Among several (a folder exported more than once), one that did not fail its fidelity
        check wins, then the newest; the caller judges a failed one (:attr:`Artifact.status`).

        Args:
            kind: an artifact name (``keras``, ``tflite-int8``, ``onnx-fp16``) or a format
                (``keras``, ``tflite``, ``onnx``), with ``precision`` (``fp32``, ``int8``...).
            verify: check the file is there and has the sha256 its manifest recorded.
            include_exports: also look in a model folder's export folders.

        Returns:
            The artifact, or None when no manifest records one.

        Raises:
            ModelError: with ``verify``, for a file missing or changed since it was recorded;
                for a broken manifest among the exports.
        """
        matches = [artifact for artifact in self.artifacts(include_exports)
                   if artifact.name == kind or (artifact.format == kind
                                                and precision in (None, artifact.precision))]
        if not matches:
            return None
        best = max(matches, key=lambda artifact: (artifact.status != "failed", artifact.folder.created))
        if verify:
            best.verify()
        return best

    def _model_entry(self) -> dict:
        model = self.manifest.get("model")
        return model if isinstance(model, dict) else {}


def _check_entries(path: Path, manifest: dict) -> None:
    """The entries ModelFolder walks must have their documented shapes."""
    shapes = {"parent": dict, "artifacts": dict, "files": dict, "calibration": dict, "stage": str,
              "name": str, "created": str}
    for key, expected in shapes.items():
        value = manifest.get(key)
        if value is not None and not isinstance(value, expected):
            raise ModelError(f"{path} has a {key!r} entry of type {type(value).__name__}; expected "
                             f"{'an object' if expected is dict else 'a string'}. Re-run the stage that wrote it")


__all__ = ["EXPORT_STAGE", "STAGE_KINDS", "Artifact", "ModelFolder", "NotAModelFolderError",
           "safe_model_name"]
