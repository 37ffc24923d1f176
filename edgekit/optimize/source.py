"""The model being optimized, loaded once: its data, input contract and calibration set.

The parent is what ``edgekit compress`` accepts: a model folder (its dataset, split and input
contract come from its manifest), a .keras / .h5 / SavedModel path with ``dataset`` (and
``preprocess`` unless the model starts with its own Rescaling layer), or a live model from
Python. Every candidate of the search reads this one object: one parent load, one validation
split, one calibration set (``edgekit.data.calibration``, the very samples ``edgekit compress``
calibrates on for the same seed and count).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit import manifest as manifest_io
from edgekit.data import Dataset, load_dataset
from edgekit.data.calibration import calibration_samples
from edgekit.data.contract import (leading_preprocessing_layers, preprocess_text,
                                   record_of, recorded_beside, resolve_contract)
from edgekit.data.sources import dataset_inputs
from edgekit.errors import ModelError, OptionError
from edgekit.models import check_single_input_output, load_model_file
from edgekit.models.describe import check_model_fits_dataset
from edgekit.models.loading import load_settings

DEFAULT_SEED = 0
DEFAULT_VALIDATION_FRACTION = 0.1
# Options a model folder fixes: another value would change the split and leak test data.
_FIXED_BY_FOLDER = ("dataset", "seed", "validation_fraction")


@dataclass
class Source:
    """The parent and everything the candidates share.

    Attributes:
        given: the MODEL argument (a path as given, or the live model).
        name: the parent's name (folder name, file stem or model name).
        model: the loaded Keras model (tf-keras or Keras 3).
        model_file: the file it was loaded from (None for a live model).
        folder: the model folder (None for a model file or a live model).
        manifest: the folder's manifest, or None.
        dataset: the dataset under the parent's input contract.
        spec / data_dir / seed / validation_fraction: how that dataset was loaded.
        preprocess: the contract as ``--preprocess`` text (bench and compress get it stated).
        calibration: the shared calibration samples (model-ready, from the training split).
        from_logits: whether the model's last layer outputs logits (no softmax).
        settings: how the model file loads (custom objects, unsafe deserialization).
    """

    given: object
    name: str
    model: object
    model_file: Path | None
    folder: Path | None
    manifest: dict | None
    dataset: Dataset
    spec: str
    data_dir: str | None
    seed: int
    validation_fraction: float
    preprocess: str
    calibration: np.ndarray
    from_logits: bool
    settings: object = None

    @property
    def is_path(self) -> bool:
        return isinstance(self.given, (str, os.PathLike))

    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        return self.dataset.preprocessed("val")

    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.dataset.preprocessed("test")

    def compress_options(self, config, calibrates: bool = True, fine_tunes: bool = True) -> dict:
        """What ``edgekit.compress`` needs besides a candidate's options to rebuild it.

        A folder brings its own dataset, split and contract; a model file gets them stated,
        so the reproducing command carries them. The search's calibration and fine-tuning
        settings go with the candidates that use them.
        """
        options = {}
        if calibrates:
            options["calibration_samples"] = config.calibration_samples
        if fine_tunes:
            options["finetune_epochs"] = config.finetune_epochs
        if self.folder is not None:
            return options
        options.update(seed=self.seed, validation_fraction=self.validation_fraction,
                       preprocess=self.preprocess)
        if self.data_dir:
            options["data_dir"] = self.data_dir
        if config.custom_objects:
            options["custom_objects"] = config.custom_objects
        if config.unsafe_deserialization:
            options["unsafe_deserialization"] = True
        return options

    def inputs(self) -> tuple:
        """Files and folders the run reads (its output must never be one of them)."""
        return (self.model_file, self.folder, *dataset_inputs(self.spec, self.data_dir))


def resolve_source(model, config) -> Source:
    """Load the parent once, with its dataset, input contract and calibration samples.

    Raises:
        OptionError: a model file or live model without ``dataset``, options that contradict
            the folder's manifest, or a model file whose input scaling nobody states.
        ModelError: a path that does not exist or holds no model edgekit can load.
        DataError: data that does not fit the model.
    """
    folder, manifest, model_file, name = _locate(model)
    recorded = (manifest or {}).get("config") or {}
    for key in _FIXED_BY_FOLDER:
        given, kept = getattr(config, key), recorded.get(key)
        if manifest is not None and given is not None and kept is not None and given != kept:
            raise OptionError(
                f"model folder {str(folder)!r} was trained with {key}={kept!r}; received "
                f"{key}={given!r}. The search reuses the parent's data and split (so its test "
                "split stays unseen); drop that option")
    spec = config.dataset or recorded.get("dataset")
    if not spec:
        raise OptionError(
            f"model {_shown(model)} is a model file with no record of its data; the search "
            "calibrates on its training split and measures on its validation split. Pass the "
            "dataset it was trained on, e.g. --dataset digits")
    data_dir = config.data_dir or recorded.get("data_dir")
    seed = _first(config.seed, recorded.get("seed"), DEFAULT_SEED)
    fraction = _first(config.validation_fraction, recorded.get("validation_fraction"),
                      DEFAULT_VALIDATION_FRACTION)
    dataset = load_dataset(spec, data_dir=data_dir, seed=seed, validation_fraction=fraction)
    settings = None
    if model_file is not None:
        settings = load_settings(config.custom_objects, config.unsafe_deserialization,
                                 manifest if config.custom_objects is None else None,
                                 source=f"model {_shown(model)}")
        loaded = load_model_file(model_file, settings=settings)
    else:
        loaded = model
        check_single_input_output(loaded, source=f"model {_shown(model)}")
    check_model_fits_dataset(loaded, dataset, source=_shown(model))
    contract_record, recorded_in = record_of(manifest), (
        str(folder / manifest_io.MANIFEST_NAME) if folder is not None else "")
    if contract_record is None and model_file is not None:
        contract_record, recorded_in = recorded_beside(model_file)
    contract = resolve_contract(dataset, stated=config.preprocess,
                                model_layers=leading_preprocessing_layers(loaded),
                                recorded=contract_record, recorded_in=recorded_in,
                                model_source=f"model {_shown(model)}")
    dataset = dataset.with_contract(contract)
    return Source(given=model, name=name, model=loaded, model_file=model_file, folder=folder,
                  manifest=manifest, dataset=dataset, spec=spec, data_dir=data_dir, seed=seed,
                  validation_fraction=fraction,
                  preprocess=preprocess_text(contract.preprocessing),
                  calibration=calibration_samples(dataset, config.calibration_samples, seed=seed),
                  from_logits=outputs_logits(loaded), settings=settings)


def outputs_logits(model) -> bool:
    """True when the last layer has no softmax (its outputs are logits)."""
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "") != "softmax"


def probabilities(outputs: np.ndarray, from_logits: bool) -> np.ndarray:
    """Softmax of logits; probabilities unchanged."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if not from_logits:
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _locate(model) -> tuple[Path | None, dict | None, Path | None, str]:
    """(folder, manifest, model file, name) of the MODEL argument, without loading anything."""
    if not isinstance(model, (str, os.PathLike)):
        return None, None, None, str(getattr(model, "name", "model"))
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelError(f"model {_shown(model)} does not exist; expected a model folder written "
                         "by edgekit train (or compress), or a .keras / .h5 / SavedModel path; "
                         "check the path")
    if path.is_dir() and (path / manifest_io.MANIFEST_NAME).is_file():
        manifest = manifest_io.read_manifest(path)
        model_file = path / (manifest.get("model") or {}).get("file", "model.keras")
        if not model_file.exists():
            raise ModelError(f"model folder {_shown(model)} has no {model_file.name}; expected "
                             "the folder written by edgekit train or compress; re-run that stage")
        return path, manifest, model_file, path.resolve().name
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        raise ModelError(f"folder {_shown(model)} has neither a manifest.json (a model folder) "
                         "nor a saved_model.pb (a SavedModel); pass a model folder from edgekit "
                         "train, or a model file")
    return None, None, path, path.resolve().name if path.is_dir() else path.stem


def _first(*values):
    return next(value for value in values if value is not None)


def _shown(model) -> str:
    if isinstance(model, (str, os.PathLike)):
        return repr(str(model))
    return f"<in-memory model {getattr(model, 'name', '?')}>"
