"""What a user's model file is, read without importing TensorFlow or Keras.

Loading a Keras file can run Python code stored in it (a ``Lambda`` layer's marshalled bytecode),
so edgekit looks at the file first: which Keras wrote it, which layers it holds, whether any of
them carries code, and whether the model scales its own input. Only the JSON architecture is read
(``config.json`` in a ``.keras`` zip, the ``model_config`` attribute of an ``.h5`` file, the node
metadata in a SavedModel's ``keras_metadata.pb``); nothing in the file is executed or unpickled.

Example:
    >>> info = read_model_info("model.h5")
    >>> info.writer, info.unsafe_layers
    ('tf-keras', [('lambda_1', 'Lambda')])
"""

from __future__ import annotations

import binascii
import json
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from edgekit.errors import ModelError

EXPECTED = "a .keras or .h5/.hdf5 model file, or a SavedModel folder"
PREPROCESSING_CLASSES = frozenset({"Rescaling", "Normalization"})
# Keys under which a layer's config holds further layers (models, wrappers, RNN cells).
_NESTED_KEYS = ("layers", "layer", "forward_layer", "backward_layer", "cell", "cells")
# Keras 3 built-ins that Keras' own safe mode refuses too: they load more than weights.
_UNSAFE_CLASSES = {"TorchModuleWrapper": "pickled torch module",
                   "TFSMLayer": "loads another SavedModel"}
_BASE64 = re.compile(r"[A-Za-z0-9+/=\n]{24,}")
_READ_ERRORS = (OSError, EOFError, ValueError, RuntimeError, KeyError, RecursionError,
                zipfile.BadZipFile, zlib.error)

# Layer and model class names of tf_keras.layers (and .experimental), tf-keras' op layers and
# keras.layers 3.15: an .h5 config names a class only. A unit test checks it covers both.
BUILTIN_LAYER_CLASSES = frozenset("""
AbstractRNNCell Activation ActivityRegularization AdaptiveAveragePooling1D AdaptiveAveragePooling2D
AdaptiveAveragePooling3D AdaptiveMaxPooling1D AdaptiveMaxPooling2D AdaptiveMaxPooling3D Add
AdditiveAttention AlphaDropout Attention AugMix AutoContrast Average AveragePooling1D
AveragePooling2D AveragePooling3D AvgPool1D AvgPool2D AvgPool3D BatchNormalization Bidirectional
CategoryEncoding CenterCrop ClassMethod Concatenate ContrastLimitedAdaptiveHistogramEqualization
Conv1D Conv1DTranspose Conv2D Conv2DTranspose Conv3D Conv3DTranspose ConvLSTM1D ConvLSTM2D
ConvLSTM3D Convolution1D Convolution1DTranspose Convolution2D Convolution2DTranspose Convolution3D
Convolution3DTranspose Cropping1D Cropping2D Cropping3D CuDNNGRU CuDNNLSTM CutMix Dense
DenseFeatures DepthwiseConv1D DepthwiseConv2D Discretization Dot Dropout DynamicEmbedding
DynamicLookup ELU EinsumDense Embedding Equalization Flatten FlaxLayer Functional GRU GRUCell
GaussianDropout GaussianNoise GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D
GlobalAvgPool1D GlobalAvgPool2D GlobalAvgPool3D GlobalMaxPool1D GlobalMaxPool2D GlobalMaxPool3D
GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D GroupNormalization GroupQueryAttention
HashedCrossing Hashing Identity InputLayer InstanceMethod InstanceProperty IntegerLookup JaxLayer
LSTM LSTMCell Lambda Layer LayerNormalization LeakyReLU LocallyConnected1D LocallyConnected2D
Masking MaxNumBoundingBoxes MaxPool1D MaxPool2D MaxPool3D MaxPooling1D MaxPooling2D MaxPooling3D
Maximum MelSpectrogram Minimum MixUp Model MultiHeadAttention Multiply Normalization PReLU Permute
Pipeline PreprocessingLayer RMSNormalization RNN RandAugment RandomBrightness
RandomColorDegeneration RandomColorJitter RandomContrast RandomCrop RandomElasticTransform
RandomErasing RandomFlip RandomFourierFeatures RandomGaussianBlur RandomGrayscale RandomHeight
RandomHue RandomInvert RandomPerspective RandomPosterization RandomRotation RandomSaturation
RandomSharpness RandomShear RandomTranslation RandomWidth RandomZoom ReLU RepeatVector Rescaling
Reshape Resizing ReversibleEmbedding STFTSpectrogram SeparableConv1D SeparableConv2D
SeparableConvolution1D SeparableConvolution2D Sequential SimpleRNN SimpleRNNCell SlicingOpLambda
Softmax Solarization SpatialDropout1D SpatialDropout2D SpatialDropout3D SpectralNormalization
StackedRNNCells StringLookup Subtract SyncBatchNormalization TFOpLambda TFSMLayer TextVectorization
ThresholdedReLU TimeDistributed TorchModuleWrapper UnitNormalization UpSampling1D UpSampling2D
UpSampling3D Wrapper ZeroPadding1D ZeroPadding2D ZeroPadding3D
""".split())


