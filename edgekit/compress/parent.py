"""The model being compressed: a model folder, a model file or a model object, and its data.

A model folder's manifest says which dataset, split and preprocessing the model was trained
with; compression reuses exactly those, so the test split stays unseen. A model file or object
carries no such record, so it needs ``dataset``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgekit import manifest as manifest_io
from edgekit.compress.config import CompressConfig
from edgekit.data.contract import (
    leading_preprocessing_layers,
    record_of,
    recorded_beside,
    resolve_contract,
)
from edgekit.errors import DataError, ModelError, OptionError
from edgekit.formats.tflite import TFLITE_MODES
from edgekit.models import check_single_input_output, load_model_file
from edgekit.models.fileinfo import read_model_info
from edgekit.models.keras3 import is_keras3_model

DEFAULT_SEED = 0
DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_BATCH_SIZE = 32
# Options a model folder fixes: changing them would change the split, so test data could leak.
_FIXED_BY_FOLDER = ("dataset", "seed", "validation_fraction")


@dataclass
class Parent:
    """Where the model comes from; ``manifest`` is set for model folders only.

    ``path`` is the MODEL argument as given (None for a model object); ``source`` names it in
    messages.
    """

    source: str
    name: str
    path: str | None = None
    model_path: Path | None = None
    manifest: dict | None = None
    model: object | None = None

    def resolve_config(self, config: CompressConfig) -> CompressConfig:
        """``config`` with the dataset, split and batch size filled in from the parent.

        Raises:
            OptionError: for a model file without a dataset, or options that contradict the
                parent folder's manifest.
        """
        values = {}
        if self.manifest is not None:
            recorded = self.manifest.get("config", {})
            for key in _FIXED_BY_FOLDER:
                given = getattr(config, key)
                if given is not None and recorded.get(key) is not None and given != recorded[key]:
                    raise OptionError(
                        f"model folder {self.source} was trained with {key}={recorded[key]!r}; "
                        f"received {key}={given!r}. Compression reuses the parent's data and "
                        f"split (so its test split stays unseen); drop that option"
                    )
                values[key] = recorded.get(key)
            values["data_dir"] = config.data_dir or recorded.get("data_dir")
            values["batch_size"] = config.batch_size or recorded.get("batch_size")
        elif config.dataset is None:
            raise OptionError(_needs_dataset_message(self.source, config))
        resolved = config.replace(**{key: value for key, value in values.items()
                                     if value is not None})
        if resolved.dataset is None:
            raise OptionError(_needs_dataset_message(self.source, config))
        if resolved.seed is None:
            resolved.seed = DEFAULT_SEED
        if resolved.validation_fraction is None:
            resolved.validation_fraction = DEFAULT_VALIDATION_FRACTION
        if resolved.batch_size is None:
            resolved.batch_size = DEFAULT_BATCH_SIZE
        resolved.validate()
        return resolved

    def check_dataset(self, dataset) -> None:
        """A folder's data must preprocess as it did in training (same files, same split).

        Only a standardisation edgekit train fitted on the training split fingerprints the data;
        a stated or model-read contract says nothing about which files were used.
        """
        if self.manifest is None:
            return
        contract = self.manifest.get("input_contract") or {}
        if contract and contract.get("source") != "train":
            return
        recorded = self.manifest.get("dataset", {}).get("preprocessing")
        if not recorded:
            return
        current = dataset.preprocessing.to_dict()
        for key in ("scale", "mean", "std"):
            if abs(float(recorded[key]) - current[key]) > 1e-6 * max(1.0, abs(current[key])):
                raise DataError(
                    f"dataset {dataset.name!r} now preprocesses with {key}={current[key]:.6g}; "
                    f"model folder {self.source} was trained with {key}={float(recorded[key]):.6g}. "
                    "Point --data-dir at the data the parent was trained on"
                )

    def load_model(self, settings=None):
        """The parent's Keras model (a fresh load; stages clone it before changing weights)."""
        if self.model is not None:
            return self.model
        return load_model_file(self.model_path, settings=settings)

    def with_contract(self, dataset, model, stated=None):
        """``dataset`` under the parent's input contract (edgekit.data.contract), decided once."""
        recorded_in = (f"{Path(self.path) / manifest_io.MANIFEST_NAME}"
                       if self.manifest is not None and self.path else "")
        recorded = record_of(self.manifest)
        if recorded is None and self.model_path is not None:
            recorded, recorded_in = recorded_beside(self.model_path)
        contract = resolve_contract(dataset, stated=stated,
                                    model_layers=leading_preprocessing_layers(model),
                                    recorded=recorded, recorded_in=recorded_in,
                                    model_source=f"model {self.source}")
        return dataset.with_contract(contract)

    def check_fits(self, model, dataset) -> None:
        """DataError unless the dataset's samples and classes fit the model."""
        check_single_input_output(model, source=f"model {self.source}")
        expected = tuple(model.input_shape[1:])
        if expected != dataset.sample_shape:
            raise DataError(
                f"model {self.source} takes inputs of shape {expected}; dataset {dataset.name!r} "
                f"has samples of shape {dataset.sample_shape}, so its calibration and test "
                "samples do not fit. Pass the --dataset the model was trained on"
            )
        outputs = int(model.output_shape[-1])
        if outputs != dataset.num_classes:
            raise DataError(
                f"model {self.source} has {outputs} outputs; dataset {dataset.name!r} has "
                f"{dataset.num_classes} classes. Pass the --dataset the model was trained on"
            )

    @staticmethod
    def outputs_logits(model) -> bool:
        activation = getattr(model.layers[-1], "activation", None)
        return getattr(activation, "__name__", "") != "softmax"

    @staticmethod
    def keras_bytes(model) -> bytes:
        """The parent saved as .keras without optimizer state, like the result, so sizes compare."""
        saved_model = getattr(model, "_edgekit_saved_model", None)
        if saved_model:  # a Keras-less SavedModel: its own files
            return b"".join(item.read_bytes() for item in sorted(Path(saved_model).rglob("*"))
                            if item.is_file())
        with tempfile.TemporaryDirectory(prefix="edgekit-") as folder:
            path = Path(folder) / "model.keras"
            model.save(path)
            return path.read_bytes()

    def record(self) -> dict:
        """The manifest's ``parent`` entry: where, which file (sha256) and which run."""
        entry = {"path": self.path if self.path is not None else self.source, "name": self.name}
        if self.path is not None:
            entry["absolute_path"] = str(Path(self.path).expanduser().resolve())
        if self.model_path is not None and self.model_path.is_file():
            entry["file"] = str(self.model_path)
            entry["sha256"] = manifest_io.sha256_file(self.model_path)
        if self.model_path is not None and self.model_path.exists():
            info = read_model_info(self.model_path)  # which Keras wrote it, read off the file
            entry["writer"], entry["keras_version"] = info.writer, info.keras_version
        elif self.model is not None:
            entry["writer"] = "keras3" if is_keras3_model(self.model) else "tf-keras"
        if self.manifest is not None:
            entry["manifest_name"] = self.manifest.get("name")
            entry["stage"] = self.manifest.get("stage")
            entry["test_accuracy"] = self.manifest.get("evaluation", {}).get("test", {}).get(
                "accuracy")
        return entry


