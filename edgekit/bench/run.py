"""``edgekit.bench``: every artifact's latency, throughput, memory, size, accuracy and fidelity.

The parent process loads the dataset (never TensorFlow), writes the model-ready test inputs once
per subject, then runs each (artifact, threads) pair in a worker process of its own, one after
the other so they never compete for the CPU. Accuracy and fidelity are computed here, from the
outputs the workers saved. Then the JSON, Markdown and plots are written and the gates checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit import outputs as outputs_io
from edgekit.bench import gates as gates_module
from edgekit.bench.accuracy import accuracy, fidelity
from edgekit.bench.android import run_on_device
from edgekit.bench.artifacts import Artifact, Subject, discover
from edgekit.bench.config import BenchConfig
from edgekit.bench.isolation import run_isolated
from edgekit.bench.load_worker import LOAD_WORKER
from edgekit.bench.report import build_report, check_bench_output, terminal_table, write_outputs
from edgekit.data import load_dataset
from edgekit.data.base import Preprocessing
from edgekit.data.contract import MANIFEST, InputContract, resolve_contract
from edgekit.errors import InferenceError, OptionError, RunFailedError, ServeError
from edgekit.formats.triton import PREPROCESSING_PARAMETER, UNBATCHED_SUFFIX, unbatched_name
from edgekit.registry import load_plugins
from edgekit.runtimes import RUNTIMES, runtime_module
from edgekit.runtimes.triton import split_target
from edgekit.runtimes.triton_client import TritonClient

DEFAULT_OUTPUT = "bench"


@dataclass
class BenchResult:
    """What a benchmark run measured and wrote.

    Attributes:
        report: the JSON document (see :mod:`edgekit.bench.report` for its schema).
        output_dir: where bench.json, bench.md and the plots are.
        files: name -> path of everything written.
        broken_gates: one line per gate that broke (empty when all held).
    """

    report: dict
    output_dir: Path
    files: dict
    broken_gates: list

    @property
    def artifacts(self) -> list[dict]:
        return self.report["artifacts"]

    @property
    def failed(self) -> list[dict]:
        return [row for row in self.artifacts if row["status"] != "ok"]

    def row(self, name: str) -> dict:
        return next(row for row in self.artifacts if row["name"] == name)

    def table(self) -> str:
        return terminal_table(self.report)


class GatesFailedError(RunFailedError):
    """One or more ``--fail-if`` gates broke (exit code 1); ``result`` holds the whole run."""

    def __init__(self, message: str, result: BenchResult):
        super().__init__(message)
        self.result = result


class ArtifactsFailedError(RunFailedError):
    """Some artifacts could not be measured (exit code 1); the others are in ``result``."""

    def __init__(self, message: str, result: BenchResult):
        super().__init__(message)
        self.result = result


def bench(*models, output_dir: str | os.PathLike | None = None,
          progress: Callable[[int, int, str], None] | None = None,
          command: str | None = None, **options) -> BenchResult:
    """Benchmark every artifact of one or more model folders (or the files given).

    Args:
        *models: model folders (train / compress / export) or artifact files (.keras, .tflite,
            .onnx, or a suffix a plug-in runtime runs); none with a ``triton://`` target
            measures only the served model.
        output_dir: where to write bench.json, bench.md and plots/ (default
            ``<first model folder>/bench``, or ``./bench``).
        progress: called as ``progress(done, total, label)`` while it runs.
        command: the command line to record (the CLI passes its own).
        **options: fields of :class:`edgekit.bench.config.BenchConfig` (batches, threads,
            target, fail_if, ...), or options a registered runtime declares.

    Runtimes of your own: the plug-ins (``EDGEKIT_PLUGINS``, ``edgekit.plugins`` entry points)
    are loaded first, here and in every worker process (:func:`edgekit.registry.load_plugins`).

    Returns:
        A :class:`BenchResult`.

    Raises:
        GatesFailedError: (exit 1) when a ``fail_if`` gate broke; everything is written first.
        ArtifactsFailedError: (exit 1) when an artifact failed to load or run; the others are
            measured and written.
        EdgekitError: for bad options, missing files, an unreachable Triton server.

    Example:
        >>> result = edgekit.bench("models/cnn-digits", batches="1,8", fail_if=["p99_ms>5"])
        >>> print(result.table())
    """
    load_plugins()  # a plug-in's runtime (and its options) must be registered before the config
    config = BenchConfig.from_options(options)
    gates = gates_module.parse_gates(config.fail_if)
    subjects = discover(models, dataset=config.dataset, data_dir=config.data_dir) if models else []
    if config.target_kind == "triton":
        subjects = _add_triton(subjects, config)
    if not subjects:
        raise OptionError("nothing to benchmark; pass a model folder or artifact files "
                          "(edgekit bench models/cnn-digits), or --target triton://HOST:PORT "
                          "with --dataset")
    if config.target_kind == "adb":
        _keep_tflite_only(subjects)
    if config.include:
        _keep_included(subjects, config.include)
    names = [artifact.name for subject in subjects for artifact in subject.artifacts]
    gates_module.check_artifact_names(gates, names)
    output = Path(output_dir) if output_dir is not None else _default_output(subjects)
    check_bench_output(output, inputs=tuple(artifact.path for subject in subjects
                                            for artifact in subject.artifacts
                                            if artifact.format != "triton"))

    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="edgekit-bench-"))
    try:
        rows = _measure_all(subjects, config, work, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = build_report(rows, subjects, config, time.time() - started, command)
    broken = gates_module.broken(gates, report["artifacts"])
    report["gates"] = {"checked": [gate.text for gate in gates], "broken": broken}
    with outputs_io.OutputLock(output):
        files = write_outputs(report, output)
    result = BenchResult(report=report, output_dir=output, files=files, broken_gates=broken)
    if broken:
        raise GatesFailedError(f"{len(broken)} gate(s) broke: " + "; ".join(broken), result)
    if result.failed:
        raise ArtifactsFailedError(
            f"{len(result.failed)} of {len(result.artifacts)} artifact(s) could not be measured: "
            + "; ".join(f"{row['name']}: {row['reason']}" for row in result.failed)
            + f". The others are in {files['json']}", result)
    return result


def _measure_all(subjects: list[Subject], config: BenchConfig, work: Path, progress) -> list[dict]:
    jobs = []  # (subject, artifact, threads)
    for subject in subjects:
        for artifact in subject.artifacts:
            threads = [None] if artifact.runtime == "triton" else list(config.threads)
            jobs.extend((subject, artifact, count) for count in threads)
    per_job = len(config.batches) * len(config.concurrency) + 1
    total = len(jobs) * per_job + (len({a.name for _, a, _ in jobs}) if config.accuracy else 0)
    done = [0]

    def report_step(label: str) -> None:
        done[0] += 1
        if progress is not None:
            progress(min(done[0], total), total, label)

    inputs = {subject.name: _inputs(subject, config, work) for subject in subjects}
    runs: dict[str, list[dict]] = {}
    for subject, artifact, threads in jobs:
        x_path, labels = inputs[subject.name]
        first = artifact.name not in runs
        outputs = str(work / f"{_slug(artifact.name)}.outputs.npy") if first and config.accuracy \
            else None
        label = artifact.name + (f" ({threads} threads)" if threads else "")
        if config.target_kind == "adb" and artifact.runtime == "litert":
            record = run_on_device(artifact, config, threads)
            record["threads"] = threads
            for _ in range(per_job + (1 if outputs else 0)):
                report_step(label)
        else:
            spec = {"slug": _slug(f"{artifact.name}-{threads}"), "name": artifact.name,
                    "runtime": artifact.runtime, "runtime_module": runtime_module(artifact.runtime),
                    "path": artifact.path,
                    "options": config.runtime_values(threads),
                    "timing": config.timing.to_dict(), "batches": list(config.batches),
                    "concurrency": list(config.concurrency) if artifact.runtime == "triton" else [1],
                    "x": x_path, "outputs": outputs, "dataset": subject.dataset,
                    "pin_cpus": list(config.pin_cpus) if config.pin_cpus else None}
            steps = [0]
            expected = (per_job if artifact.runtime != "triton" else
                        len(config.batches) * len(config.concurrency) + 1) + (1 if outputs else 0)

            def on_event(event, label=label, steps=steps):
                if event.get("event") == "step":
                    steps[0] += 1
                    report_step(f"{label}: {event.get('label', '')}")

            record = run_isolated(spec, work, config.timeout, on_event,
                                  command=LOAD_WORKER if artifact.runtime == "triton" else None)
            for _ in range(max(0, expected - steps[0])):  # a failed worker skipped its steps
                report_step(label)
            if outputs and record["status"] == "ok" and Path(outputs).is_file():
                record["outputs"] = np.load(outputs)
        runs.setdefault(artifact.name, []).append(record)
    return _rows(subjects, runs, inputs, config)


def _rows(subjects, runs: dict, inputs: dict, config: BenchConfig) -> list[dict]:
    rows = []
    reference_accuracy = None
    for subject in subjects:
        _, labels = inputs[subject.name]
        for artifact in subject.artifacts:
            reference = _fidelity_reference(subject, artifact)
            reference_outputs = None
            if reference is not None and reference.name in runs:
                reference_outputs = runs[reference.name][0].get("outputs")
            records = runs.get(artifact.name, [])
            outputs = records[0].get("outputs") if records else None
            row = {**artifact.record(), "runs": [_plain_run(record) for record in records],
                   "accuracy": None, "fidelity": None}
            failed = [record for record in records if record.get("status") != "ok"]
            row["status"] = "failed" if failed else "ok"
            row["reason"] = failed[0].get("reason") if failed else None
            if outputs is not None:
                row["accuracy"] = accuracy(outputs, labels)
                if reference_accuracy is None and artifact is subject.reference:
                    reference_accuracy = row["accuracy"]
                if reference_outputs is not None and artifact is not reference:
                    row["fidelity"] = {**fidelity(reference_outputs, outputs),
                                       "reference": reference.name}
            rows.append(row)
    if reference_accuracy is None:  # no Keras model in the run: the first artifact with accuracy
        reference_accuracy = next((row["accuracy"] for row in rows if row["accuracy"] is not None),
                                  None)
    for row in rows:
        row["accuracy_drop"] = None if row["accuracy"] is None or reference_accuracy is None \
            else (reference_accuracy - row["accuracy"]) * 100
    return rows


def _fidelity_reference(subject: Subject, artifact: Artifact) -> Artifact | None:
    """What an artifact's outputs are compared with: the Keras model, except for a served model.

    A served model runs an ONNX file; when the run also measures an fp32 ONNX file in process,
    the served answers are compared with it (what serving must not change), else with Keras.
    """
    if artifact.format == "triton":
        onnx = [a for a in subject.artifacts if a.format == "onnx" and a.precision in ("fp32", None)]
        if onnx:
            return onnx[0]
    return subject.reference


def _plain_run(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in ("outputs", "log")}


def _inputs(subject: Subject, config: BenchConfig, work: Path) -> tuple[str, np.ndarray]:
    """Write the subject's model-ready test inputs once; return their path and the labels."""
    if not subject.dataset:
        raise OptionError(f"{subject.name}: no dataset in its manifest; pass --dataset")
    dataset = load_dataset(subject.dataset, data_dir=subject.data_dir)
    recorded = InputContract.from_dict(subject.contract) if subject.contract else None
    source = (f"model folder {str(subject.folder)!r}" if subject.folder is not None
              else f"{', '.join(a.path for a in subject.artifacts)}")
    contract = resolve_contract(dataset, stated=config.preprocess, model_layers=subject.model_layers,
                                recorded=recorded, recorded_in=subject.contract_from,
                                model_source=source)
    dataset = dataset.with_contract(contract)
    x, y = dataset.preprocessed("test")
    if config.samples:
        x, y = x[:config.samples], y[:config.samples]
    path = work / f"{_slug(subject.name)}.x.npy"
    np.save(path, np.ascontiguousarray(x, dtype=np.float32))
    subject.dataset_record = {"name": dataset.name, "split": "test", "samples": int(len(y)),
                              "sample_shape": list(dataset.sample_shape),
                              "preprocessing": dataset.preprocessing.to_dict(),
                              "preprocessing_from": contract.source,
                              "input_contract": contract.to_dict()}
    return str(path), y


