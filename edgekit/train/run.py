"""``edgekit.train``: fit a zoo model or a user's model on a dataset and write its model folder."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit import manifest as manifest_io, outputs
from edgekit._compat import keras, tensorflow
from edgekit.config import TrainConfig, is_model_file, shell_command
from edgekit.data import augmentation_layers, load_dataset
from edgekit.data.contract import leading_preprocessing_layers, preprocess_text, resolve_contract
from edgekit.data.sources import dataset_inputs
from edgekit.errors import EdgekitError, OptionError
from edgekit.models import build_model, describe_model, load_model_file
from edgekit.models.describe import check_model_fits_dataset
from edgekit.models.fileinfo import read_model_info
from edgekit.models.keras3 import is_keras3_model, keras3
from edgekit.models.loading import load_settings
from edgekit.train.checkpoint import read_state, restore
from edgekit.train.distribute import is_chief, make_strategy, resolve_distribution
from edgekit.train.evaluate import classification_report
from edgekit.train.optimizers import make_optimizer
from edgekit.train.pipeline import make_pipeline
from edgekit.train.plots import plot_confusion_matrix, plot_history
from edgekit.train.precision import precision_policy, resolve_precision

# Options that only say where things are or what gets logged: a resumed run may change them.
_RESUMABLE_CHANGES = {"epochs", "data_dir", "tensorboard"}
# Marks a resume state whose staging folder this run copied from the finished folder.
COPIED_KEY = "_copied_from_final"


class TrainingInterrupted(EdgekitError):
    """Ctrl-C or SIGTERM during training; the checkpoints are kept for ``--resume``."""

    exit_code = 130


@dataclass
class TrainResult:
    """What a training run produced."""

    output_dir: Path
    manifest: dict

    @property
    def test_accuracy(self) -> float:
        return self.manifest["evaluation"]["test"]["accuracy"]

    @property
    def report(self) -> dict:
        return self.manifest["evaluation"]["test"]


def default_output_dir(config: TrainConfig, root: str | os.PathLike = "models") -> Path:
    """``models/<model>-<dataset>``, e.g. ``models/cnn-digits``."""
    model = Path(config.model.rstrip("/")).stem if is_model_file(config.model) else config.model
    dataset = config.dataset.split(":", 1)[-1] if ":" in config.dataset else config.dataset
    dataset = Path(dataset.rstrip("/")).stem if ":" in config.dataset else dataset
    return Path(root) / f"{model}-{dataset}"


def train(output_dir: str | os.PathLike | None = None, force: bool = False, resume: bool = False,
          progress: bool = True, **options) -> TrainResult:
    """Train a model and write its model folder (model, manifest, plots, checkpoints).

    Args:
        output_dir: the model folder to write (default ``models/<model>-<dataset>``).
        force: replace an existing, non-empty output folder.
        resume: continue the run saved in the output folder (or its interrupted staging folder);
            only ``epochs``, ``data_dir`` and ``tensorboard`` may change.
        progress: show Keras' per-epoch progress bar.
        **options: fields of :class:`edgekit.config.TrainConfig` (model, dataset, epochs, ...).

    Returns:
        A :class:`TrainResult` with the folder and its manifest.

    Raises:
        EdgekitError: for bad options, data or model files, and outputs that exist.

    Example:
        >>> result = edgekit.train(model="cnn", dataset="digits", epochs=20)
        >>> result.test_accuracy
    """
    if resume and force:
        raise OptionError("--resume continues a run and --force deletes it; received both. Pick one")
    if options.get("preprocess") is not None:
        options = {**options, "preprocess": preprocess_text(options["preprocess"])}
    if options.get("custom_objects") is not None:
        options = {**options, "custom_objects": os.fspath(options["custom_objects"])}
    config = TrainConfig.from_options(options)
    final = Path(output_dir) if output_dir is not None else default_output_dir(config)
    if not is_chief():
        # Multi-worker: every worker runs the same saves (they are collective operations), but
        # only the chief's land in the output folder; the others write to a scratch folder.
        final = Path(tempfile.mkdtemp(prefix="edgekit-worker-")) / final.name
    staging = outputs.staging_path(final)
    with outputs.OutputLock(final):
        return _start(config, final, staging, force, resume, progress, options)


def _start(config: TrainConfig, final: Path, staging: Path, force: bool, resume: bool,
           progress: bool, options: dict) -> TrainResult:

    state = None
    if resume:
        config, state = _prepare_resume(final, staging, options)
    else:
        own_model = config.model if is_model_file(config.model) else None
        outputs.check_output(final, force, ("train",),
                             inputs=(own_model, *dataset_inputs(config.dataset, config.data_dir)))
        if staging.exists() and force:
            outputs.discard(staging)
        elif staging.exists():
            raise outputs.OutputExistsError(
                f"an interrupted run of {final} is waiting in {staging}; pass --resume to continue "
                "it or --force to start over"
            )
    return _run(config, final, staging, state, progress)


def _prepare_resume(final: Path, staging: Path, options: dict):

    state = read_state(staging)
    copy_from_final = False
    if state is None:
        state = read_state(final)
        if (final / manifest_io.MANIFEST_NAME).is_file():
            manifest_io.read_manifest(final)  # a folder whose manifest is not edgekit's: refused
        if state is None:
            raise OptionError(
                f"--resume found no checkpoint in {final} or {staging}; expected the output folder "
                "of an earlier edgekit train run. Drop --resume to start a new run"
            )
        copy_from_final = True
    saved = TrainConfig.from_options(state["config"])
    for key, value in options.items():
        if key not in _RESUMABLE_CHANGES and value != getattr(saved, key):
            raise OptionError(
                f"--resume continues a run with {key}={getattr(saved, key)!r}; received "
                f"{key}={value!r}. Drop that option, or start a new run with --force"
            )
    for key in _RESUMABLE_CHANGES & set(options):
        setattr(saved, key, options[key])
    if saved.epochs <= state["epochs_done"]:
        raise OptionError(
            f"the run in {final} has trained {state['epochs_done']} epochs; received --epochs "
            f"{saved.epochs}. Pass --epochs greater than {state['epochs_done']} to continue it"
        )
    saved.validate()
    if copy_from_final:  # only once the resume is accepted: a refused one leaves nothing behind
        outputs.discard(staging)
        shutil.copytree(final, staging)
        state[COPIED_KEY] = True
    return saved, state


def _run(config: TrainConfig, final: Path, staging: Path, state: dict | None,
         progress: bool) -> TrainResult:

    tf = tensorflow()
    started = time.time()
    keras().utils.set_random_seed(config.seed)
    dataset = load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed,
                           validation_fraction=config.validation_fraction)
    augmentation = _augmentation(config, dataset)
    gpus = tf.config.list_physical_devices("GPU")

    policy = resolve_precision(config.precision, len(gpus))
    distribution = resolve_distribution(config.distribute, len(gpus), os.environ.get("TF_CONFIG"))
    strategy = make_strategy(distribution)
    steps_per_epoch = int(np.ceil(len(dataset.y_train) / config.batch_size))

    with strategy.scope(), precision_policy(policy):
        model, from_logits, parent, settings = _make_model(config, dataset)
        _compile(model, config, from_logits, total_steps=steps_per_epoch * config.epochs)
    dataset = _under_contract(config, dataset, model)
    if progress:
        print(dataset.contract.line(), flush=True)
    x_train, y_train = dataset.preprocessed("train")
    x_val, y_val = dataset.preprocessed("val")

    fresh = state is None
    copied = bool(state and state.get(COPIED_KEY))
    staging.mkdir(parents=True, exist_ok=True)
    try:
        history, stopper, epochs_done = _fit(model, config, staging, state, augmentation,
                                             (x_train, y_train), (x_val, y_val), progress)
    except KeyboardInterrupt as error:
        _abandon(staging, fresh)
        raise TrainingInterrupted(_interrupted_message(config, final, staging)) from error
    except Exception:
        _discard_failed(staging, fresh, copied)
        raise
    try:
        return _finish(config, final, staging, state, dataset, model, from_logits, parent, settings,
                       policy, distribution, strategy, gpus, history, stopper, epochs_done,
                       started)
    except KeyboardInterrupt as error:
        raise TrainingInterrupted(_interrupted_message(config, final, staging)) from error
    except Exception:
        _discard_failed(staging, fresh, copied)
        raise


def _discard_failed(staging: Path, fresh: bool, copied: bool) -> None:
    """A run that failed (a full disk, a corrupt checkpoint) leaves nothing of its own behind.

    A resumed run's staging folder holds the user's earlier checkpoints and is kept, unless this
    run copied it from the finished folder itself.
    """
    if fresh or copied:
        outputs.discard(staging)


def _finish(config, final, staging, state, dataset, model, from_logits, parent, settings, policy,
            distribution, strategy, gpus, history, stopper, epochs_done, started) -> TrainResult:
    """Evaluate, save the model, plots and manifest in the staging folder, then publish it."""

    tf = tensorflow()

    x_test, y_test = dataset.preprocessed("test")
    probabilities = model.predict(x_test, batch_size=256, verbose=0)
    if from_logits:
        probabilities = tf.nn.softmax(probabilities).numpy()

    report = classification_report(y_test, probabilities, dataset.class_names)
    title = f"{final.name}: {dataset.name}"
    model.save(staging / "model.keras")
    plot_history(history, staging / "training_curves.png", title, best_epoch=stopper.best_epoch + 1)
    plot_confusion_matrix(report["confusion_matrix"], dataset.class_names,
                          staging / "confusion_matrix.png",
                          f"{title} test accuracy {report['accuracy'] * 100:.2f}%")

    manifest = {
        "kind": "model",
        "stage": "train",
        "name": final.name,
        "status": "complete",
        "created": manifest_io.now(),
        "parent": parent,
        "command": shell_command("edgekit", ["train", *config.to_cli_args(), "--output", str(final)]),
        "config": config.to_dict(),
        "runtime": {
            "precision_policy": policy,
            "distribution": distribution,
            "replicas": int(strategy.num_replicas_in_sync),
            "gpus": [device.name for device in gpus],
            "seconds": round(time.time() - started, 2),
        },
        "dataset": dataset.describe(),
        "model": {"file": "model.keras", "format": "keras",
                  "outputs": "logits" if from_logits else "probabilities",
                  **(settings.record() if settings is not None else {}), **describe_model(model)},
        "input_contract": dataset.contract.to_dict(),
        "training": {
            "epochs_run": epochs_done,
            "resumed_after_epoch": None if state is None else state["epochs_done"],
            "stopped_early": stopper.stopped_epoch is not None and epochs_done < config.epochs,
            "best_epoch": stopper.best_epoch + 1,
            "optimizer_steps": int(model.optimizer.iterations.numpy()),
            "history": history,
        },
        "evaluation": {"test": report},
        "plots": {"training_curves": "training_curves.png",
                  "confusion_matrix": "confusion_matrix.png"},
        "versions": manifest_io.versions(),
        "machine": manifest_io.machine(),
    }
    manifest_io.write_manifest(staging, manifest)
    outputs.publish(staging, final)
    return TrainResult(output_dir=final, manifest=manifest)


def _augmentation(config: TrainConfig, dataset):
    if not config.augment:
        return None

    return augmentation_layers(dataset)


def _under_contract(config: TrainConfig, dataset, model):
    """The dataset under the model's input contract: a zoo model takes what train chose."""

    own = is_model_file(config.model)
    contract = resolve_contract(dataset, stated=config.preprocess,
                                model_layers=leading_preprocessing_layers(model) if own else (),
                                trained_here=not own, model_source=f"model {config.model!r}")
    return dataset.with_contract(contract)


