"""read_model_info on real files saved by tf-keras, Keras 3 and TensorFlow (never loaded back)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import edgekit  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from edgekit._compat import keras as tf_keras_module
from edgekit._compat import quiet_native_logs, tensorflow
from edgekit.errors import ModelError
from edgekit.models import fileinfo
from edgekit.models.fileinfo import BUILTIN_LAYER_CLASSES, read_model_info, unsafe_code_message


def _base(lib):
    """Input -> Rescaling -> Lambda -> Dense: a leading Rescaling and a Lambda named my_lambda."""
    inputs = lib.Input((4,), name="inp")
    x = lib.layers.Rescaling(1 / 255, name="resc")(inputs)
    x = lib.layers.Lambda(lambda t: t * 2, name="my_lambda")(x)
    return lib.Model(inputs, lib.layers.Dense(3, activation="softmax", name="out")(x))


def _safe(lib, custom_class=None):
    """Dense -> Rescaling (in the middle) -> Dense, optionally a custom layer: no code inside."""
    inputs = lib.Input((4,), name="inp")
    x = lib.layers.Dense(3, name="first")(inputs)
    x = lib.layers.Rescaling(2.0, name="mid")(x)
    if custom_class is not None:
        x = custom_class(name="custom")(x)
    return lib.Model(inputs, lib.layers.Dense(2, name="out")(x))


def _nested(lib):
    """Code hidden in wrappers, a nested model and an activation."""
    inner = lib.Sequential(
        [lib.Input((4,)), lib.layers.Lambda(lambda t: t - 1, name="inner_lambda")], name="inner")
    inputs = lib.Input((3, 4), name="inp")
    wrapped = lib.layers.Lambda(lambda t: t + 1, name="td_lambda")
    x = lib.layers.TimeDistributed(wrapped, name="td")(inputs)
    x = lib.layers.TimeDistributed(inner, name="td_inner")(x)
    x = lib.layers.Dense(4, activation=lambda t: t, name="lam_act")(x)
    return lib.Model(inputs, lib.layers.Bidirectional(lib.layers.LSTM(2), name="bi")(x))


def _normalized(lib):
    normalize = lib.layers.Normalization(mean=0.5, variance=2.0, name="norm")
    return lib.Sequential([lib.Input((4,)), normalize, lib.layers.Dense(2, name="out")])


def _augmented(lib):
    """An augmentation model, then Rescaling: the Rescaling still scales the raw input."""
    augment = lib.Sequential([lib.Input((8, 8, 1)), lib.layers.RandomFlip(name="flip")],
                             name="augment")
    inputs = lib.Input((8, 8, 1), name="inp")
    x = lib.layers.Rescaling(1 / 255, name="resc")(augment(inputs))
    return lib.Model(inputs, lib.layers.Flatten(name="flat")(x))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Every kind of file, written once for the module: name -> path."""
    root = tmp_path_factory.mktemp("fileinfo")
    tf, k2 = tensorflow(), tf_keras_module()
    import keras as k3  # Keras 3, next to tf-keras in one process

    class PlainLayer2(k2.layers.Layer):
        def call(self, x):
            return x

    class PlainLayer3(k3.layers.Layer):
        def call(self, x):
            return x

    @k3.saving.register_keras_serializable(package="EdgekitTest")
    class Registered(k3.layers.Layer):
        def call(self, x):
            return x

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def __call__(self, x):
            return x * 2

    paths = {}

    def save(name, model, **kwargs):
        paths[name] = root / name
        model.save(str(paths[name]), **kwargs)

    with warnings.catch_warnings(), quiet_native_logs():
        warnings.simplefilter("ignore")  # "HDF5 is legacy", "the object includes a lambda"
        base2, base3 = _base(k2), _base(k3)
        save("k2.keras", base2)
        save("k2.h5", base2)
        save("k2_savedmodel", base2, save_format="tf")
        save("k3.keras", base3)
        save("k3.h5", base3)
        paths["k3_export"] = root / "k3_export"
        base3.export(str(paths["k3_export"]), verbose=False)
        paths["tf_module"] = root / "tf_module"
        tf.saved_model.save(Doubler(), str(paths["tf_module"]))
        save("k2_safe.h5", _safe(k2))
        save("k3_safe.keras", _safe(k3))
        save("k2_nested.h5", _nested(k2))
        save("k3_nested.keras", _nested(k3))
        save("k2_norm.h5", _normalized(k2))
        save("k3_norm.keras", _normalized(k3))
        save("k3_augmented.keras", _augmented(k3))
        save("k2_custom.h5", _safe(k2, PlainLayer2))
        save("k3_custom.keras", _safe(k3, PlainLayer3))
        save("k3_registered.keras", _safe(k3, Registered))
        paths["k2_weights.h5"] = root / "k2_weights.h5"
        base2.save_weights(str(paths["k2_weights.h5"]))
    return paths