def _add_triton(subjects: list[Subject], config: BenchConfig) -> list[Subject]:
    """An artifact per protocol (and per batching variant) for the served model.

    Its dataset comes from the first model folder or ``--dataset``. With ``compare_batching``
    the model served as ``<model>-nobatch`` (:func:`edgekit.formats.triton.add_unbatched_variant`)
    is measured beside it; both must be ready, and only the first may batch dynamically.
    """
    url, model = split_target(config.target)
    scheme, _, address = url.partition("://")
    protocols = config.protocols if scheme.lower() == "triton" else (scheme.lower(),)
    for protocol in protocols:
        where = _address(address, protocol, config) if scheme.lower() == "triton" else address
        full = f"{protocol}://{where}"
        chosen = model if model or not config.compare_batching else _batched_model(full)
        served = _served_model(full, chosen,
                               expect_batching=True if config.compare_batching else None)
        variants = [(f"triton-{protocol}", served)]
        if config.compare_batching:
            variants.append((f"triton-{protocol}{unbatched_name('')}",
                             _served_model(full, unbatched_name(served), expect_batching=False,
                                           batched=served)))
        if not subjects:
            if not config.dataset:
                raise OptionError("--target triton://... without a model folder needs --dataset "
                                  "(its test split measures accuracy)")
            subjects.append(Subject(name=served, folder=None, dataset=config.dataset,
                                    data_dir=config.data_dir, preprocessing=None,
                                    contract=_served_contract(full, served),
                                    contract_from=f"the served config of {served!r}"))
        triton = RUNTIMES.get("triton")
        for name, served_name in variants:
            subjects[0].artifacts.append(Artifact(name=name, format=triton.format, runtime=triton.name,
                                                  path=f"{full}#{served_name}", precision=None,
                                                  subject=subjects[0].name))
    return subjects