def resolve_parent(model, config: CompressConfig) -> Parent:
    """Find out what ``model`` is, without loading TensorFlow.

    Raises:
        ModelError: for a path that does not exist or is neither a model folder nor a model file.
    """
    if not isinstance(model, (str, os.PathLike)):
        return Parent(source=f"<in-memory model {getattr(model, 'name', '?')}>",
                      name=str(getattr(model, "name", "model")), model=model)
    path = Path(model).expanduser()
    source = repr(str(model))
    if not path.exists():
        raise ModelError(
            f"model {source} does not exist; expected a model folder written by edgekit train "
            "(or compress), or a .keras / .h5 / SavedModel path; check the path"
        )
    if path.is_dir() and (path / manifest_io.MANIFEST_NAME).is_file():
        manifest = manifest_io.read_manifest(path)
        model_file = path / manifest.get("model", {}).get("file", "model.keras")
        if not model_file.is_file():
            raise ModelError(
                f"model folder {source} has no {model_file.name}; expected the folder written by "
                "edgekit train or compress; re-run that stage"
            )
        return Parent(source=source, name=path.resolve().name, path=str(model),
                      model_path=model_file, manifest=manifest)
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        raise ModelError(
            f"folder {source} has neither a manifest.json (a model folder) nor a saved_model.pb "
            "(a SavedModel); pass a model folder from edgekit train, or a model file"
        )
    name = path.resolve().name if path.is_dir() else path.stem
    return Parent(source=source, name=name, path=str(model), model_path=path)


def _needs_dataset_message(source: str, config: CompressConfig) -> str:
    flags = config.technique_flags()
    uses = []
    if config.fine_tunes:
        uses.append("fine-tunes on its training split")
    if TFLITE_MODES.get(config.tflite_mode).representative_data != "unused":
        uses.append("calibrates on its training split")
    uses.append("measures the parent and the result on its test split")
    return (
        f"model {source} is a model file with no record of its data, and {' '.join(flags)} "
        f"needs a dataset (compress {', '.join(uses)}); pass --dataset with the data the model "
        f"was trained on, e.g. --dataset digits"
    )