@pytest.mark.parametrize(("name", "container", "writer", "major"), [
    ("k2.keras", "keras", "tf-keras", "2"),
    ("k2.h5", "h5", "tf-keras", "2"),
    ("k2_savedmodel", "savedmodel", "tf-keras", "2"),
    ("k3.keras", "keras", "keras3", "3"),
    ("k3.h5", "h5", "keras3", "3"),
])
def test_keras_files_tell_their_writer_and_layers(saved, name, container, writer, major):
    info = read_model_info(saved[name])
    assert (info.container, info.writer) == (container, writer)
    assert info.keras_version.split(".")[0] == major
    assert info.model_class == "Functional"
    assert info.layer_classes == ["InputLayer", "Rescaling", "Lambda", "Dense"]
    assert info.input_shape == [4]
    assert info.custom_classes == []
    assert [item["class_name"] for item in info.leading_preprocessing] == ["Rescaling"]
    assert info.leading_preprocessing[0]["config"]["scale"] == pytest.approx(1 / 255)


@pytest.mark.parametrize("name", ["k3_export", "tf_module"])
def test_savedmodel_without_keras_inside_is_written_by_tensorflow(saved, name):
    info = read_model_info(saved[name])
    assert (info.container, info.writer, info.keras_version, info.config) == (
        "savedmodel", "tensorflow", None, None)
    assert info.unsafe_layers == [] and unsafe_code_message(info) is None


@pytest.mark.parametrize("name", ["k2.h5", "k2.keras", "k3.keras", "k3.h5", "k2_savedmodel"])
def test_lambda_layer_is_unsafe(saved, name):
    info = read_model_info(saved[name])
    assert info.unsafe_layers == [("my_lambda", "Lambda")]
    message = unsafe_code_message(info)
    assert "\n" not in message
    assert "'my_lambda' (Lambda)" in message and str(saved[name]) in message
    assert "--unsafe-deserialization" in message and "--custom-objects" in message


@pytest.mark.parametrize("name", ["k2_nested.h5", "k3_nested.keras"])
def test_code_inside_wrappers_nested_models_and_activations_is_found(saved, name):
    info = read_model_info(saved[name])
    names = [layer for layer, _ in info.unsafe_layers]
    assert names == ["td_lambda", "inner_lambda", "lam_act"]
    assert "activation" in dict(info.unsafe_layers)["lam_act"]
    assert {"TimeDistributed", "Sequential", "Bidirectional", "LSTM"} <= set(info.layer_classes)
    assert info.layer_classes.count("Lambda") == 2
    assert info.input_shape == [3, 4]
    assert "that code" in unsafe_code_message(info)


@pytest.mark.parametrize("name", ["k2_safe.h5", "k3_safe.keras"])
def test_rescaling_in_the_middle_is_not_leading_and_safe_model_passes(saved, name):
    info = read_model_info(saved[name])
    assert info.leading_preprocessing == []
    assert "Rescaling" in info.layer_classes
    assert info.unsafe_layers == [] and unsafe_code_message(info) is None


@pytest.mark.parametrize("name", ["k2_norm.h5", "k3_norm.keras"])
def test_leading_normalization_in_sequential(saved, name):
    info = read_model_info(saved[name])
    assert info.model_class == "Sequential" and info.input_shape == [4]
    assert [item["class_name"] for item in info.leading_preprocessing] == ["Normalization"]
    assert info.leading_preprocessing[0]["config"]["mean"] == 0.5


