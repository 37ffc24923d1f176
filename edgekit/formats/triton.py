"""A Triton Inference Server model repository for the ``onnxruntime_onnx`` platform.

Layout (the one NVIDIA's Triton container loads unchanged)::

    triton_repo/
      <model>/
        config.pbtxt          name, platform, max_batch_size, inputs / outputs, batching, instances,
                              parameters { key: "edgekit_preprocessing" } (JSON: scale, mean, std)
        labels.txt            one class name a line, for Triton's classification extension
        1/model.onnx          version 1 (and 1/edgekit.json: where it came from)
        2/model.onnx          a later export adds a version and keeps the older ones

The config is built as Triton's own ``ModelConfig`` protobuf (it ships with tritonclient), with
input / output names, data types and dims read from the ONNX graph, written in protobuf text
format and parsed back before it is kept.

Example:
    >>> from edgekit.formats.triton import add_model_version
    >>> added = add_model_version("triton_repo", "cnn-digits", "export/model_fp32.onnx",
    ...                           class_names=["0", "1", ...])
    >>> added["version"]
    1
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from edgekit.errors import ModelError, OptionError, RepositoryError
from edgekit.formats.labels import labels_text
from edgekit.outputs import OutputLock

PLATFORM = "onnxruntime_onnx"
MODEL_FILENAME = "model.onnx"
CONFIG_FILENAME = "config.pbtxt"
LABELS_FILENAME = "labels.txt"
LINEAGE_FILENAME = "edgekit.json"
# The ONNX metadata key export records the preprocessing under, and the config parameter it is
# passed on as: Triton's metadata API has no field for normalization, so a client far from the
# files (``edgekit infer --preprocess auto``) reads it from the served config, on any Triton build.
ONNX_PREPROCESSING_KEY = "edgekit.preprocessing"
PREPROCESSING_PARAMETER = "edgekit_preprocessing"

# ONNX TensorProto element type -> Triton data type.
TRITON_DTYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16",
                 5: "TYPE_INT16", 6: "TYPE_INT32", 7: "TYPE_INT64", 8: "TYPE_STRING",
                 9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64", 12: "TYPE_UINT32",
                 13: "TYPE_UINT64", 16: "TYPE_BF16"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def model_config_pb2():
    """Triton's ``model_config_pb2`` module, as tritonclient ships it."""
    try:
        from tritonclient.grpc import model_config_pb2 as module  # lazy: tritonclient is optional
    except ImportError as error:
        raise ModelError(
            f"Triton's ModelConfig protobuf is not importable ({error}); expected tritonclient "
            "with its grpc extra. Install it: pip install 'tritonclient[grpc]'"
        ) from error
    return module


def parse_version_policy(text: str) -> dict:
    """``"latest:2"`` / ``"all"`` / ``"specific:1,3"`` -> the ``version_policy`` message as a dict.

    Raises:
        OptionError: for any other text.
    """
    kind, _, argument = str(text).partition(":")
    try:
        if kind == "all" and not argument:
            return {"all": {}}
        if kind == "latest":
            count = int(argument or 1)
            if count >= 1:
                return {"latest": {"num_versions": count}}
        if kind == "specific":
            versions = [int(value) for value in argument.split(",") if value.strip()]
            if versions and min(versions) >= 1:
                return {"specific": {"versions": versions}}
    except ValueError:
        pass
    raise OptionError(
        f"unknown version policy {text!r}; expected latest:N (serve the N newest versions), all, "
        "or specific:V1,V2. Example: --version-policy latest:1"
    )


def check_model_name(name: str) -> str:
    """``name``, or OptionError when it cannot be a repository folder name."""
    if not _NAME.match(name or ""):
        raise OptionError(
            f"Triton model name {name!r} is not usable as a folder name; expected letters, digits, "
            "'_', '.' and '-', starting with a letter or digit. Pass a plain name such as "
            "cnn-digits-int8"
        )
    return name


