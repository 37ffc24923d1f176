"""``edgekit inspect``: what an artifact is, what it takes and returns, and where it came from.

Reads a .tflite (through LiteRT), an .onnx (through onnx and ONNX Runtime), a Triton model
folder or its ``config.pbtxt``, or a mobile bundle folder / .zip. The lineage is followed
through the manifests (:class:`edgekit.models.folder.ModelFolder`): the export manifest that
lists the file (by sha256, or the Triton version's ``edgekit.json``), then the model folder it
came from, its parent, and so on up to the training run.

Example:
    >>> from edgekit.inspect import inspect_artifact, format_inspection
    >>> print(format_inspection(inspect_artifact("models/cnn-digits/export/model_int8.onnx")))
"""

from __future__ import annotations

import json
import os
import zipfile
from collections import Counter
from pathlib import Path

from edgekit.errors import ModelError
from edgekit.formats.onnx import check_onnx_file
from edgekit.formats.triton import CONFIG_FILENAME, LINEAGE_FILENAME, existing_versions, model_config_pb2, \
    read_model_config
from edgekit.models.fileinfo import read_model_info, unsafe_code_message
from edgekit.models.folder import ModelFolder
from edgekit.runtimes.litert import LiteRTModel
from edgekit.runtimes.onnxruntime import describe_onnx_model

SUPPORTED = ("a .tflite or .onnx file, a Triton model folder or config.pbtxt, a mobile bundle, or "
             "a Keras model (.keras, .h5, SavedModel folder)")
_LINEAGE_DEPTH = 8


