"""A Python-backend staging copy of an ``onnxruntime_onnx`` model repository.

The Triton build inside nvidia-pytriton has only the Python backend. To serve the standard
repository ``edgekit export --to triton`` writes (and NVIDIA's container loads unchanged), each
ONNX model is staged as a Python-backend model whose generated ``model.py`` runs the same
``.onnx`` file with ONNX Runtime. Names, data types, dims, ``max_batch_size``, dynamic batching,
instance groups, version policy, labels and parameters are kept; requests Triton batches together
run as one ONNX Runtime call. The ONNX files are linked, not copied. ``triton_repo/`` is never
written to.

TFLite models are staged the same way, with a ``model.py`` that runs the ``.tflite`` file with
LiteRT (``ai_edge_litert``). The repository convention for them is the one of the Triton backend
that runs .tflite files natively (``armnn_tflite``, Arm64 builds only)::

    <model>/config.pbtxt     backend: "armnn_tflite"  default_model_filename: "model.tflite"
                             inputs / outputs with the names, dims and data types clients use
    <model>/1/model.tflite

A config with any backend whose ``default_model_filename`` ends in ``.tflite`` is taken as
TFLite too. Inputs and outputs are matched to the file's tensors by name (tensor or signature
name), else by position. A config may declare TYPE_FP32 for a quantized (int8 / uint8 / int16)
tensor: the generated model quantizes inputs and dequantizes outputs with the tensor's scale and
zero point; declaring the tensor's own type passes raw values through. Variable tensors (e.g. an
LSTM's state) are reset before every invocation, so requests never share state.

Each staged config carries the parameters ``EDGEKIT_SOURCE_REPOSITORY`` and
``EDGEKIT_STAGED_REPOSITORY`` (absolute paths): ``edgekit deploy --reload URL`` asks the server
for them, checks it serves the repository deployed into, and re-stages the model there before
asking Triton to load it.

Example:
    >>> staged = stage_repository("triton_repo", "/tmp/serve/repo")
    >>> [model.name for model in staged.models]
    ['cnn']
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import ModelError, RepositoryError, first_line
from edgekit.formats.triton import ONNX_PREPROCESSING_KEY, PREPROCESSING_PARAMETER, read_model_config
from edgekit.runtimes import RUNTIMES

CONFIG_NAME = "config.pbtxt"
ONNX_PLATFORMS = ("onnxruntime_onnx",)
ONNX_BACKENDS = ("onnxruntime",)
# Parameters the generated model.py reads; Triton passes them in args["model_config"].
ONNX_FILE_PARAMETER = "EDGEKIT_ONNX_FILE"
THREADS_PARAMETER = "EDGEKIT_ORT_THREADS"
TFLITE_FILE_PARAMETER = "EDGEKIT_TFLITE_FILE"
LITERT_THREADS_PARAMETER = "EDGEKIT_LITERT_THREADS"
TFLITE_BACKENDS = ("armnn_tflite",)
TFLITE_FILENAME = "model.tflite"
# Where a staged model came from and where its staging copy is: what `edgekit deploy --reload`
# reads from a running server to re-stage a model it added a version to.
SOURCE_REPOSITORY_PARAMETER = "EDGEKIT_SOURCE_REPOSITORY"
STAGED_REPOSITORY_PARAMETER = "EDGEKIT_STAGED_REPOSITORY"
# `edgekit export` records the preprocessing in the ONNX file's metadata (and, since it writes the
# parameter itself, in config.pbtxt); staging passes it on for repositories exported before that.
_TEMPLATES = {"onnxruntime_onnx": Path(__file__).with_name("python_model_template.py"),
              "tflite": Path(__file__).with_name("litert_model_template.py")}


@dataclass
class StagedModel:
    """One model of the staged repository.

    Attributes:
        name: the model name clients use.
        source_kind: "onnxruntime_onnx" or "tflite" (wrapped), "python" or "ensemble" (linked
            as they are).
        versions: the numbered version folders staged.
        notes: changes the staging had to make, for the user to see (e.g. a GPU instance group
            run on CPU).
    """

    name: str
    source_kind: str
    versions: list[int]
    notes: list[str] = field(default_factory=list)


@dataclass
class StagedRepository:
    source: Path
    path: Path
    models: list[StagedModel]


def write_model_config(config, path: str | os.PathLike) -> None:
    # lazy: protobuf comes with tritonclient; only Triton repositories need it
    from google.protobuf import text_format

    _write_atomically(Path(path), text_format.MessageToString(config))


def model_folders(repository: str | os.PathLike) -> list[Path]:
    """The model folders of a repository: sub-folders holding a ``config.pbtxt``.

    Raises:
        RepositoryError: if the repository is missing or holds no model.
    """
    repository = Path(repository)
    if not repository.is_dir():
        raise RepositoryError(
            f"model repository {repository} does not exist; expected the folder `edgekit export "
            "--to triton` writes (default triton_repo/); pass its path"
        )
    folders = sorted(p for p in repository.iterdir() if (p / CONFIG_NAME).is_file())
    if not folders:
        raise RepositoryError(
            f"model repository {repository} holds no model (no <model>/{CONFIG_NAME}); "
            "run `edgekit export MODEL --to triton` first"
        )
    return folders


def stage_repository(repository: str | os.PathLike, staging: str | os.PathLike) -> StagedRepository:
    """Write the Python-backend staging copy of ``repository`` into ``staging``.

    Args:
        repository: a Triton model repository of ``onnxruntime_onnx`` models (Python-backend and
            ensemble models are linked unchanged).
        staging: an empty or missing folder to write into.

    Returns:
        The staged repository and what was staged for each model.

    Raises:
        RepositoryError: for a missing repository, an unparsable config, a model with no version,
            an ONNX file whose input or output names differ from its config, or a platform the
            Python backend cannot run (use ``--backend native`` with a full Triton build).
    """
    repository, staging = Path(repository).resolve(), Path(staging)
    staging.mkdir(parents=True, exist_ok=True)
    models = [stage_model(folder, staging / folder.name) for folder in model_folders(repository)]
    return StagedRepository(source=repository, path=staging, models=models)


def restage_model(source_repository: str | os.PathLike, staged_repository: str | os.PathLike,
                  name: str) -> StagedModel:
    """Stage one model again (e.g. after a new version was added) into a served staging copy.

    Every version is linked again and its ``model.py`` rewritten (atomically, so a version being
    served keeps running); versions gone from the source leave the staging copy.

    Raises:
        RepositoryError: as :func:`stage_repository`, or if the model folder does not exist.
    """
    source = Path(source_repository).resolve() / name
    if not (source / CONFIG_NAME).is_file():
        raise RepositoryError(f"{source} holds no {CONFIG_NAME}; expected model {name!r} in repository "
                              f"{source.parent}")
    return stage_model(source, Path(staged_repository) / name)


def stage_model(source: Path, target: Path) -> StagedModel:
    """Stage one model folder; see :func:`stage_repository`."""
    source = Path(source).parent.resolve() / Path(source).name  # keep the folder's own name
    config = read_model_config(source / CONFIG_NAME)
    if config.name and config.name != source.name:
        raise RepositoryError(
            f"{source / CONFIG_NAME} names the model {config.name!r} but its folder is {source.name!r}; "
            "Triton requires them to match; rename one"
        )
    kind = config.platform or config.backend
    versions = sorted(int(p.name) for p in source.iterdir() if p.is_dir() and p.name.isdigit())
    if not versions:
        raise RepositoryError(f"model folder {source} has no numbered version folder (e.g. {source}/1/)")
    if is_tflite_config(config):
        kind, model_file, check = "tflite", config.default_model_filename or TFLITE_FILENAME, _check_tflite
    elif kind in ("python", "ensemble"):
        if target.is_symlink():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        target.symlink_to(source, target_is_directory=True)
        return StagedModel(config.name or source.name, kind, versions)
    elif kind in ONNX_PLATFORMS + ONNX_BACKENDS:
        kind, model_file, check = "onnxruntime_onnx", config.default_model_filename or "model.onnx", _check_names
    else:
        raise RepositoryError(
            f"model {source.name!r} has platform/backend {kind or 'unset'!r}; the bundled Triton runs "
            f"ONNX models ({', '.join(ONNX_PLATFORMS)}) and TFLite models (backend "
            f"{', '.join(TFLITE_BACKENDS)}, or default_model_filename *.tflite) through its Python "
            "backend only; serve this repository with --backend native --tritonserver PATH (a full "
            "Triton build)"
        )
    staged = StagedModel(source.name, kind, versions)
    if target.is_symlink():  # it was a python model before
        target.unlink()
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():  # labels files and anything else the config may refer to
        if entry.is_file() and entry.name != CONFIG_NAME:
            _link(entry, target / entry.name)
    for stale in target.iterdir():  # versions removed from the source since the last staging
        if stale.is_dir() and not stale.is_symlink() and stale.name.isdigit() and int(stale.name) not in versions:
            shutil.rmtree(stale)
    for version in versions:
        version_source, version_target = source / str(version), target / str(version)
        if not (version_source / model_file).is_file():
            raise RepositoryError(f"{version_source} has no {model_file}; expected the version's "
                                  f"{'TFLite' if kind == 'tflite' else 'ONNX'} file there")
        metadata = check(config, version_source / model_file)
        version_target.mkdir(parents=True, exist_ok=True)
        for entry in version_source.iterdir():
            _link(entry, version_target / entry.name)
        _write_atomically(version_target / "model.py", _model_source(kind))
    staged_config = _python_backend_config(config, source.name, kind, model_file, staged.notes)
    staged_config.parameters[SOURCE_REPOSITORY_PARAMETER].string_value = str(source.parent)
    staged_config.parameters[STAGED_REPOSITORY_PARAMETER].string_value = str(target.parent.resolve())
    preprocessing = metadata.get(ONNX_PREPROCESSING_KEY)  # of the newest version
    if preprocessing and PREPROCESSING_PARAMETER not in staged_config.parameters:
        staged_config.parameters[PREPROCESSING_PARAMETER].string_value = preprocessing
    write_model_config(staged_config, target / CONFIG_NAME)
    return staged


def is_tflite_config(config) -> bool:
    """A model config for a .tflite file (see the module docstring for the convention)."""
    return config.backend in TFLITE_BACKENDS or config.default_model_filename.lower().endswith(".tflite")


def _python_backend_config(config, name: str, kind: str, model_file: str, notes: list[str]):
    # lazy: tritonclient is needed only for Triton
    from tritonclient.grpc import model_config_pb2

    staged = model_config_pb2.ModelConfig()
    staged.CopyFrom(config)
    staged.name = name
    staged.platform = ""
    staged.backend = "python"
    staged.runtime = ""
    staged.default_model_filename = ""
    staged.ClearField("optimization")  # accelerators of the native backends mean nothing to the Python backend
    for group in staged.instance_group:
        if group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU:
            group.kind = model_config_pb2.ModelInstanceGroup.KIND_CPU
            group.ClearField("gpus")
            notes.append(f"instance group {group.name or 'unnamed'} (KIND_GPU) runs on CPU in the Python backend")
    file_parameter, threads_parameter = {"tflite": (TFLITE_FILE_PARAMETER, LITERT_THREADS_PARAMETER)}.get(
        kind, (ONNX_FILE_PARAMETER, THREADS_PARAMETER))
    staged.parameters[file_parameter].string_value = model_file
    if threads_parameter not in staged.parameters:
        staged.parameters[threads_parameter].string_value = "1"
    return staged


def _check_names(config, onnx_path: Path) -> dict:
    """Check the config's tensor names are the graph's (model.py feeds by name); return its metadata."""
    import onnx  # lazy: a heavy library

    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError and others for a corrupt file
        raise RepositoryError(f"{onnx_path} is not a readable ONNX model ({error}); re-export it") from error
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    graph = proto.graph
    initializers = {tensor.name for tensor in graph.initializer}
    graph_inputs = {value.name for value in graph.input} - initializers
    graph_outputs = {value.name for value in graph.output}
    if not config.input or not config.output:
        raise RepositoryError(
            f"{onnx_path.parent.parent / CONFIG_NAME} lists no {'input' if not config.input else 'output'}; "
            "the Python backend cannot complete a config from the ONNX file; re-export the repository"
        )
    for kind, declared, actual in (("input", config.input, graph_inputs), ("output", config.output, graph_outputs)):
        missing = sorted({tensor.name for tensor in declared} - actual)
        if missing:
            raise RepositoryError(
                f"{onnx_path} has no {kind} named {', '.join(map(repr, missing))} (its {kind}s: "
                f"{', '.join(sorted(actual))}); the config and the ONNX file disagree; re-export the repository"
            )
    return metadata


def _check_tflite(config, tflite_path: Path) -> dict:
    """Check LiteRT loads the file and it has as many inputs and outputs as the config lists."""
    try:
        with RUNTIMES.get("litert").load(tflite_path) as runtime:
            described = runtime.describe()
    except ModelError as error:
        reason = first_line(error.__cause__ or error)  # LiteRT's own words, when it refused
        raise RepositoryError(f"{tflite_path} is not a TFLite model LiteRT can load ({reason}); "
                              "convert it again") from error
    for kind, declared in (("input", config.input), ("output", config.output)):
        actual = described[f"{kind}s"]
        if len(declared) != len(actual):
            raise RepositoryError(
                f"{tflite_path.parent.parent / CONFIG_NAME} lists {len(declared)} {kind}(s) but "
                f"{tflite_path.name} has {len(actual)} ({', '.join(d['name'] for d in actual)}); "
                f"list one {kind} per tensor of the file"
            )
    return {}


def _write_atomically(path: Path, text: str) -> None:
    """Write beside ``path`` and rename, so a server reading it never sees half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _link(source: Path, target: Path) -> None:
    if target.is_symlink() or target.exists():
        target.unlink()
    target.symlink_to(source.resolve())


def _model_source(kind: str = "onnxruntime_onnx") -> str:
    """The generated model.py: the kind's template, told where this environment's packages are."""
    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    return _TEMPLATES[kind].read_text().replace("SITE_PACKAGES = []", f"SITE_PACKAGES = {paths!r}", 1)
