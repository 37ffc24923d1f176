"""What ``edgekit export`` starts from: a model folder (train / compress) or a user's model file.

A model folder brings everything: its Keras model, its manifest (dataset, preprocessing,
class names, seed) and, from compress, the .tflite its recipe produced, which export reuses
rather than converting again. A user's .keras / .h5 / SavedModel needs ``--dataset``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgekit import manifest as manifest_io
from edgekit._compat import tfmot
from edgekit.config import is_model_file
from edgekit.data import load_dataset
from edgekit.data.contract import (leading_preprocessing_layers, record_of, recorded_beside,
                                   resolve_contract)
from edgekit.errors import ModelError, OptionError
from edgekit.formats.onnx import check_onnx_file, is_quantization_aware
from edgekit.models import load_model_file
from edgekit.models.describe import check_model_fits_dataset
from edgekit.models.fileinfo import read_model_info
from edgekit.models.loading import is_quantization_aware_file, load_settings
from edgekit.runtimes.litert import LiteRTModel

DEFAULT_SEED = 0
DEFAULT_VALIDATION_FRACTION = 0.1
EXPORT_FOLDER = "export"
ARTIFACT_SUFFIXES = (".tflite", ".onnx")
# Where a compress folder keeps its quantization-aware model (the fake-quant graph that
# ONNX turns into QDQ); model.keras holds the float weights only.
QAT_FILE_KEY = "qat_file"


@dataclass
class ExportSource:
    """A loaded model with the data and records export needs.

    Attributes:
        path: the MODEL argument as given.
        name: the model's name (its folder's name, or the file's stem).
        model: the tf-keras model every artifact is compared with.
        model_file: the file ``model`` was loaded from.
        dataset: the :class:`edgekit.data.Dataset`, with the preprocessing the model was trained on.
        folder: the model folder, or None for a model file.
        manifest: the folder's manifest, or None.
        recipe_tflite: ``(path, mode)`` of the .tflite a compress recipe produced, or None.
        qat_model: the quantization-aware model, when there is one (ONNX keeps its QDQ).
        calibration_samples / seed: the calibration set the folder's TFLite int8 was made with.
    """

    path: Path
    name: str
    model: object
    model_file: Path
    dataset: object
    folder: Path | None = None
    manifest: dict | None = None
    recipe_tflite: tuple[Path, str] | None = None
    qat_model: object = None
    calibration_samples: int = 500
    seed: int = DEFAULT_SEED
    settings: object = None  # edgekit.models.loading.LoadSettings the model was loaded with

    def default_output(self) -> Path:
        """``<model folder>/export``, or ``<file's folder>/<stem>-export`` for a model file."""
        if self.folder is not None:
            return self.folder / EXPORT_FOLDER
        return self.model_file.parent / f"{self.name}-export"

    def parent_record(self) -> dict:
        record = {"path": str(self.path), "model_file": str(self.model_file)}
        if self.model_file.is_file():
            record["sha256"] = manifest_io.sha256_file(self.model_file)
        if self.model_file.exists():
            info = read_model_info(self.model_file)
            record.update(writer=info.writer, keras_version=info.keras_version)
        if self.manifest is not None:
            record.update(stage=self.manifest.get("stage"), name=self.manifest.get("name"),
                          manifest=str(self.folder / manifest_io.MANIFEST_NAME))
        return record


def resolve_source(model: str | os.PathLike, dataset: str | None = None,
                   data_dir: str | None = None, seed: int | None = None,
                   calibration_samples: int | None = None, preprocess=None,
                   custom_objects=None, unsafe_deserialization: bool = False) -> ExportSource:
    """Load MODEL (a model folder or a model file) with its dataset.

    Raises:
        ModelError: for a missing, unreadable or corrupt model, or a corrupt .tflite / .onnx.
        OptionError: for a model file without ``dataset``, or an artifact given as MODEL.
        DataError: when the dataset does not fit the model.
    """
    path = Path(model).expanduser()
    if path.suffix.lower() in ARTIFACT_SUFFIXES:
        _refuse_artifact(path)
    loading = (preprocess, custom_objects, unsafe_deserialization)
    if path.is_dir() and (path / manifest_io.MANIFEST_NAME).is_file():
        return _from_folder(path, dataset, data_dir, seed, calibration_samples, loading)
    if not path.exists() and not is_model_file(str(model)):
        raise ModelError(
            f"model {str(model)!r} does not exist; expected a model folder from edgekit train / "
            "compress, or a .keras / .h5 / SavedModel path"
        )
    return _from_file(path, dataset, data_dir, seed, calibration_samples, loading)


def _under_contract(loaded, model, stated, manifest, recorded_in: str, source: str,
                    recorded=None):
    """The dataset under the model's input contract (edgekit.data.contract), decided once."""
    contract = resolve_contract(loaded, stated=stated,
                                model_layers=leading_preprocessing_layers(model),
                                recorded=recorded or record_of(manifest), recorded_in=recorded_in,
                                model_source=source)
    return loaded.with_contract(contract)


def _settings(loading, manifest, source: str):
    _, custom_objects, unsafe = loading
    return load_settings(custom_objects, unsafe, manifest if custom_objects is None else None,
                         source=source)