def inspect_artifact(path: str | os.PathLike) -> dict:
    """Describe an artifact: format, size, inputs / outputs, op counts and lineage.

    Raises:
        ModelError: for a missing path, an unknown kind of file, or a corrupt or truncated one.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"artifact {str(path)!r} does not exist; expected {SUPPORTED}")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        described = _tflite(path)
    elif suffix == ".onnx":
        described = _onnx(path)
    elif path.name == "config.pbtxt" or (path.is_dir() and (path / "config.pbtxt").is_file()):
        described = _triton(path if path.is_dir() else path.parent)
    elif suffix == ".zip" or (path.is_dir() and (path / "metadata.json").is_file()):
        described = _mobile(path)
    elif suffix in (".keras", ".h5", ".hdf5") or (path.is_dir() and (path / "saved_model.pb").is_file()):
        described = _keras(path)
    else:
        raise ModelError(f"cannot inspect {str(path)!r}: unknown kind of artifact; expected "
                         f"{SUPPORTED}")
    described["path"] = str(path)
    described["lineage"] = lineage(path)
    return described


def lineage(path: str | os.PathLike) -> list[dict]:
    """The chain of manifests that made ``path``: export, then each parent model folder."""
    start = _lineage_start(Path(path))
    if start is None:
        return []
    first, entry = start
    chain = []
    for folder in first.chain(strict=False)[:_LINEAGE_DEPTH]:  # a broken parent ends the lineage
        manifest = folder.manifest
        step = {"stage": folder.stage, "name": manifest.get("name"), "folder": str(folder.path),
                "created": manifest.get("created"), "status": manifest.get("status"),
                "command": manifest.get("command")}
        if entry is not None:
            step["artifact"] = {key: entry.get(key) for key in
                                ("name", "precision", "converter", "status", "command")}
            step["artifact"]["fidelity"] = _short_fidelity(entry.get("fidelity"))
            entry = None
        elif manifest.get("evaluation", {}).get("test"):
            step["test_accuracy"] = manifest["evaluation"]["test"].get("accuracy")
        chain.append(step)
    return chain


def _lineage_start(path: Path) -> tuple[ModelFolder, dict | None] | None:
    """(folder whose manifest records the artifact, its entry), by Triton lineage or sha256."""
    if path.is_dir():
        path = path / CONFIG_FILENAME if (path / CONFIG_FILENAME).is_file() else path
    record = path.parent / LINEAGE_FILENAME
    if path.name == CONFIG_FILENAME:
        versions = existing_versions(path.parent)
        record = path.parent / str(versions[-1]) / LINEAGE_FILENAME if versions else record
    if record.is_file():
        try:
            data = json.loads(record.read_text())
            export_folder = ModelFolder.open(data["export"])
            return export_folder, (export_folder.manifest.get("artifacts") or {}).get(data.get("artifact"))
        except (ValueError, KeyError, TypeError, ModelError, OSError):
            pass  # a lineage record from elsewhere: look for the file's manifest instead
    found = ModelFolder.recording(path)
    if found is None:
        return None
    folder, artifact = found  # a model folder's own file: its test accuracy, not an export's entry
    return folder, artifact.entry if artifact is not None and folder.is_export else None


def _short_fidelity(fidelity: dict | None):
    if not fidelity:
        return None
    return {key: fidelity.get(key) for key in
            ("samples", "top1_agreement", "max_abs_diff", "mean_abs_diff", "passed")}


def _tflite(path: Path) -> dict:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType  # lazy: LiteRT is a heavy import

    described = LiteRTModel.load(path).describe()  # a corrupt file fails here, cleanly
    # Without the default XNNPACK delegate the op list is the file's own, not "DELEGATE 1".
    interpreter = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ops = Counter(op["op_name"] for op in interpreter._get_ops_details())  # noqa: SLF001
    dtypes = Counter(tensor["dtype"].__name__ for tensor in interpreter.get_tensor_details())
    return {"format": "tflite", "bytes": path.stat().st_size,
            "signatures": interpreter.get_signature_list(),
            "inputs": [described["input"]], "outputs": [described["output"]],
            "ops": dict(sorted(ops.items())), "tensor_dtypes": dict(sorted(dtypes.items()))}


def _onnx(path: Path) -> dict:
    import onnx  # lazy: onnx is a heavy import

    check_onnx_file(path)
    described = describe_onnx_model(onnx.load(str(path)), path)
    quantization = described.pop("quantization")
    for tensor in (*described["inputs"], *described["outputs"]):
        tensor["quantization"] = quantization.get(tensor["name"])
    return described


def _triton(folder: Path) -> dict:
    from google.protobuf import json_format  # lazy: protobuf comes with tritonclient (the [triton] extra)

    config = read_model_config(folder / "config.pbtxt")
    as_dict = json_format.MessageToDict(config, preserving_proto_field_name=True)
    versions = existing_versions(folder)
    if not versions:
        raise ModelError(f"Triton model folder {str(folder)!r} has no version folder (1/, 2/...); "
                         "expected <version>/model.onnx beside config.pbtxt; add a version with "
                         "edgekit export --to triton or edgekit deploy triton")
    missing = [version for version in versions
               if not any((folder / str(version)).glob("model.*"))]
    if missing:
        raise ModelError(f"Triton model folder {str(folder)!r}: version {missing[0]} holds no model "
                         f"file (expected {missing[0]}/model.onnx); Triton cannot load it. Deploy "
                         "that version again, or remove its folder")
    latest = folder / str(versions[-1]) / "model.onnx" if versions else None
    pb_tensors = {"inputs": config.input, "outputs": config.output}
    tensors = {key: [{"name": tensor.name, "data_type": pb_data_type(tensor.data_type),
                      "dims": list(tensor.dims),
                      "label_filename": getattr(tensor, "label_filename", "") or None}
                     for tensor in value] for key, value in pb_tensors.items()}
    described = {"format": "triton", "platform": config.platform or config.backend,
                 "model_name": config.name, "versions": versions,
                 "max_batch_size": config.max_batch_size,
                 "inputs": tensors["inputs"], "outputs": tensors["outputs"],
                 "dynamic_batching": as_dict.get("dynamic_batching"),
                 "instance_group": as_dict.get("instance_group", []),
                 "version_policy": as_dict.get("version_policy")}
    if latest is not None and latest.is_file():
        onnx_described = _onnx(latest)
        described["bytes"] = onnx_described["bytes"]
        described["ops"] = onnx_described["ops"]
        described["latest_model"] = str(latest)
    return described


def _keras(path: Path) -> dict:
    """A Keras model file, read without running it: which Keras wrote it, its layers, its risks."""
    info = read_model_info(path)
    size = (sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
            if path.is_dir() else path.stat().st_size)
    writer = {"tf-keras": "tf-keras (Keras 2)", "keras3": "Keras 3",
              "tensorflow": "TensorFlow SavedModel with no Keras model inside"}[info.writer]
    version = f" {info.keras_version}" if info.keras_version else ""
    return {"format": f"{info.container} written by {writer}{version}", "bytes": size,
            "writer": info.writer, "keras_version": info.keras_version,
            "model_class": info.model_class,
            "layers": len(info.layer_classes) if info.writer != "tensorflow" else None,
            "custom_classes": info.custom_classes,
            "unsafe": unsafe_code_message(info),
            "input_preprocessing_layers": [entry.get("class_name")
                                           for entry in info.leading_preprocessing],
            "inputs": [{"name": "input", "dtype": "float32",
                        "shape": [None, *(info.input_shape or [])]}] if info.input_shape else [],
            "outputs": []}


def pb_data_type(value: int) -> str:
    return model_config_pb2().DataType.Name(value)


def _mobile(path: Path) -> dict:
    if path.is_dir():
        metadata = json.loads((path / "metadata.json").read_text())
        size = sum(item.stat().st_size for item in path.iterdir() if item.is_file())
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.endswith("metadata.json"))
                metadata = json.loads(archive.read(name))
        except (zipfile.BadZipFile, StopIteration, ValueError, OSError) as error:
            raise ModelError(f"cannot read mobile bundle {str(path)!r}: "
                             f"{type(error).__name__}; expected a .zip written by edgekit "
                             "export --to mobile") from error
        size = path.stat().st_size
    return {"format": "mobile bundle", "bytes": size, "precision": metadata["model"]["precision"],
            "inputs": [metadata["input"]], "outputs": [metadata["output"]],
            "normalization": metadata["normalization"],
            "class_names": metadata["labels"]["class_names"]}


def format_inspection(described: dict) -> str:
    """The text ``edgekit inspect`` prints."""
    lines = [f"{described['path']}",
             f"  format:  {described['format']}" + (f" (opset {described['opset']}, "
                                                    f"{described['producer']})"
                                                    if described.get("opset") else ""),
             f"  size:    {described.get('bytes', 0):,} bytes"]
    for key in ("platform", "model_name", "versions", "max_batch_size", "precision",
                "model_class", "layers", "custom_classes", "input_preprocessing_layers", "unsafe"):
        if described.get(key) is not None and described.get(key) != []:
            lines.append(f"  {key.replace('_', ' ')}: {described[key]}")
    for title, tensors in (("inputs", described.get("inputs", [])),
                           ("outputs", described.get("outputs", []))):
        lines.append(f"  {title}:")
        for tensor in tensors:
            lines.append(f"    {_tensor_line(tensor)}")
    if described.get("ops"):
        total = sum(described["ops"].values())
        ops = ", ".join(f"{op} {count}" for op, count in described["ops"].items())
        lines.append(f"  ops ({total}): {ops}")
    if described.get("signatures"):
        lines.append(f"  signatures: {json.dumps(described['signatures'])}")
    if described.get("normalization"):
        norm = described["normalization"]
        lines.append(f"  normalization: (x * {norm['scale']} - {norm['mean']}) / {norm['std']}")
    lines.append("  lineage:" if described["lineage"] else "  lineage: no edgekit manifest found")
    for step in described["lineage"]:
        line = f"    {step['stage']}: {step['folder']}"
        artifact = step.get("artifact")
        if artifact:
            fidelity = artifact.get("fidelity")
            line += f" (artifact {artifact['name']}, {artifact.get('status')}"
            if fidelity:
                line += (f", top-1 agreement {fidelity['top1_agreement'] * 100:.2f}%, "
                         f"max abs diff {fidelity['max_abs_diff']:.2e}")
            line += ")"
        elif step.get("test_accuracy") is not None:
            line += f" (test accuracy {step['test_accuracy'] * 100:.2f}%)"
        lines.append(line)
        if step.get("command"):
            lines.append(f"      {step['command']}")
    return "\n".join(lines)


def _tensor_line(tensor: dict) -> str:
    name = tensor.get("name")
    dtype = tensor.get("dtype") or tensor.get("data_type")
    shape = tensor.get("shape") or tensor.get("dims")
    text = f"{name}: {dtype} {shape}"
    quantization = tensor.get("quantization")
    if quantization:
        text += (f"  quantization: scale {quantization.get('scale')}, zero point "
                 f"{quantization.get('zero_point')}")
    if tensor.get("label_filename"):
        text += f"  labels: {tensor['label_filename']}"
    return text