def test_augmentation_model_before_rescaling_is_looked_through(saved):
    info = read_model_info(saved["k3_augmented.keras"])
    assert [item["class_name"] for item in info.leading_preprocessing] == ["Rescaling"]
    assert info.input_shape == [8, 8, 1]


@pytest.mark.parametrize(("name", "expected"), [
    ("k2_custom.h5", "PlainLayer2"),
    ("k3_custom.keras", "PlainLayer3"),
    ("k3_registered.keras", "EdgekitTest>Registered"),
])
def test_custom_layer_class_is_listed(saved, name, expected):
    info = read_model_info(saved[name])
    assert info.custom_classes == [expected]
    assert info.unsafe_layers == []


def test_hand_rolled_protobuf_reader_agrees_with_the_generated_one(saved):
    tf_keras_module()
    from tf_keras.protobuf import saved_metadata_pb2

    proto = saved_metadata_pb2.SavedMetadata()
    proto.ParseFromString((saved["k2_savedmodel"] / "keras_metadata.pb").read_bytes())
    root = next(node for node in proto.nodes if node.node_path == "root")
    expected = json.loads(root.metadata, object_hook=fileinfo._untuple)["model_config"]
    assert read_model_info(saved["k2_savedmodel"]).config == expected


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", [
    "missing", "extension", "truncated_zip", "random_keras", "zip_without_config", "truncated_h5",
    "random_h5", "weights_only_h5", "folder_without_graph", "truncated_keras_metadata",
])
def test_unreadable_inputs_raise_one_line_model_error(saved, tmp_path, case):
    noise = random.Random(0).randbytes(4096)
    if case == "missing":
        path = tmp_path / "nothing.keras"
    elif case == "extension":
        path = _write(tmp_path / "model.pt", noise)
    elif case == "truncated_zip":
        data = saved["k3.keras"].read_bytes()
        path = _write(tmp_path / "cut.keras", data[: len(data) // 2])
    elif case == "random_keras":
        path = _write(tmp_path / "noise.keras", noise)
    elif case == "zip_without_config":
        path = tmp_path / "empty.keras"
        shutil.make_archive(str(path.with_suffix("")), "zip", str(saved["k3_export"] / "variables"))
        path.with_suffix(".zip").rename(path)
    elif case == "truncated_h5":
        data = saved["k2.h5"].read_bytes()
        path = _write(tmp_path / "cut.h5", data[: len(data) // 2])
    elif case == "random_h5":
        path = _write(tmp_path / "noise.h5", noise)
    elif case == "weights_only_h5":
        path = saved["k2_weights.h5"]
    elif case == "folder_without_graph":
        path = tmp_path / "not_a_savedmodel"
        (path / "variables").mkdir(parents=True)
    else:
        path = tmp_path / "cut_savedmodel"
        shutil.copytree(saved["k2_savedmodel"], path)
        data = (path / "keras_metadata.pb").read_bytes()
        (path / "keras_metadata.pb").write_bytes(data[: len(data) - 7])
    with pytest.raises(ModelError) as raised:
        read_model_info(path)
    message = str(raised.value)
    assert "\n" not in message and str(path) in message and "expected" in message


def test_builtin_class_literal_covers_tf_keras_and_keras3_layers():
    import inspect

    k2 = tf_keras_module()
    import keras as k3

    def layer_classes(module, base):
        members = {name: getattr(module, name) for name in dir(module)}
        return {name for name, member in members.items()
                if inspect.isclass(member) and issubclass(member, base)}

    found = (layer_classes(k2.layers, k2.layers.Layer) | layer_classes(k3.layers, k3.layers.Layer)
             | layer_classes(k2.layers.experimental, k2.layers.Layer)
             | layer_classes(k2.layers.experimental.preprocessing, k2.layers.Layer))
    assert found - BUILTIN_LAYER_CLASSES == set()


def test_reading_imports_neither_tensorflow_nor_keras(saved):
    script = (
        "import sys\n"
        "from edgekit.models.fileinfo import read_model_info\n"
        "for path in sys.argv[1:]:\n"
        "    read_model_info(path)\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')))\n"
    )
    names = ["k2.h5", "k2.keras", "k2_savedmodel", "k3.keras", "k3_export"]
    result = subprocess.run([sys.executable, "-c", script, *(str(saved[n]) for n in names)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
