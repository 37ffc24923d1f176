"""``edgekit.compress``: apply the requested techniques to a trained model and write its model folder."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from edgekit import manifest as manifest_io
from edgekit import outputs
from edgekit.compress.config import CompressConfig
from edgekit.compress.parent import Parent, resolve_parent
from edgekit.config import shell_command

KERAS_FILE = "model.keras"
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
        return self.output_dir / KERAS_FILE

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
    given = {key: value for key, value in options.items() if key != "model"}
    config = CompressConfig.from_options(options)
    parent = resolve_parent(model, config)
    config = parent.resolve_config(config)
    final = Path(output_dir) if output_dir is not None else default_output_dir(parent.name, config)
    outputs.check_writable(final, force)
    staging = outputs.staging_path(final)

    from edgekit.data import load_dataset

    if loaded_dataset is None:
        loaded_dataset = load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed,
                                      validation_fraction=config.validation_fraction)
    parent.check_dataset(loaded_dataset)
    parent_model = parent.load_model()

    from edgekit.compress.stages import wanted_stages

    stages = wanted_stages(config)
    for stage in stages:  # a layer a technique cannot handle stops the run before any work
        stage.check(parent_model, config)
    parent.check_fits(parent_model, loaded_dataset)
    command = None if in_memory else shell_command(
        "edgekit", ["compress", *config.to_cli_args(), "--output", str(final)])

    outputs.discard(staging)
    staging.mkdir(parents=True)
    try:
        manifest = _run(config, parent, parent_model, loaded_dataset, stages, staging, final,
                        progress)
        manifest["options"] = given
        manifest["command"] = command
        manifest_io.write_manifest(staging, manifest)
        outputs.publish(staging, final)
    except BaseException:
        outputs.discard(staging)
        raise
    return CompressResult(output_dir=final, manifest=manifest)


def _run(config: CompressConfig, parent: Parent, parent_model, dataset, stages, staging: Path,
         final: Path, progress: bool) -> dict:
    from edgekit._compat import keras, tensorflow
    from edgekit.compress import measure
    from edgekit.compress.stages import StageContext
    from edgekit.data.calibration import calibration_samples
    from edgekit.export.tflite import TFLITE_MODES, convert_to_tflite
    from edgekit.models import describe_model
    from edgekit.runtimes.litert import LiteRTModel
    from edgekit.train.evaluate import classification_report
    from edgekit.train.precision import resolve_precision

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
    current, keras_model, tflite = parent_model, parent_model, None
    for stage in stages:
        if progress:
            print(f"compress: {stage.name} ({config.recipe()})", flush=True)
        stage_started = time.time()
        outcome = stage.apply(current, context)
        seconds[stage.name] = round(time.time() - stage_started, 2)
        records[stage.name] = outcome.record
        context.applied[stage.name] = outcome.record
        current = outcome.model
        if outcome.keras_model is not None:
            keras_model = outcome.keras_model
        elif outcome.tflite is None:
            keras_model = outcome.model
        if outcome.tflite is not None:
            tflite = outcome.tflite

    keras_model.save(staging / KERAS_FILE)
    (staging / TFLITE_FILE).write_bytes(tflite)
    model_files = {"file": KERAS_FILE, "format": "keras", "tflite": TFLITE_FILE}
    if "qat" in records:
        from edgekit.compress.qat import save_qat_model

        name, save_format = save_qat_model(current, staging, "cluster" in records)
        model_files.update(qat_file=name, qat_format=save_format,
                           qat_note="reload inside tfmot.quantization.keras.quantize_scope()")
    # Measure what the folder holds: the files reloaded from disk, not the objects in memory.
    reloaded = tf_keras.models.load_model(staging / KERAS_FILE, compile=False)
    runtime = LiteRTModel.load(staging / TFLITE_FILE)
    keras_probabilities = measure.keras_probabilities(reloaded, x_test, from_logits)
    tflite_probabilities = measure.tflite_probabilities(runtime, x_test, from_logits)
    rows.append(measure.keras_row("compressed keras", reloaded,
                                  (staging / KERAS_FILE).read_bytes(), keras_probabilities,
                                  y_test, parent_accuracy))
    rows.append(measure.tflite_row("compressed tflite", mode.name, tflite,
                                   tflite_probabilities, y_test, parent_accuracy,
                                   reference_sizes, runtime.describe()))
    manifest = {
        "kind": "model",
        "stage": "compress",
        "name": final.name,
        "status": "complete",
        "created": manifest_io.now(),
        "parent": parent.record(),
        "recipe": config.recipe(),
        "techniques": [stage.name for stage in stages],
        "config": config.to_dict(),
        "runtime": {"precision_policy": policy, "seconds": round(time.time() - started, 2),
                    "stage_seconds": seconds},
        "dataset": dataset.describe(),
        "model": {**model_files, "outputs": "logits" if from_logits else "probabilities",
                  **describe_model(reloaded)},
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

