"""``edgekit.compress``: apply the requested techniques to a trained model and write its model folder."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from edgekit import manifest as manifest_io
from edgekit import outputs
from edgekit._compat import keras, tensorflow
from edgekit.compress import measure
from edgekit.compress.config import CompressConfig
from edgekit.compress.layers import custom_layers_left_alone
from edgekit.compress.parent import Parent, resolve_parent
from edgekit.compress.stages import StageContext, wanted_stages
from edgekit.config import shell_command
from edgekit.data import load_dataset
from edgekit.data.calibration import calibration_samples
from edgekit.data.sources import dataset_inputs
from edgekit.errors import ModelError, RunFailedError
from edgekit.formats.tflite import TFLITE_MODES, convert_to_tflite
from edgekit.models import describe_model, load_model_file
from edgekit.models.keras3 import functional_view, is_keras3_model
from edgekit.models.keras3_rebuild import (
    UNSUPPORTED_HINT,
    max_abs_difference,
    rebuild_as_tf_keras,
)
from edgekit.models.loading import load_settings, plain_loading_options
from edgekit.runtimes.litert import LiteRTModel
from edgekit.train.evaluate import classification_report
from edgekit.train.precision import resolve_precision

KERAS_FILE = "model.keras"
SAVED_MODEL_FOLDER = "saved_model"
# Set by edgekit.models.keras3 on the model it wraps around a Keras-less SavedModel.
SAVED_MODEL_ATTRIBUTE = "_edgekit_saved_model"
# How far a Keras 3 model rebuilt as tf-keras may differ from the original (issue 8).
CONVERSION_TOLERANCE = 1e-5
# Top-1 agreement a compressed .tflite must keep with the Keras model it was converted from.
MIN_TFLITE_AGREEMENT = 0.9
MAX_TFLITE_LOSS = 0.05  # and at most this much accuracy below it
TFLITE_FILE = "model.tflite"


@dataclass
class CompressResult:
    """What a compression run produced: the folder, its manifest and the measured comparison."""

    output_dir: Path
    manifest: dict

    @property
    def rows(self) -> list[dict]:
        """Parent Keras, parent fp32 .tflite, result Keras, result .tflite (see the manifest)."""
        return self.manifest["comparison"]["rows"]

    @property
    def accuracy(self) -> float:
        """Test accuracy of the result's .tflite through LiteRT."""
        return self.rows[-1]["accuracy"]

    @property
    def accuracy_drop_points(self) -> float:
        """Points of test accuracy the .tflite lost against the parent's Keras model."""
        return self.rows[-1]["accuracy_drop_points"]

    @property
    def keras_path(self) -> Path:
        """The Keras model (model.keras; a Keras-less SavedModel parent's copy, saved_model/)."""
        return self.output_dir / (self.manifest.get("model") or {}).get("file", KERAS_FILE)

    @property
    def tflite_path(self) -> Path:
        return self.output_dir / TFLITE_FILE


def default_output_dir(parent_name: str, config: CompressConfig,
                       root: str | os.PathLike = "models") -> Path:
    """``models/<parent>-<recipe>``, e.g. ``models/cnn-digits-prune80-qat``."""
    return Path(root) / f"{parent_name}-{config.recipe()}"