def _from_folder(folder: Path, dataset_spec, data_dir, seed, calibration_samples,
                 loading) -> ExportSource:
    manifest = manifest_io.read_manifest(folder)
    if manifest.get("stage") == "export":
        raise OptionError(
            f"{folder} is an export folder; expected the model folder it was exported from "
            f"({manifest.get('parent', {}).get('path', 'its parent')}). Pass that folder"
        )
    model_file = folder / manifest.get("model", {}).get("file", "model.keras")
    settings = _settings(loading, manifest, f"model folder {str(folder)!r}")
    keras_model = load_keras(model_file, settings)
    chain = _manifest_chain(folder, manifest)
    spec = dataset_spec or _first(chain, "dataset") or manifest.get("dataset", {}).get("name")
    if not spec:
        raise OptionError(f"{folder}'s manifest names no dataset; pass --dataset")
    seed = seed if seed is not None else _first(chain, "seed", DEFAULT_SEED)
    loaded = load_dataset(spec, data_dir=data_dir or _first(chain, "data_dir"), seed=seed,
                          validation_fraction=_first(chain, "validation_fraction",
                                                     DEFAULT_VALIDATION_FRACTION))
    # The manifest's input contract is the truth about what the model takes, whatever --dataset.
    loaded = _under_contract(loaded, keras_model, loading[0], manifest,
                             str(folder / manifest_io.MANIFEST_NAME), f"model folder {str(folder)!r}")
    check_model_fits_dataset(keras_model, loaded, str(folder))
    return ExportSource(
        path=folder, name=folder.resolve().name, model=keras_model, model_file=model_file,
        dataset=loaded, folder=folder, manifest=manifest,
        recipe_tflite=_recipe_tflite(folder, manifest),
        qat_model=_qat_model(folder, manifest, keras_model, settings), settings=settings,
        calibration_samples=calibration_samples or _first(chain, "calibration_samples", 500),
        seed=seed,
    )


def _from_file(path: Path, dataset_spec, data_dir, seed, calibration_samples,
               loading) -> ExportSource:
    if dataset_spec is None:
        raise OptionError(
            f"exporting the model file {str(path)!r} needs --dataset (its test split checks "
            "fidelity and its training split calibrates int8); expected e.g. --dataset digits"
        )
    settings = _settings(loading, None, f"model {str(path)!r}")
    keras_model = load_keras(path, settings)
    seed = DEFAULT_SEED if seed is None else seed
    loaded = load_dataset(dataset_spec, data_dir=data_dir, seed=seed)
    beside, where = recorded_beside(path)
    loaded = _under_contract(loaded, keras_model, loading[0], None, where, f"model {str(path)!r}",
                             recorded=beside)
    check_model_fits_dataset(keras_model, loaded, str(path))
    return ExportSource(path=path, name=Path(str(path).rstrip("/")).stem, model=keras_model,
                        model_file=path, dataset=loaded,
                        qat_model=keras_model if is_quantization_aware(keras_model) else None,
                        calibration_samples=calibration_samples or 500, seed=seed,
                        settings=settings)


def load_keras(path: Path, settings=None):
    """Load a model file; a quantization-aware one is retried inside tfmot's quantize scope."""
    try:
        return load_model_file(path, settings=settings)
    except ModelError as first:
        if not is_quantization_aware_file(path):
            raise
        try:
            with tfmot().quantization.keras.quantize_scope():
                return load_model_file(path, settings=settings)
        except (ImportError, ModelError):
            raise first  # the first failure is the one to report; the retry's is its context


def _refuse_artifact(path: Path) -> None:
    """A .tflite / .onnx as MODEL: a clean error if it is corrupt, else say what export takes."""
    if path.suffix.lower() == ".tflite":
        LiteRTModel.load(path)
    else:
        if not path.is_file():
            raise ModelError(f"ONNX file {str(path)!r} does not exist")
        check_onnx_file(path)
    raise OptionError(
        f"{str(path)!r} is already an exported artifact; edgekit export starts from the Keras "
        "model (a model folder or a .keras / .h5 / SavedModel file). Describe it with: "
        f"edgekit inspect {path}"
    )


def _manifest_chain(folder: Path, manifest: dict) -> list[dict]:
    """This folder's config, then its parents' (compress leaves seed, dataset... to its parent)."""
    chain, seen = [manifest], {folder.resolve()}
    while True:
        parent = (chain[-1].get("parent") or {}).get("path")
        if not parent:
            return chain
        parent_folder = Path(parent)
        if not parent_folder.is_dir() or parent_folder.resolve() in seen:
            return chain
        if not (parent_folder / manifest_io.MANIFEST_NAME).is_file():
            return chain
        seen.add(parent_folder.resolve())
        chain.append(manifest_io.read_manifest(parent_folder))


def _first(chain: list[dict], key: str, default=None):
    for manifest in chain:
        for section in (manifest.get("calibration") or {}, manifest.get("config") or {}):
            value = section.get(key) if isinstance(section, dict) else None
            if value is not None:
                return value
    return default


def _recipe_tflite(folder: Path, manifest: dict) -> tuple[Path, str] | None:
    """The compress recipe's .tflite and its conversion mode, if the folder has one."""
    if manifest.get("stage") != "compress":
        return None
    path = folder / ((manifest.get("model") or {}).get("tflite") or "model.tflite")
    if not path.is_file():
        return None
    config = manifest.get("config") or {}
    # CompressConfig.tflite_mode: QAT converts to int8; else the one PTQ flag; else fp32.
    ptq = [name for name in ("int8", "dynamic", "fp16", "int16x8") if config.get(name)]
    return path, "int8" if config.get("qat") else (ptq[0] if ptq else "fp32")


def _qat_model(folder: Path, manifest: dict, keras_model, settings=None):
    if is_quantization_aware(keras_model):
        return keras_model
    name = (manifest.get("model") or {}).get(QAT_FILE_KEY)
    if name and (folder / name).exists():
        return load_keras(folder / name, settings)
    return None
