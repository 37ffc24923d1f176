"""What a benchmark measures: every artifact of a model folder, or the files given, with their data.

A *subject* is one model folder (or the loose files that share a dataset): its artifacts, the Keras
model they were converted from (the fidelity reference) and where its dataset and preprocessing
come from (the manifest, so every artifact sees exactly the inputs the model was trained on).

Example:
    >>> subjects = discover(["models/cnn-digits", "models/cnn-digits-int8"])
    >>> [artifact.name for artifact in subjects[0].artifacts]
    ['keras', 'tflite-fp32', 'onnx-fp32', 'onnx-fp16', 'onnx-int8']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgekit import manifest as manifest_io
from edgekit.data.contract import record_of
from edgekit.errors import ModelError, OptionError
from edgekit.models.fileinfo import read_model_info
from edgekit.runtimes import RUNTIMES, known_suffixes, runtime_for

EXPORT_FOLDER = "export"


@dataclass
class Artifact:
    """One file (or served model) to measure.

    Attributes:
        name: the row's name, unique in a run (``keras``, ``tflite-int8``, ``cnn-digits/onnx-fp32``).
        format: keras, tflite, onnx or triton (or what a plug-in runtime declares).
        runtime: the registered runtime that runs it (keras, keras3, litert, onnxruntime,
            triton, or a plug-in's).
        path: the file, or ``URL#MODEL`` for Triton.
        precision: fp32, fp16, int8, dynamic, int16x8, or None when unknown.
        subject: the name of the model folder (or group) it belongs to.
    """

    name: str
    format: str
    runtime: str
    path: str
    precision: str | None
    subject: str
    bytes: int | None = None
    sha256: str | None = None
    recorded_sha256: str | None = None  # what the manifest that lists the file says

    @property
    def integrity(self) -> str | None:
        """``ok`` / ``mismatch`` against the manifest's sha256; None when no manifest lists it."""
        if not self.recorded_sha256 or not self.sha256:
            return None
        return "ok" if self.recorded_sha256 == self.sha256 else "mismatch"

    def record(self) -> dict:
        return {"name": self.name, "format": self.format, "runtime": self.runtime,
                "path": self.path, "precision": self.precision, "subject": self.subject,
                "bytes": self.bytes, "sha256": self.sha256, "integrity": self.integrity}


@dataclass
class Subject:
    """A model folder (or loose files) with its dataset and its Keras reference."""

    name: str
    folder: Path | None
    dataset: str | None
    data_dir: str | None
    preprocessing: dict | None
    artifacts: list[Artifact] = field(default_factory=list)
    dataset_record: dict | None = None  # filled in when its inputs are prepared
    contract: dict | None = None  # the recorded input contract (InputContract.to_dict())
    contract_from: str = ""  # where it was recorded, for messages
    model_layers: list = field(default_factory=list)  # a loose model file's own Rescaling...

    @property
    def reference(self) -> Artifact | None:
        """The Keras model the other artifacts were converted from (fidelity's reference)."""
        return next((artifact for artifact in self.artifacts if artifact.format == "keras"), None)


def file_artifact(path: Path, name: str, subject: str, precision: str | None = None) -> Artifact:
    """An artifact for a local file, with its size and sha256; its runtime is the registered one
    that accepts it (:func:`edgekit.runtimes.runtime_for`).

    Raises:
        OptionError: when no registered runtime runs the file.
    """
    try:
        runtime = runtime_for(path)
    except OptionError as error:
        raise OptionError(f"{str(path)!r} is not an artifact edgekit can benchmark; expected a "
                          f"model folder, or a {', '.join(known_suffixes())} file or SavedModel "
                          "folder (a runtime of your own plugs in through EDGEKIT_PLUGINS)"
                          ) from error
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() \
        else path.stat().st_size
    sha = None if path.is_dir() else manifest_io.sha256_file(path)
    if precision is None and runtime.format == "keras":
        precision = "fp32"
    return Artifact(name=name, format=runtime.format, runtime=runtime.name, path=str(path),
                    precision=precision, subject=subject, bytes=size, sha256=sha)


def _runs_files(format_name: str | None) -> bool:
    """True for an exported format a registered runtime runs from a file (not a served model,
    not the Keras reference, which the model folder gives)."""
    return format_name not in (None, "triton", "keras") and any(
        RUNTIMES.get(name).format == format_name for name in RUNTIMES)


def discover(paths, dataset: str | None = None, data_dir: str | None = None) -> list[Subject]:
    """Subjects for the MODEL_OR_ARTIFACTS arguments, in the order given.

    Raises:
        ModelError: a path that does not exist, or a folder that is not a model folder.
        OptionError: a file that is no artifact, or loose files without ``dataset``.
    """
    subjects: list[Subject] = []
    loose: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if not path.exists():
            raise ModelError(f"{str(given)!r} does not exist; expected a model folder (edgekit "
                             "train / compress / export) or a .keras / .tflite / .onnx file")
        if path.is_dir() and (path / manifest_io.MANIFEST_NAME).is_file():
            subjects.append(_folder_subject(path, dataset, data_dir))
        elif path.is_dir() and not (path / "saved_model.pb").is_file():
            raise ModelError(f"{str(given)!r} is a folder without {manifest_io.MANIFEST_NAME}; "
                             "expected a model folder written by edgekit, or a SavedModel folder")
        else:
            loose.append(path)
    if loose:
        subjects.append(_loose_subject(loose, dataset, data_dir))
    _make_names_unique(subjects)
    return subjects


def _folder_subject(folder: Path, dataset, data_dir) -> Subject:
    manifest = manifest_io.read_manifest(folder)
    model_folder, export_manifest = folder, None
    given_is_export = manifest.get("stage") == "export"
    if given_is_export:
        export_manifest = manifest
        parent = (manifest.get("parent") or {}).get("path")
        model_folder = Path(parent) if parent and (Path(parent) / manifest_io.MANIFEST_NAME).is_file() \
            else None
        manifest = manifest_io.read_manifest(model_folder) if model_folder else manifest
    elif (folder / EXPORT_FOLDER / manifest_io.MANIFEST_NAME).is_file():
        export_manifest = manifest_io.read_manifest(folder / EXPORT_FOLDER)
    name = (model_folder or folder).resolve().name
    spec, directory, preprocessing = _dataset_of(model_folder or folder, manifest)
    subject = Subject(name=name, folder=model_folder or folder, dataset=dataset or spec,
                      data_dir=data_dir or directory, preprocessing=preprocessing)
    _record_contract(subject, manifest, (model_folder or folder) / manifest_io.MANIFEST_NAME)
    seen: set[str] = set()

    def add(artifact: Artifact) -> None:
        artifact.recorded_sha256 = _recorded_sha256(Path(artifact.path))
        if artifact.sha256 and artifact.sha256 in seen and artifact.integrity != "mismatch":
            return  # export reuses compress's .tflite: one file, one row
        if any(other.name == artifact.name for other in subject.artifacts):
            # Two different files under one name (one was changed after it was written):
            # measure both, and say where the second one lives.
            artifact.name = f"export/{artifact.name}"
        seen.add(artifact.sha256 or artifact.path)
        subject.artifacts.append(artifact)

    if model_folder is not None:
        model = manifest.get("model") or {}
        keras_file = model_folder / model.get("file", "model.keras")
        if keras_file.exists():
            add(file_artifact(keras_file, "keras", name, _keras_precision(manifest)))
        tflite = model_folder / model.get("tflite", "model.tflite")
        if manifest.get("stage") == "compress" and tflite.is_file():
            mode = _compress_mode(manifest)
            add(file_artifact(tflite, f"tflite-{mode}", name, mode))
    elif export_manifest is not None:
        reference = Path((export_manifest.get("parent") or {}).get("model_file", ""))
        if reference.exists():
            add(file_artifact(reference, "keras", name))
    if export_manifest is not None:
        export_folder = folder if given_is_export else folder / EXPORT_FOLDER
        for entry in (export_manifest.get("artifacts") or {}).values():
            if not _runs_files(entry.get("format")) or not entry.get("file"):
                continue  # the Triton copy and the mobile bundle hold files listed already
            path = export_folder / entry["file"]
            if path.is_file():
                add(file_artifact(path, entry["name"], name, entry.get("precision")))
    if not subject.artifacts:
        raise ModelError(f"{folder} holds no artifact to benchmark; expected model.keras, a "
                         ".tflite or an export/ folder. Run edgekit train / compress / export")
    return subject


def _recorded_sha256(path: Path) -> str | None:
    """The sha256 the manifest of the folder holding ``path`` recorded for it, if any."""
    folder = path.parent
    try:
        manifest = manifest_io.read_manifest(folder)
    except ModelError:
        return None
    entry = (manifest.get("files") or {}).get(path.name)
    return entry.get("sha256") if isinstance(entry, dict) else None


def _loose_subject(paths: list[Path], dataset, data_dir) -> Subject:
    """Files given one by one; their dataset from --dataset or from a manifest beside them."""
    spec, directory, preprocessing = dataset, data_dir, None
    found = None  # (manifest, its path) of the model folder the files came from
    for path in paths:
        for folder in (path.parent, path.parent.parent):
            if (folder / manifest_io.MANIFEST_NAME).is_file():
                manifest = manifest_io.read_manifest(folder)
                if manifest.get("stage") == "export":
                    parent = Path((manifest.get("parent") or {}).get("path", ""))
                    if (parent / manifest_io.MANIFEST_NAME).is_file():
                        manifest, folder = manifest_io.read_manifest(parent), parent
                found_spec, found_dir, preprocessing = _dataset_of(folder, manifest)
                spec, directory = spec or found_spec, directory or found_dir
                found = (manifest, folder / manifest_io.MANIFEST_NAME)
                break
        if found:
            break
    if not spec:
        raise OptionError(f"benchmarking {', '.join(repr(str(p)) for p in paths)} needs "
                          "--dataset (its test split measures accuracy); expected e.g. "
                          "--dataset digits, or pass the model folder instead")
    subject = Subject(name="files", folder=None, dataset=spec, data_dir=data_dir or directory,
                      preprocessing=preprocessing)
    if found is not None:
        _record_contract(subject, *found)
    else:
        subject.model_layers = _own_preprocessing_layers(paths)
    for path in paths:
        stem = path.name if path.is_dir() else path.stem
        subject.artifacts.append(file_artifact(path, f"{stem}{path.suffix}", "files",
                                               _precision_from_name(stem)))
    return subject


def _record_contract(subject: Subject, manifest: dict, where: Path) -> None:
    recorded = record_of(manifest)
    subject.contract = recorded.to_dict() if recorded is not None else None
    subject.contract_from = str(where)


def _own_preprocessing_layers(paths: list[Path]) -> list:
    """The leading Rescaling / Normalization layers of the Keras files given, read without TF."""
    for path in paths:
        if path.is_dir() or path.suffix.lower() in RUNTIMES.get("keras").suffixes:
            info = read_model_info(path)
            return [(entry.get("config", {}).get("name", "?"), entry.get("class_name", "?"))
                    for entry in info.leading_preprocessing]
    return []


def _dataset_of(folder: Path, manifest: dict) -> tuple[str | None, str | None, dict | None]:
    """(dataset spec, data_dir, preprocessing) from a manifest and its parents' configs."""
    recorded = manifest.get("dataset") or {}
    spec = data_dir = None
    current, seen = manifest, {folder.resolve()}
    while current is not None:
        config = current.get("config") or {}
        spec = spec or config.get("dataset")
        data_dir = data_dir or config.get("data_dir")
        parent = Path((current.get("parent") or {}).get("path") or "")
        if not str(parent) or parent == Path(".") or parent.resolve() in seen \
                or not (parent / manifest_io.MANIFEST_NAME).is_file():
            break
        seen.add(parent.resolve())
        current = manifest_io.read_manifest(parent)
    return spec or recorded.get("name"), data_dir, recorded.get("preprocessing")


def _compress_mode(manifest: dict) -> str:
    config = manifest.get("config") or {}
    if config.get("qat"):
        return "int8"
    chosen = [name for name in ("int8", "dynamic", "fp16", "int16x8") if config.get(name)]
    return chosen[0] if chosen else "fp32"


def _keras_precision(manifest: dict) -> str:
    policy = (manifest.get("runtime") or {}).get("precision_policy") or "float32"
    return {"float32": "fp32", "mixed_float16": "mixed-fp16",
            "mixed_bfloat16": "mixed-bf16"}.get(policy, policy)


def _precision_from_name(stem: str) -> str | None:
    for precision in ("int16x8", "int8", "fp16", "fp32", "dynamic"):
        if precision in stem.lower():
            return precision
    return None


def _make_names_unique(subjects: list[Subject]) -> None:
    """Prefix names with their subject when several subjects are compared side by side."""
    if len(subjects) > 1:
        for subject in subjects:
            for artifact in subject.artifacts:
                artifact.name = f"{subject.name}/{artifact.name}"
    names = [artifact.name for subject in subjects for artifact in subject.artifacts]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise OptionError(f"two artifacts are both named {sorted(duplicates)[0]!r}; pass each "
                          "file once, or rename one")