def compress(model, output_dir: str | os.PathLike | None = None, force: bool = False,
             dataset=None, progress: bool = True, **options) -> CompressResult:
    """Compress a trained model and write a model folder with model.keras, model.tflite, manifest.

    Techniques run in a sound order: pruning and/or clustering with fine-tuning, then
    quantization-aware training (the sparsity- or cluster-preserving scheme after them), then the
    TFLite conversion with post-training quantization. The parent and the result are measured on
    the dataset's test split in the same run. The parent is never modified.

    Args:
        model: a model folder from ``edgekit train`` / ``compress`` (its dataset, preprocessing,
            seed and split come from its manifest), a .keras / .h5 / SavedModel path, or a
            tf-keras model object (these two need ``dataset``).
        output_dir: the folder to write (default ``models/<parent>-<recipe>``).
        force: replace an existing, non-empty output folder.
        dataset: a dataset spec (``"digits"``, ``"npz:PATH"``...) or a loaded
            :class:`edgekit.data.Dataset`; a model folder's own dataset by default.
        progress: show Keras' per-epoch progress while fine-tuning.
        **options: fields of :class:`CompressConfig` (prune, cluster, qat, int8, ...).

    Returns:
        A :class:`CompressResult`; ``result.rows`` is the before/after comparison.

    Raises:
        OptionError: for values out of range, contradictory flags, a missing dataset.
        ModelError: for a model that does not load, or a layer a technique cannot handle.
        DataError: for data that does not fit the model.
        OutputExistsError: for an existing output folder without ``force``.

    Example:
        >>> from edgekit.compress import compress
        >>> result = compress("models/cnn-digits", prune=0.8, qat=True)
        >>> result.accuracy, result.rows[-1]["gzip_ratio_to_parent_fp32_tflite"]
    """
    options = dict(options)
    loaded_dataset = None
    if dataset is not None and not isinstance(dataset, str):
        loaded_dataset = dataset
        options["dataset"] = dataset.name
    elif dataset is not None:
        options["dataset"] = dataset
    in_memory = not isinstance(model, (str, os.PathLike))
    options["model"] = f"<in-memory model {getattr(model, 'name', '?')}>" if in_memory else str(model)
    custom_objects = plain_loading_options(options)
    given = {key: value for key, value in options.items() if key != "model"}
    config = CompressConfig.from_options(options)
    parent = resolve_parent(model, config)
    config = parent.resolve_config(config)
    final = Path(output_dir) if output_dir is not None else default_output_dir(parent.name, config)
    parent_folder = parent.path if parent.manifest is not None else None
    outputs.check_output(final, force, ("compress",),
                         inputs=(parent.model_path, parent_folder,
                                 *dataset_inputs(config.dataset, config.data_dir)))
    with outputs.OutputLock(final):
        return _compress(config, parent, final, loaded_dataset, custom_objects, given, in_memory,
                         progress)


def _compress(config, parent, final: Path, loaded_dataset, custom_objects, given: dict,
              in_memory: bool, progress: bool) -> CompressResult:
    staging = outputs.staging_path(final)
    if loaded_dataset is None:
        loaded_dataset = load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed,
                                      validation_fraction=config.validation_fraction)
    parent.check_dataset(loaded_dataset)
    objects = custom_objects if custom_objects is not None else config.custom_objects
    settings = load_settings(objects, config.unsafe_deserialization,
                             parent.manifest if objects is None else None,
                             source=f"model {parent.source}")
    parent_model = parent.load_model(settings)
    parent_model = functional_view(parent_model, loaded_dataset.sample_shape, config.fine_tunes,
                                   f"model {parent.source}")
    stages = wanted_stages(config)
    if not is_keras3_model(parent_model):
        for stage in stages:  # a layer a technique cannot handle stops the run before any work
            stage.check(parent_model, config)
    parent.check_fits(parent_model, loaded_dataset)
    loaded_dataset = parent.with_contract(loaded_dataset, parent_model, config.preprocess)
    if progress:
        print(loaded_dataset.contract.line(), flush=True)
    working_model, conversion = _working_model(parent_model, config, loaded_dataset, parent)
    for stage in stages:  # on the tf-keras rebuild of a Keras 3 model too
        stage.check(working_model, config)
    command = None if in_memory else shell_command(
        "edgekit", ["compress", *config.to_cli_args(), "--output", str(final)])

    outputs.discard(staging)
    staging.mkdir(parents=True)
    try:
        with outputs.writing(final):
            manifest = _run(config, parent, parent_model, loaded_dataset, stages, staging, final,
                            progress, settings, working_model)
        if conversion is not None:
            manifest["keras3_conversion"] = conversion
        manifest["options"] = given
        manifest["command"] = command
        manifest_io.write_manifest(staging, manifest)
        outputs.publish(staging, final)
    except BaseException:
        outputs.discard(staging)
        raise
    result = CompressResult(output_dir=final, manifest=manifest)
    if manifest["status"] == "failed":
        agreement = manifest["comparison"]["tflite_top1_agreement_with_keras"]
        raise ConversionCheckError(
            f"the compressed .tflite agrees with its own Keras model on only {agreement:.2%} of "
            f"the test split (at least {MIN_TFLITE_AGREEMENT:.0%} expected) and scores "
            f"{manifest['comparison']['rows'][-1]['accuracy']:.2%}: the conversion lost "
            f"something. Both are kept in {final}, marked failed in its manifest; try another "
            "recipe (e.g. --int8 instead of --qat), and report the model if it persists", result)
    return result