@dataclass
class ModelFileInfo:
    """What a model file holds; see :func:`read_model_info`."""

    path: str
    container: str  # "keras" (.keras zip), "h5" or "savedmodel"
    writer: str  # "tf-keras" (Keras 2), "keras3" or "tensorflow" (a SavedModel without Keras)
    keras_version: str | None = None
    config: dict | None = None
    model_class: str | None = None
    layer_classes: list[str] = field(default_factory=list)
    unsafe_layers: list[tuple[str, str]] = field(default_factory=list)
    custom_classes: list[str] = field(default_factory=list)
    leading_preprocessing: list[dict] = field(default_factory=list)
    input_shape: list | None = None


def read_model_info(path: str | os.PathLike) -> ModelFileInfo:
    """Describe a ``.keras``/``.h5``/``.hdf5`` file or a SavedModel folder without loading it.

    Args:
        path: the model file or SavedModel folder.

    Returns:
        A :class:`ModelFileInfo`. ``leading_preprocessing`` lists the Rescaling/Normalization
        layers fed by the model input; Random* augmentation layers (identities at inference)
        and nested models made only of such layers are looked through.

    Raises:
        ModelError: for a missing path, an unknown extension, a corrupt or truncated file, an
            ``.h5`` file holding weights only, or a folder that is no SavedModel.
    """
    model_path, shown = Path(path).expanduser(), repr(str(path))
    suffix = model_path.suffix.lower()
    if not model_path.exists():
        raise ModelError(f"model path {shown} does not exist; expected {EXPECTED}; check the path")
    nodes: list[tuple[bool, dict]] = []
    if model_path.is_dir():
        container, (version, config, nodes) = "savedmodel", _read_saved_model(model_path, shown)
    elif suffix in (".keras", ".h5", ".hdf5"):
        container = "keras" if suffix == ".keras" else "h5"
        version, config = _read_file(model_path, shown, container)
    else:
        raise ModelError(f"model file {shown} has extension {model_path.suffix or '(none)'!r}; "
                         f"expected {EXPECTED}; save it with model.save('model.keras')")
    if config is None:
        return ModelFileInfo(str(path), container, "tensorflow")
    if not _is_object(config):
        raise ModelError(f"model {shown} holds no Keras model config (no class_name); expected "
                         f"{EXPECTED}; save the model again with model.save()")
    info = ModelFileInfo(str(path), container, _writer(version, config), version, config,
                         config["class_name"])
    _scan(config, info)
    for direct, node in nodes:  # tf-keras revives SavedModel nodes one by one: each may hold code
        sub = ModelFileInfo("", "", "")
        _scan(node, sub, as_layer=True)
        info.unsafe_layers += [item for item in sub.unsafe_layers if item not in info.unsafe_layers]
        if direct and not _children(config):  # a subclassed model: its config lists no layers
            info.layer_classes += sub.layer_classes
            info.custom_classes += [c for c in sub.custom_classes if c not in info.custom_classes]
    info.leading_preprocessing = _leading(config)[0]
    info.input_shape = _input_shape(config)
    return info