def build_model_config(model_name: str, onnx_proto, max_batch_size: int = 32,
                       preferred_batch_sizes: tuple = (8, 16), max_queue_delay_us: int = 100,
                       instance_count: int = 1, instance_kind: str = "cpu",
                       version_policy: str = "latest:1", labels: bool = True):
    """A ``ModelConfig`` for ``onnx_proto``, names, data types and dims read from its graph.

    A graph whose first axis is dynamic gets Triton batching (``max_batch_size`` > 0, dims
    without the batch axis, dynamic batching with the preferred sizes); a fixed-batch graph
    gets ``max_batch_size: 0`` and its full dims. The preprocessing export recorded in the ONNX
    metadata becomes the ``edgekit_preprocessing`` parameter (JSON with scale, mean and std).
    """
    from google.protobuf import json_format  # lazy: protobuf comes with tritonclient

    pb = model_config_pb2()
    graph = onnx_proto.graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    batched = max_batch_size > 0 and all(_dynamic_first_axis(value) for value in
                                         (*inputs, *graph.output))
    config = pb.ModelConfig(name=model_name, platform=PLATFORM,
                            max_batch_size=max_batch_size if batched else 0)
    json_format.ParseDict(parse_version_policy(version_policy), config.version_policy)
    for value in inputs:
        config.input.append(pb.ModelInput(name=value.name, data_type=_triton_dtype(value),
                                          dims=_dims(value, batched)))
    for index, value in enumerate(graph.output):
        output = pb.ModelOutput(name=value.name, data_type=_triton_dtype(value),
                                dims=_dims(value, batched))
        if labels and index == 0:
            output.label_filename = LABELS_FILENAME
        config.output.append(output)
    if batched:
        config.dynamic_batching.preferred_batch_size.extend(
            [size for size in preferred_batch_sizes if size <= max_batch_size])
        config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    kind = pb.ModelInstanceGroup.KIND_GPU if instance_kind == "gpu" else pb.ModelInstanceGroup.KIND_CPU
    config.instance_group.append(pb.ModelInstanceGroup(count=instance_count, kind=kind))
    preprocessing = {entry.key: entry.value for entry in onnx_proto.metadata_props}.get(ONNX_PREPROCESSING_KEY)
    if preprocessing:
        config.parameters[PREPROCESSING_PARAMETER].string_value = preprocessing
    return config


def config_text(config) -> str:
    """The ``config.pbtxt`` text of a ``ModelConfig``."""
    from google.protobuf import text_format  # lazy: protobuf comes with tritonclient

    return text_format.MessageToString(config)


def read_model_config(path: str | os.PathLike):
    """Parse a ``config.pbtxt`` (or a model folder's) into Triton's ``ModelConfig``.

    Raises:
        RepositoryError: if the file is missing, unreadable or not a valid ModelConfig text proto.
    """
    from google.protobuf import text_format  # lazy: protobuf comes with tritonclient

    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILENAME
    if not path.is_file():
        raise RepositoryError(f"{path} does not exist; expected a Triton model config in every "
                              "model folder (edgekit export --to triton writes one)")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise RepositoryError(f"cannot read Triton config {str(path)!r}: {error}; expected a "
                              "config.pbtxt in protobuf text format") from error
    try:
        return text_format.Parse(text, model_config_pb2().ModelConfig())
    except text_format.ParseError as error:
        raise RepositoryError(f"{path} is not a valid Triton ModelConfig: its text does not parse as "
                              f"ModelConfig ({error}); write it again with edgekit export --to "
                              "triton") from error



def existing_versions(model_folder: str | os.PathLike) -> list[int]:
    """The numeric version folders of a repository model, sorted."""
    folder = Path(model_folder)
    if not folder.is_dir():
        return []
    return sorted(int(entry.name) for entry in folder.iterdir()
                  if entry.is_dir() and entry.name.isdigit())