class ConversionCheckError(RunFailedError):
    """The .tflite a recipe wrote disagrees with its Keras model (exit code 1)."""

    def __init__(self, message: str, result: CompressResult):
        super().__init__(message)
        self.result = result


def _working_model(parent_model, config: CompressConfig, dataset, parent: Parent):
    """The model the techniques work on, and the Keras 3 conversion's record (or None).

    Post-training quantization converts a Keras 3 model directly. Pruning, clustering and QAT
    need tf-keras (tfmot): the Keras 3 graph is rebuilt as tf-keras and proven equal on the test
    split (max |diff| <= 1e-5) before any technique runs.
    """
    if not is_keras3_model(parent_model) or not config.fine_tunes:
        return parent_model, None
    rebuilt = rebuild_as_tf_keras(parent_model, source=f"model {parent.source}", flatten=True)
    x_test, _ = dataset.preprocessed("test")
    difference = max_abs_difference(parent_model, rebuilt, x_test)
    if not difference <= CONVERSION_TOLERANCE:
        raise ModelError(
            f"model {parent.source} rebuilt as tf-keras for pruning / clustering / QAT differs "
            f"from the Keras 3 original by up to {difference:.3g} on the test split (allowed "
            f"{CONVERSION_TOLERANCE:g}); {UNSUPPORTED_HINT}")
    import keras as keras3  # lazy: Keras 3 loads TensorFlow

    return rebuilt, {"from": "keras3", "keras_version": keras3.__version__,
                     "to": "tf-keras", "max_abs_diff": float(difference),
                     "tolerance": CONVERSION_TOLERANCE, "split": "test",
                     "samples": int(len(x_test))}