def _served_contract(url: str, model: str) -> dict | None:
    """The input contract export wrote into the served config (``edgekit_preprocessing``)."""
    with RUNTIMES.get("triton").load(f"{url}#{model}") as runtime:
        entry = (runtime.served_config().get("parameters") or {}).get(PREPROCESSING_PARAMETER)
    text = entry.get("string_value", "") if isinstance(entry, dict) else (entry or "")
    try:
        values = json.loads(text)
        return InputContract(Preprocessing.from_dict(values), MANIFEST,
                             f"the served config of {model!r}", values.get("raw") or {}).to_dict()
    except (ValueError, KeyError, TypeError):
        return None


def _address(address: str, protocol: str, config: BenchConfig) -> str:
    """``triton://HOST:PORT`` names HTTP's port; gRPC's is ``--grpc-port`` or PORT + 1."""
    if protocol != "grpc":
        return address
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():  # no port: Triton's defaults
        return f"{address}:{config.grpc_port or 8001}"
    return f"{host}:{config.grpc_port or int(port) + 1}"


def _batched_model(url: str) -> str | None:
    """The only ready model that is not a ``-nobatch`` variant (None: let the runtime explain)."""
    try:
        with TritonClient(url, timeout=5) as client:
            ready = {entry["name"] for entry in client.models() if entry.get("state") == "READY"}
    except ServeError:
        return None  # TritonModel says why, in the same words as everywhere
    names = sorted(name for name in ready if not name.endswith(UNBATCHED_SUFFIX))
    return names[0] if len(names) == 1 else None