def unsafe_code_message(info: ModelFileInfo) -> str | None:
    """One line refusing ``info``'s model when it holds serialized Python code, else None."""
    if not info.unsafe_layers:
        return None
    where = ", ".join(f"{name!r} ({reason})" for name, reason in info.unsafe_layers)
    noun = "layer" if len(info.unsafe_layers) == 1 else "layers"
    lambdas = all(reason.startswith("Lambda") for _, reason in info.unsafe_layers)
    return (f"model {info.path!r} holds serialized Python code in {noun} {where}; edgekit does not "
            f"run code from a model file unless told to. If you trust this file, pass "
            f"--unsafe-deserialization (Python: unsafe_deserialization=True); or replace "
            f"{f'the Lambda {noun}' if lambdas else 'that code'} with a custom layer class passed "
            f"through --custom-objects")


def _unreadable(shown: str, error: BaseException, expected: str) -> ModelError:
    reason = " ".join(str(error).split())[:160] or "no message"
    return ModelError(f"cannot read model {shown}: {type(error).__name__}: {reason}; expected "
                      f"{expected}; save the model again with model.save()")


def _read_file(path: Path, shown: str, container: str) -> tuple[str | None, dict]:
    """(keras_version, config) of a .keras zip (config.json, metadata.json) or an .h5 file."""
    expected = ("a .keras zip written by model.save('model.keras')" if container == "keras"
                else "an HDF5 file written by model.save('model.h5')")
    try:
        if container == "keras":
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
                raw = {key: archive.read(f"{key}.json").decode("utf-8")
                       for key in ("config", "metadata") if f"{key}.json" in names}
            meta = json.loads(raw.get("metadata", "{}"))
            version = meta.get("keras_version") if isinstance(meta, dict) else None
        else:
            with h5py.File(path, "r") as h5:
                attrs = {"config": "model_config", "version": "keras_version"}
                raw = {key: h5.attrs[attr] for key, attr in attrs.items() if attr in h5.attrs}
            # Older Keras wrote the attributes as bytes.
            raw = {k: v.decode("utf-8") if isinstance(v, bytes) else str(v) for k, v in raw.items()}
            version = raw.get("version")
        config = json.loads(raw["config"]) if "config" in raw else None
    except _READ_ERRORS as error:
        raise _unreadable(shown, error, expected) from error
    if config is None:
        raise ModelError(f"model file {shown} holds weights only, no model config; expected "
                         f"{expected}; save the whole model with model.save(), not save_weights()")
    return (str(version) if version else None), config


def _read_saved_model(folder: Path, shown: str) -> tuple[str | None, dict | None, list]:
    """(keras_version, config, [(child of the root?, layer)]); config None: no Keras model."""
    graph, metadata = folder / "saved_model.pb", folder / "keras_metadata.pb"
    if not graph.is_file() and not (folder / "saved_model.pbtxt").is_file():
        raise ModelError(f"folder {shown} is not a SavedModel (no saved_model.pb inside); expected "
                         f"{EXPECTED}; pass the folder written by model.save() or model.export()")
    try:
        # SavedModel{int64 schema_version = 1; repeated MetaGraphDef meta_graphs = 2}: walking the
        # top level catches a truncated or foreign file without parsing the graph itself.
        if graph.is_file() and 2 not in [number for number, _ in _fields(graph.read_bytes())]:
            raise ValueError("no MetaGraphDef (field 2) in saved_model.pb")
        if not metadata.is_file():  # Keras 3 export() and tf.saved_model.save() write none
            return None, None, []
        nodes = []
        # SavedMetadata{repeated SavedObject nodes = 1}; SavedObject{node_path = 3, metadata = 5}
        for number, raw in _fields(metadata.read_bytes()):
            if number == 1 and not isinstance(raw, int):
                node = dict(_fields(raw))
                nodes.append((bytes(node.get(3, b"")).decode("utf-8"), json.loads(
                    bytes(node.get(5, b"{}")).decode("utf-8"), object_hook=_untuple)))
    except _READ_ERRORS as error:
        raise _unreadable(shown, error, "a SavedModel folder written by TensorFlow") from error
    root = next((meta for node_path, meta in nodes if node_path == "root"), None)
    if not isinstance(root, dict):
        return None, None, []
    config = root.get("model_config")
    if not isinstance(config, dict):
        config = {"class_name": root.get("class_name"), "config": root.get("config") or {}}
    layers = [(node_path.count(".") == 1,
               {"class_name": meta["class_name"], "config": _config(meta)})
              for node_path, meta in nodes if node_path != "root" and _is_object(meta)]
    version = root.get("keras_version")
    return (str(version) if version else None), config, layers