def _make_model(config: TrainConfig, dataset):
    """(model, outputs_are_logits, parent record, load settings) for a zoo name or a model file."""

    if not is_model_file(config.model):
        model = build_model(config.model, dataset.sample_shape, dataset.num_classes,
                            config.model_options)
        return model, False, None, None
    settings = load_settings(config.custom_objects, config.unsafe_deserialization,
                             source=f"model {config.model!r}")
    model = load_model_file(config.model, settings=settings)
    check_model_fits_dataset(model, dataset, config.model,
                             fix="Use a dataset of that shape, or a model made for it")
    activation = getattr(model.layers[-1], "activation", None)
    from_logits = getattr(activation, "__name__", "") != "softmax"
    source = Path(config.model)
    parent = {"path": str(source)}
    if source.is_file():
        parent["sha256"] = manifest_io.sha256_file(source)

    info = read_model_info(source)  # which Keras wrote the file, read off the file itself
    parent.update(writer=info.writer, keras_version=info.keras_version)
    return model, from_logits, parent, settings


def _compile(model, config: TrainConfig, from_logits: bool, total_steps: int) -> None:

    # A Keras 3 model keeps training in Keras 3: its own optimizers and losses.
    api = keras3() if is_keras3_model(model) else keras()
    optimizer = make_optimizer(config.optimizer, config.learning_rate, config.momentum,
                               config.weight_decay, config.schedule, total_steps, api=api)
    model.compile(
        optimizer=optimizer,
        loss=api.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )


def _fit(model, config, staging, state, augmentation, train_split, val_split, progress):
    # lazy: the callbacks subclass tf-keras classes, so importing them loads TensorFlow
    from edgekit.train.callbacks import EpochCheckpoint, ResumableEarlyStopping  # lazy: see above

    history, best_weights, initial_epoch = {}, None, 0
    if state is not None:
        best_weights = restore(model, staging, state)
        history, initial_epoch = state["history"], state["epochs_done"]
    stopper = ResumableEarlyStopping(config.early_stopping,
                                     state and state.get("early_stopping"), best_weights)
    checkpoint = EpochCheckpoint(staging, config.to_dict(), history, stopper)
    callbacks = [stopper, checkpoint]
    if config.tensorboard:
        callbacks.append(keras().callbacks.TensorBoard(log_dir=str(staging / "tensorboard")))
    train_data = make_pipeline(*train_split, config.batch_size, shuffle=True, seed=config.seed,
                               augmentation=augmentation)
    val_data = make_pipeline(*val_split, config.batch_size, shuffle=False)
    verbose = (1 if sys.stdout.isatty() else 2) if progress else 0
    model.fit(train_data, validation_data=val_data, epochs=config.epochs,
              initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose)
    epochs_done = len(checkpoint.history.get("loss", []))
    return checkpoint.history, stopper, epochs_done


def _abandon(staging: Path, fresh: bool) -> None:
    """Keep a staging folder that holds a checkpoint; drop one that has nothing to resume."""

    if fresh and read_state(staging) is None:
        outputs.discard(staging)


def _interrupted_message(config: TrainConfig, final: Path, staging: Path) -> str:

    state = read_state(staging)
    if state is None:
        return "training interrupted before the first epoch ended; nothing was written"
    return (
        f"training interrupted after epoch {state['epochs_done']}; its checkpoint is in {staging}. "
        f"Continue with: edgekit train --output {final} --resume --epochs {config.epochs}"
    )