def _served_model(url: str, model: str | None, expect_batching: bool | None = None,
                  batched: str | None = None) -> str:
    """The served model's name, after checking it is there (fails within seconds if not).

    The triton runtime's messages name ``--url`` / ``--model``; here they name what a benchmark
    takes: ``--target URL#MODEL``, ``--protocol`` and ``--grpc-port``.
    """
    target = f"{url}#{model}" if model else url
    try:
        runtime = RUNTIMES.get("triton").load(target)
    except (InferenceError, OptionError) as error:
        if batched is not None:
            raise OptionError(
                f"--compare-batching measures {model!r} beside {batched!r}, but Triton at {url} "
                f"does not serve it ({error}). Add it to the repository and serve again: python -c "
                f"\"from edgekit.formats.triton import add_unbatched_variant; "
                f"add_unbatched_variant('triton_repo', '{batched}')\"") from error
        if isinstance(error, OptionError) and "pass --model NAME" in str(error):
            raise OptionError(str(error).replace(
                "pass --model NAME", f"name one in the target: {url}#NAME")) from error
        raise
    except ServeError as error:
        raise ServeError(str(error).replace("check --url and --protocol",
                                            "check --target, --protocol and --grpc-port")) from error
    try:
        if expect_batching is not None and runtime.dynamic_batching != expect_batching:
            raise OptionError(
                f"--compare-batching expects {runtime.model!r} at {url} "
                f"{'with' if expect_batching else 'without'} dynamic_batching in its config; "
                f"received a config {'with' if runtime.dynamic_batching else 'without'} it")
        return runtime.model
    finally:
        runtime.close()


def _keep_tflite_only(subjects: list[Subject]) -> None:
    for subject in subjects:
        subject.artifacts = [a for a in subject.artifacts if a.format in ("tflite", "keras")]
        # The Keras model stays on the host: it is the fidelity reference, not a device figure.


def _keep_included(subjects: list[Subject], include) -> None:
    names = [artifact.name for subject in subjects for artifact in subject.artifacts]
    missing = [name for name in include if name not in names]
    if missing:
        raise OptionError(f"--only names {', '.join(missing)}, not in this run; expected some of: "
                          f"{', '.join(names)}")
    for subject in subjects:
        subject.artifacts = [a for a in subject.artifacts if a.name in include]


def _default_output(subjects: list[Subject]) -> Path:
    first = subjects[0]
    return first.folder / DEFAULT_OUTPUT if first.folder is not None else Path(DEFAULT_OUTPUT)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