def _fields(buffer: bytes):
    """Yield (field number, int or memoryview) of one protobuf message: wire format, no schema."""
    buffer = memoryview(buffer)  # slices of a memoryview do not copy a large graph
    pos, end = 0, len(buffer)
    while pos < end:
        key, pos = _varint(buffer, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buffer, pos)
        elif wire in (1, 2, 5):
            size, pos = _varint(buffer, pos) if wire == 2 else ({1: 8, 5: 4}[wire], pos)
            value, pos = buffer[pos:pos + size], pos + size
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {pos}")
        if pos > end or number == 0:
            raise ValueError(f"truncated or invalid protobuf field {number} at byte {pos}")
        yield number, value


def _varint(buffer, pos: int) -> tuple[int, int]:
    result = shift = 0
    while pos < len(buffer) and shift < 64:
        byte, pos = buffer[pos], pos + 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise ValueError(f"truncated protobuf varint at byte {pos}")


def _untuple(obj: dict):
    # tf-keras' SavedModel metadata spells tuples and shapes as {"class_name": "__tuple__", ...}.
    if obj.get("class_name") in ("__tuple__", "TensorShape") and isinstance(obj.get("items"), list):
        return obj["items"]
    return obj


def _writer(version: str | None, config: dict) -> str:
    major = (version or "").split(".")[0]
    if major.isdigit():
        return "keras3" if int(major) >= 3 else "tf-keras"
    # No version recorded: only Keras 3 writes these.
    text = json.dumps(config)
    markers = ('"batch_shape"', '"DTypePolicy"', '"__keras_tensor__"', '"keras.src.')
    return "keras3" if any(marker in text for marker in markers) else "tf-keras"


def _is_object(value) -> bool:
    return isinstance(value, dict) and isinstance(value.get("class_name"), str)


def _config(obj: dict) -> dict:
    return obj["config"] if isinstance(obj.get("config"), dict) else {}


def _children(layer: dict) -> list[dict]:
    config, found = _config(layer), []
    for key in _NESTED_KEYS:
        value = config.get(key)
        found += [v for v in (value if isinstance(value, list) else [value]) if _is_object(v)]
    return found


def _is_builtin(obj: dict) -> bool:
    if "module" in obj:  # .keras configs (both Keras) record where each class lives
        module = obj["module"]
        return isinstance(module, str) and module.split(".")[0] in ("keras", "tf_keras")
    return obj["class_name"] in BUILTIN_LAYER_CLASSES


def _custom_name(obj: dict) -> str:
    registered = obj.get("registered_name")
    return registered if isinstance(registered, str) and ">" in registered else obj["class_name"]


def _name(layer: dict) -> str:
    return str(_config(layer).get("name") or layer.get("name") or layer["class_name"])


def _scan(layer: dict, info: ModelFileInfo, as_layer: bool = False) -> None:
    """Record ``layer`` (class, custom class, code held in its own config), then its sublayers."""
    cls, config = layer["class_name"], _config(layer)
    if as_layer:
        info.layer_classes.append(cls)
    if not _is_builtin(layer) and _custom_name(layer) not in info.custom_classes:
        info.custom_classes.append(_custom_name(layer))
    # Every key is walked (no short cut): the walk also collects custom objects.
    holding = [key for key, value in config.items()
               if key not in _NESTED_KEYS and _holds_code(value, info)]
    reason = f"{cls}: {holding[0]!r} is serialized Python code" if holding else None
    if cls == "Lambda":
        function = config.get("function")
        named = function.get("config") if isinstance(function, dict) else function
        reason = ("Lambda" if holding or not isinstance(named, str)
                  else f"Lambda calling Python function {named!r}")
    elif cls in _UNSAFE_CLASSES and _is_builtin(layer):
        reason = f"{cls}: {_UNSAFE_CLASSES[cls]}"
    if reason and (_name(layer), reason) not in info.unsafe_layers:
        info.unsafe_layers.append((_name(layer), reason))
    for child in _children(layer):
        _scan(child, info, as_layer=True)