def add_model_version(repository: str | os.PathLike, model_name: str,
                      onnx_path: str | os.PathLike, class_names: list[str] | None = None,
                      lineage: dict | None = None, **config_options) -> dict:
    """Add ``onnx_path`` to the repository as the model's next version; keep older versions.

    The version folder is written under a hidden name and renamed into place, and
    ``config.pbtxt`` / ``labels.txt`` are replaced atomically, so a server polling the
    repository never sees half a version.

    Args:
        repository: the repository folder (created if missing).
        model_name: the model's folder and ``name`` in its config.
        onnx_path: the ONNX file to serve.
        class_names: written to ``labels.txt`` (Triton's classification extension) when given.
        lineage: stored as ``<version>/edgekit.json`` (what ``edgekit inspect`` follows).
        **config_options: :func:`build_model_config`'s options.

    Returns:
        ``{"repository", "model_name", "version", "path", "config", "versions"}``.
    """
    import onnx  # lazy: onnx takes about 0.15 s to import and `import edgekit` must stay quick

    check_model_name(model_name)
    proto = onnx.load(str(onnx_path), load_external_data=False)
    config = build_model_config(model_name, proto, labels=bool(class_names), **config_options)
    text = config_text(config)
    model_folder = Path(repository) / model_name
    model_folder.mkdir(parents=True, exist_ok=True)
    with OutputLock(model_folder):  # one writer per served model (export, deploy)
        _remove_dead_partials(model_folder)
        staging = model_folder / f".version-{os.getpid()}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            shutil.copyfile(onnx_path, staging / MODEL_FILENAME)
            if lineage is not None:
                (staging / LINEAGE_FILENAME).write_text(json.dumps(lineage, indent=2) + "\n")
            version = _claim_version(model_folder, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already when the claim succeeded
        if class_names:
            _write_atomically(model_folder / LABELS_FILENAME, labels_text(class_names))
        _write_atomically(model_folder / CONFIG_FILENAME, text)
    parsed = read_model_config(model_folder / CONFIG_FILENAME)
    if parsed != config:
        raise ModelError(f"{model_folder / CONFIG_FILENAME} did not read back as written")
    return {"repository": str(repository), "model_name": model_name, "version": version,
            "path": str(model_folder / str(version) / MODEL_FILENAME),
            "config": str(model_folder / CONFIG_FILENAME),
            "versions": existing_versions(model_folder)}


def _claim_version(model_folder: Path, staging: Path) -> int:
    """Rename ``staging`` to the next free version number (another export may race us)."""
    for _ in range(100):
        version = max(existing_versions(model_folder), default=0) + 1
        target = model_folder / str(version)
        try:
            target.mkdir()  # claims the number; an empty folder is then replaced by rename
        except FileExistsError:
            continue
        os.replace(staging, target)
        return version
    raise ModelError(f"could not claim a new version folder in {model_folder}")


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.parent / f".{path.name}.tmp"
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _remove_dead_partials(model_folder: Path) -> None:
    """A crashed export's ``.version-PID.partial`` is removed, never taken for a version."""
    for leftover in model_folder.glob(".version-*.partial"):
        try:
            owner = int(leftover.name.split("-", 1)[1].split(".", 1)[0])
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(leftover, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def _dynamic_first_axis(value) -> bool:
    dims = value.type.tensor_type.shape.dim
    return bool(dims) and not dims[0].HasField("dim_value")


def _dims(value, batched: bool) -> list[int]:
    dims = [dim.dim_value if dim.HasField("dim_value") else -1
            for dim in value.type.tensor_type.shape.dim]
    return dims[1:] if batched else dims


def _triton_dtype(value) -> int:
    pb = model_config_pb2()
    elem_type = value.type.tensor_type.elem_type
    if elem_type not in TRITON_DTYPES:
        raise ModelError(f"ONNX tensor {value.name!r} has element type {elem_type}, which Triton "
                         f"has no data type for; expected one of {sorted(TRITON_DTYPES)}")
    return pb.DataType.Value(TRITON_DTYPES[elem_type])


# Dynamic batching on vs off: the same versions served under another name, unbatched.
UNBATCHED_SUFFIX = "-nobatch"


def unbatched_name(model: str) -> str:
    """The served name of ``model`` without dynamic batching: ``cnn`` -> ``cnn-nobatch``."""
    return f"{model}{UNBATCHED_SUFFIX}"


def add_unbatched_variant(repository: str | os.PathLike, model: str) -> Path:
    """Add ``<model>-nobatch`` to a repository: ``model``'s versions, without dynamic batching.

    The copy keeps everything else of the config (``max_batch_size``, instances, inputs and
    outputs, labels, parameters), so one server serves both and ``edgekit bench
    --compare-batching`` measures the batcher alone. Version files are hard-linked when the
    file system allows it. An existing variant is replaced.

    Args:
        repository: a Triton model repository (``edgekit export --to triton`` writes one).
        model: the model folder to copy; its config must have ``dynamic_batching``.

    Returns:
        The new model folder.

    Raises:
        ModelError: when the model is missing or has no dynamic batching to turn off.

    Example:
        >>> add_unbatched_variant("triton_repo", "cnn-fashion_mnist")
        PosixPath('triton_repo/cnn-fashion_mnist-nobatch')
    """
    source = Path(repository) / model
    if not (source / CONFIG_FILENAME).is_file():
        raise ModelError(f"{source} holds no {CONFIG_FILENAME}; expected model {model!r} in "
                         f"repository {repository} (edgekit export MODEL --to triton)")
    config = read_model_config(source / CONFIG_FILENAME)
    if not config.HasField("dynamic_batching"):
        raise ModelError(f"model {model!r} has no dynamic_batching in its config; nothing to "
                         "compare against (export it with a dynamic batch dimension)")
    config.ClearField("dynamic_batching")
    config.name = unbatched_name(model)
    target = source.with_name(config.name)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, copy_function=_link_or_copy,
                    ignore=shutil.ignore_patterns(CONFIG_FILENAME, ".*"))
    (target / CONFIG_FILENAME).write_text(config_text(config))
    return target


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