def _run(config: CompressConfig, parent: Parent, parent_model, dataset, stages, staging: Path,
         final: Path, progress: bool, settings, working_model=None) -> dict:
    started = time.time()
    tf_keras = keras()
    tf_keras.utils.set_random_seed(config.seed)
    policy = resolve_precision(config.precision, len(tensorflow().config.list_physical_devices("GPU")))
    x_test, y_test = dataset.preprocessed("test")
    mode = TFLITE_MODES.get(config.tflite_mode)
    calibration = None
    if mode.representative_data != "unused":
        calibration = calibration_samples(dataset, config.calibration_samples, seed=config.seed)
    from_logits = parent.outputs_logits(parent_model)
    context = StageContext(config=config, dataset=dataset, train=dataset.preprocessed("train"),
                           val=dataset.preprocessed("val"), batch_size=config.batch_size,
                           seed=config.seed, policy=policy, from_logits=from_logits,
                           calibration=calibration, progress=progress)

    # The parent, measured in this run: its Keras model and its float32 .tflite (the reference).
    parent_keras_bytes = parent.keras_bytes(parent_model)
    parent_probabilities = measure.keras_probabilities(parent_model, x_test, from_logits)
    parent_accuracy = float((parent_probabilities.argmax(1) == y_test).mean())
    parent_fp32 = convert_to_tflite(parent_model, "fp32")
    parent_runtime = LiteRTModel(parent_fp32, source="(parent fp32 .tflite)")
    rows = [
        measure.keras_row("parent keras", parent_model, parent_keras_bytes,
                          parent_probabilities, y_test, None),
        measure.tflite_row("parent tflite", "fp32", parent_fp32,
                           measure.tflite_probabilities(parent_runtime, x_test, from_logits),
                           y_test, parent_accuracy, None, parent_runtime.describe()),
    ]
    reference_sizes = (rows[1]["bytes"], rows[1]["gzip_bytes"])

    records, seconds = {}, {}
    working_model = parent_model if working_model is None else working_model
    current, keras_model, tflite, savers = working_model, working_model, None, []
    for stage in stages:
        if progress:
            print(f"compress: {stage.name} ({config.recipe()})", flush=True)
        stage_started = time.time()
        outcome = stage.apply(current, context)
        seconds[stage.name] = round(time.time() - stage_started, 2)
        table = stage.layer_table(config)
        left_alone = custom_layers_left_alone(current, table) if table is not None else []
        if left_alone:
            outcome.record["custom_layers_left_alone"] = left_alone
            if progress:
                print(f"compress: {stage.name} left custom layer(s) {', '.join(left_alone)} as they "
                      "are (no tfmot interface for it)", flush=True)
        records[stage.name] = outcome.record
        context.applied[stage.name] = outcome.record
        current = outcome.model
        if outcome.keras_model is not None:
            keras_model = outcome.keras_model
        elif outcome.tflite is None:
            keras_model = outcome.model
        if outcome.tflite is not None:
            tflite = outcome.tflite
        if outcome.save is not None:
            savers.append(outcome.save)

    saved_model = getattr(keras_model, SAVED_MODEL_ATTRIBUTE, None)
    if saved_model:
        # A SavedModel with no Keras model inside stays one: copied as it is, never re-saved
        # around a layer that would have to load it again.
        shutil.copytree(saved_model, staging / SAVED_MODEL_FOLDER)
        model_name, model_format = SAVED_MODEL_FOLDER, "saved_model"
    else:
        keras_model.save(staging / KERAS_FILE)
        model_name, model_format = KERAS_FILE, "keras"
    (staging / TFLITE_FILE).write_bytes(tflite)
    model_files = {"file": model_name, "format": model_format, "tflite": TFLITE_FILE}
    for save in savers:  # a stage's own files (QAT: its quantization-aware model)
        model_files.update(save(staging))
    # Measure what the folder holds: the files reloaded from disk, not the objects in memory.
    reloaded = load_model_file(staging / model_name, settings=settings)
    runtime = LiteRTModel.load(staging / TFLITE_FILE)
    keras_probabilities = measure.keras_probabilities(reloaded, x_test, from_logits)
    tflite_probabilities = measure.tflite_probabilities(runtime, x_test, from_logits)
    # The .tflite must answer as the Keras model it was converted from: a conversion that lost
    # something (a folded scale, a dropped op) is a failed run, never a quiet row in a table.
    agreement = float((keras_probabilities.argmax(1) == tflite_probabilities.argmax(1)).mean()) \
        if len(x_test) else 1.0
    keras_accuracy = float((keras_probabilities.argmax(1) == y_test).mean()) if len(x_test) else 0.0
    tflite_accuracy = float((tflite_probabilities.argmax(1) == y_test).mean()) if len(x_test) else 0.0
    # An untrained model's answers are near-ties that any rounding flips: only a real loss fails.
    lost = agreement < MIN_TFLITE_AGREEMENT and tflite_accuracy < keras_accuracy - MAX_TFLITE_LOSS
    rows.append(measure.keras_row("compressed keras", reloaded,
                                  _model_bytes(staging / model_name), keras_probabilities,
                                  y_test, parent_accuracy))
    rows.append(measure.tflite_row("compressed tflite", mode.name, tflite,
                                   tflite_probabilities, y_test, parent_accuracy,
                                   reference_sizes, runtime.describe()))
    manifest = {
        "kind": "model",
        "stage": "compress",
        "name": final.name,
        "status": "failed" if lost else "complete",
        "created": manifest_io.now(),
        "parent": parent.record(),
        "recipe": config.recipe(),
        "techniques": [stage.name for stage in stages],
        "config": config.to_dict(),
        "runtime": {"precision_policy": policy, "seconds": round(time.time() - started, 2),
                    "stage_seconds": seconds},
        "dataset": dataset.describe(),
        "model": {**model_files, "outputs": "logits" if from_logits else "probabilities",
                  **settings.record(), **describe_model(reloaded)},
        "input_contract": dataset.contract.to_dict(),
        "stages": records,
        "evaluation": {
            "test": classification_report(y_test, keras_probabilities, dataset.class_names),
            "tflite_test": classification_report(y_test, tflite_probabilities, dataset.class_names),
        },
        "comparison": {
            "split": "test",
            "reference_accuracy": "parent keras model",
            "keras_sizes": "models saved as .keras without optimizer state",
            "reference_size": "parent converted to a float32 .tflite in this run",
            "tflite_top1_agreement_with_keras": round(agreement, 6),
            "min_tflite_top1_agreement": MIN_TFLITE_AGREEMENT,
            "rows": rows,
        },
        "versions": manifest_io.versions(("tensorflow-model-optimization", "ai-edge-litert")),
        "machine": manifest_io.machine(),
    }
    if calibration is not None:
        # The set export reuses for its own int8 files (edgekit.data.calibration).
        manifest["calibration"] = {"calibration_samples": int(len(calibration)),
                                   "seed": config.seed, "split": "train"}
    return manifest



def _model_bytes(path: Path) -> bytes:
    """A model file's bytes; a SavedModel folder's files concatenated (for its sizes)."""
    if path.is_dir():
        return b"".join(item.read_bytes() for item in sorted(path.rglob("*")) if item.is_file())
    return path.read_bytes()