def _holds_code(value, info: ModelFileInfo) -> bool:
    """True for Keras 3's ``__lambda__`` objects and marshalled bytecode (tf-keras, base64)."""
    if isinstance(value, dict):
        if value.get("class_name") == "__lambda__":
            return True
        if (_is_object(value) and "module" in value and not _is_builtin(value)
                and not value["class_name"].startswith("__") and value["class_name"] != "function"
                and _custom_name(value) not in info.custom_classes):
            info.custom_classes.append(_custom_name(value))  # e.g. a custom initializer
        return any([_holds_code(v, info) for v in value.values()])
    if isinstance(value, list):
        return any([_holds_code(v, info) for v in value])
    if isinstance(value, str) and _BASE64.fullmatch(value):
        try:  # marshal.dumps(code) starts with TYPE_CODE 'c' (0x63), with FLAG_REF 0xe3
            return binascii.a2b_base64(value)[:1] in (b"\xe3", b"c")
        except binascii.Error:
            return False
    return False


def _sources(value) -> set[str]:
    """Names of the layers feeding an ``inbound_nodes``/``input_layers`` entry (Keras 2 and 3)."""
    if isinstance(value, dict):
        history = _config(value).get("keras_history")
        if value.get("class_name") == "__keras_tensor__" and isinstance(history, list) and history:
            return {str(history[0])}
        return set().union(*[_sources(v) for v in value.values()])
    if isinstance(value, list):
        if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
            return {value[0]}  # Keras 2: [layer name, node index, tensor index, kwargs]
        return set().union(*[_sources(v) for v in value])
    return set()


def _leading(model: dict) -> tuple[list[dict], bool]:
    """(leading Rescaling/Normalization configs, True when every layer of ``model`` was one)."""
    config = _config(model)
    layers = [layer for layer in config.get("layers") or []
              if _is_object(layer) and layer["class_name"] != "InputLayer"]
    chain = _functional_chain(config, layers) if "input_layers" in config else iter(layers)
    found, passed = [], 0
    for layer in chain:
        cls = layer["class_name"]
        if cls in PREPROCESSING_CLASSES and _is_builtin(layer):
            found.append({"class_name": cls, "config": _config(layer)})
        elif cls.startswith("Random") and _is_builtin(layer):
            pass  # augmentation: the identity at inference, it does not scale the input
        elif isinstance(_config(layer).get("layers"), list):
            inner, whole = _leading(layer)
            found += inner
            if not whole:
                return found, False
        else:
            return found, False
        passed += 1
    return found, passed == len(layers)


def _functional_chain(config: dict, layers: list[dict]):
    """Yield the layers fed one after another by the model's single input, until it branches."""
    current = _sources(config.get("input_layers"))
    while len(current) == 1:
        consumers = [layer for layer in layers if _sources(layer.get("inbound_nodes")) & current]
        if len(consumers) != 1 or not _sources(consumers[0].get("inbound_nodes")) <= current:
            return
        yield consumers[0]
        current = {str(consumers[0].get("name") or _name(consumers[0]))}


def _input_shape(model: dict) -> list | None:
    config = _config(model)
    layers = [layer for layer in config.get("layers") or [] if _is_object(layer)]
    names = _sources(config.get("input_layers"))
    if "input_layers" not in config:
        candidates = layers[:1]  # Sequential: an InputLayer, or a first layer given input_shape
    else:  # one input only: edgekit handles single-input models
        candidates = [layer for layer in layers if len(names) == 1 and layer["class_name"] ==
                      "InputLayer" and str(layer.get("name") or _name(layer)) in names]
    for layer in candidates:
        shape = _config(layer).get("batch_shape") or _config(layer).get("batch_input_shape")
        if isinstance(shape, list) and shape:
            return list(shape[1:])
    shape = config.get("build_input_shape")
    if model["class_name"] == "Sequential" and isinstance(shape, list) and shape:
        return list(shape[1:])
    return None
