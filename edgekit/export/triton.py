"""The ``triton`` export format: a new version of the model in a Triton model repository.

It serves one of the ONNX artifacts (``--triton-precision``; by default fp32, or int8 for a
model that has a quantization-aware model, whose int8 ONNX keeps the learned quantization), and
is written last: it is the one format that writes outside the export folder.
"""

from __future__ import annotations

import time
from pathlib import Path

from edgekit.errors import OptionError
from edgekit.export.common_options import Choice, ListOption, PathOption
from edgekit.export.formats import ExportFormat, register_format
from edgekit.export.job import ExportJob
from edgekit.export.onnx import PRECISIONS as ONNX_PRECISIONS, ensure_onnx
from edgekit.formats.triton import (PLATFORM, add_model_version, check_model_name,
                                    parse_version_policy)
from edgekit.manifest import package_version
from edgekit.models.folder import safe_model_name
from edgekit.options import Option

INSTANCE_KINDS = ("cpu", "gpu")

OPTIONS = (
    PathOption("triton_repository", default="triton_repo", help="the Triton model repository",
               aliases=("--triton-repo",)),
    Option("triton_model_name", str, None, "the model's name in the repository",
           example="cnn-digits-int8", default_text="the model folder's name"),
    Choice("triton_precision", str, None, "the ONNX precision Triton serves",
           choices=ONNX_PRECISIONS, default_text="fp32; int8 for a quantization-aware model"),
    Option("max_batch_size", int, 32, "Triton max_batch_size (0: no batching)", minimum=0,
           label="field", example="32"),
    ListOption("preferred_batch_sizes", int, "8,16", "dynamic batching's preferred batch sizes",
               minimum=1, noun="batch size", example="8,16"),
    Option("max_queue_delay_us", int, 100, "dynamic batching's max queue delay, in microseconds",
           minimum=0, label="field", example="100"),
    Option("instance_count", int, 1, "Triton model instances", minimum=1, label="field",
           example="1"),
    Choice("instance_kind", str, "cpu", "where the instances run", choices=INSTANCE_KINDS),
    Option("version_policy", str, "latest:1", "the versions Triton serves: latest:N, all or "
           "specific:V1,V2", example="latest:1"),
)


def validate(config) -> None:
    for size in config.preferred_batch_sizes or ():
        if config.max_batch_size and size > config.max_batch_size:
            raise OptionError(
                f"preferred batch size {size} exceeds --max-batch-size "
                f"{config.max_batch_size}; received --preferred-batch-sizes "
                f"{','.join(map(str, config.preferred_batch_sizes))}. Lower them or raise "
                "--max-batch-size")
    parse_version_policy(config.version_policy)


def preflight(config, source) -> None:
    """The repository gets new folders: never inside the model folder, nor around it."""
    if source.folder is None:
        return
    repository, model = Path(config.triton_repository).resolve(), source.folder.resolve()
    if repository == model or repository.is_relative_to(model) or model.parent == repository:
        raise OptionError(
            f"--triton-repository {str(repository)!r} would put Triton's files "
            f"{'inside' if repository.is_relative_to(model) else 'beside the files of'} the model "
            f"folder {str(source.folder)!r} this export reads; pass a repository of its own, e.g. "
            "--triton-repository triton_repo")


def precision(job: ExportJob) -> str:
    """What ``--triton-precision`` says; by default int8 when there is a QAT model, else fp32."""
    if job.config.triton_precision:
        return job.config.triton_precision
    return "int8" if job.has_qat_model else "fp32"


def write(job: ExportJob) -> None:
    config = job.config
    served = precision(job)
    model_name = check_model_name(config.triton_model_name or safe_model_name(job.source.name))
    source = ensure_onnx(job, served)
    if source.get("status") != "passed":
        job.skip("triton", "triton", served,
                 f"its ONNX file ({source['name']}) failed the fidelity check; the repository "
                 "was left unchanged")
        return
    started = time.time()
    options = {"max_batch_size": config.max_batch_size,
               "preferred_batch_sizes": tuple(config.preferred_batch_sizes),
               "max_queue_delay_us": config.max_queue_delay_us,
               "instance_count": config.instance_count, "instance_kind": config.instance_kind,
               "version_policy": config.version_policy}
    lineage = {"export": str(job.final.resolve()), "artifact": source["name"],
               "sha256": source["sha256"], "model": str(job.source.path),
               "command": job.command("triton", ("triton",))}
    added = add_model_version(config.triton_repository, model_name, job.staging / source["file"],
                              class_names=list(job.source.dataset.class_names), lineage=lineage,
                              **options)
    job.add({"name": "triton", "format": "triton", "precision": served,
             "repository": str(Path(config.triton_repository).resolve()),
             "model_name": model_name, "version": added["version"], "path": added["path"],
             "config": added["config"], "versions": added["versions"],
             "file": None, "bytes": source["bytes"], "sha256": source["sha256"],
             "source_artifact": source["name"],
             "converter": {"name": "edgekit.formats.triton (Triton ModelConfig protobuf)",
                           "version": package_version("tritonclient")},
             "options": {**options, "preferred_batch_sizes": list(options["preferred_batch_sizes"]),
                         "platform": PLATFORM},
             "fidelity": source["fidelity"], "status": source["status"],
             "seconds": round(time.time() - started, 2),
             "command": job.command("triton", ("triton",))})


FORMAT = register_format(ExportFormat(
    "triton", "a version in a Triton repository", write,
    OPTIONS, needs=("onnx",), writes_outside=True, validate=validate, preflight=preflight))
