"""Keras 3 models in, end to end: what ``import keras`` saves goes through every stage.

Models are built and trained here with Keras 3 (``import keras`` after edgekit selected tf-keras
for ``tf.keras``), saved as a user would, then handed to the CLI and the Python API.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from edgekit.data import load_dataset

CUSTOM_LAYER_SOURCE = textwrap.dedent('''
    import keras


    @keras.saving.register_keras_serializable(package="user")
    class Doubler(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0
''')


@pytest.fixture(scope="module")
def keras3():
    from edgekit.models.keras3 import keras3 as load

    return load()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _functional(keras3, seed: int, custom=None):
    keras3.utils.set_random_seed(seed)
    inputs = keras3.Input((8, 8, 1), name="pixels")
    x = keras3.layers.Rescaling(1 / 16.0)(inputs)
    # Conv-BN-ReLU right after Rescaling: the pattern whose QAT conversion once lost the scale.
    x = keras3.layers.Conv2D(8, 3)(x)
    x = keras3.layers.BatchNormalization()(x)
    x = keras3.layers.ReLU()(x)
    if custom is not None:
        x = custom(name="doubler")(x)
    x = keras3.layers.Flatten()(x)
    outputs = keras3.layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras3.Model(inputs, outputs, name="k3net")


def _train(model, digits, epochs=4):
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(digits.x_train, digits.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def saved(keras3, digits, tmp_path_factory):
    """A trained Keras 3 functional model as .keras, .h5 and an exported SavedModel."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("keras3")
    model = _train(_functional(keras3, 0), digits)
    model.save(folder / "k3.keras")
    model.save(folder / "k3.h5")
    with contextlib.redirect_stdout(io.StringIO()):
        model.export(str(folder / "k3_export"), verbose=False)
    accuracy = float((model.predict(digits.x_test, verbose=0).argmax(1) == digits.y_test).mean())
    return {"folder": folder, "model": model, "accuracy": accuracy}


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_a_keras3_file_is_told_apart_by_content_and_inspected(cli_runner, saved):
    result = cli_runner("inspect", str(saved["folder"] / "k3.keras"))
    assert result.exit_code == 0, result.output
    assert "written by Keras 3 3." in result.output and "Rescaling" in result.output
    result = cli_runner("inspect", str(saved["folder"] / "k3_export"))
    assert result.exit_code == 0 and "no Keras model inside" in result.output


@pytest.mark.parametrize("name", ["k3.keras", "k3.h5"])
def test_int8_ptq_works_directly_from_the_keras3_file(cli_runner, saved, tmp_path, name):
    output = tmp_path / "int8"
    result = cli_runner("compress", str(saved["folder"] / name), "--dataset", "digits", "--int8",
                        "--output", str(output))
    assert result.exit_code == 0, result.output
    manifest = _manifest(output)
    assert manifest["parent"]["writer"] == "keras3"
    assert manifest["parent"]["keras_version"].startswith("3.")
    rows = manifest["comparison"]["rows"]
    assert rows[0]["accuracy"] == pytest.approx(saved["accuracy"], abs=1e-9)
    assert rows[-1]["accuracy"] >= saved["accuracy"] - 0.02
    assert manifest["model"]["keras"]["api"] == "keras3"  # the child stays a Keras 3 model
    assert "keras3_conversion" not in manifest  # PTQ needs no conversion


def test_export_and_bench_of_a_keras3_folder_use_the_keras3_model_as_reference(cli_runner, saved,
                                                                               tmp_path):
    child = tmp_path / "int8"
    assert cli_runner("compress", str(saved["folder"] / "k3.keras"), "--dataset", "digits",
                      "--int8", "--output", str(child)).exit_code == 0
    exported = cli_runner("export", str(child), "--to", "tflite,onnx,triton,mobile",
                          "--triton-repository", str(tmp_path / "repo"))
    assert exported.exit_code == 0, exported.output
    artifacts = _manifest(child / "export")["artifacts"]
    assert {entry["status"] for entry in artifacts.values()} == {"passed"}
    assert artifacts["onnx-fp32"]["fidelity"]["max_abs_diff"] < 1e-4
    assert (tmp_path / "repo" / "int8" / "1" / "model.onnx").is_file()
    benched = cli_runner("bench", str(child), "--samples", "60", "--min-runs", "5",
                         "--min-seconds", "0.05", "--warmup-runs", "1",
                         "--only", "keras,tflite-int8,onnx-fp32")
    assert benched.exit_code == 0, benched.output
    rows = {row["name"]: row for row in _manifest_bench(child)["artifacts"]}
    assert rows["keras"]["runtime"] == "keras3" and rows["keras"]["status"] == "ok"
    assert rows["onnx-fp32"]["fidelity"]["agreement"] == 1.0


def test_a_keras3_sequential_model_exports_to_onnx_like_a_functional_one(keras3, digits,
                                                                        tmp_path, cli_runner):
    """Keras 3 Sequential has no output_names; the ONNX output is named after its last layer."""
    keras3.utils.set_random_seed(3)
    model = keras3.Sequential([keras3.Input((8, 8, 1)), keras3.layers.Rescaling(1 / 16.0),
                               keras3.layers.Conv2D(16, 3, strides=2, padding="same",
                                                    activation="relu"),
                               keras3.layers.Conv2D(32, 3, padding="same", activation="relu"),
                               keras3.layers.GlobalAveragePooling2D(),
                               keras3.layers.Dense(10, activation="softmax", name="probs")])
    _train(model, digits, epochs=30).save(tmp_path / "seq.keras")
    child = tmp_path / "seq-int8"
    compressed = cli_runner("compress", str(tmp_path / "seq.keras"), "--dataset", "digits",
                            "--int8", "--output", str(child))
    assert compressed.exit_code == 0, compressed.output
    exported = cli_runner("export", str(child), "--to", "onnx")
    assert exported.exit_code == 0, exported.output
    artifacts = _manifest(child / "export")["artifacts"]
    assert {entry["status"] for entry in artifacts.values()} == {"passed"}
    import onnx

    assert [v.name for v in onnx.load(str(child / "export" / "model_fp32.onnx")).graph.output] \
        == ["probs"]
    expected = model.predict(digits.x_test, verbose=0)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(child / "export" / "model_fp32.onnx"),
                                           providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: digits.x_test.astype(np.float32)})[0]
    assert np.abs(got - expected).max() < 1e-4


def _manifest_bench(folder):
    return json.loads((folder / "bench" / "bench.json").read_text())


def test_prune_and_qat_convert_to_tf_keras_proven_on_the_test_split(cli_runner, saved, tmp_path):
    output = tmp_path / "pq"
    result = cli_runner("compress", str(saved["folder"] / "k3.keras"), "--dataset", "digits",
                        "--prune", "0.5", "--qat", "--finetune-epochs", "1",
                        "--output", str(output))
    assert result.exit_code == 0, result.output
    manifest = _manifest(output)
    conversion = manifest["keras3_conversion"]
    assert conversion["from"] == "keras3" and conversion["max_abs_diff"] <= 1e-5
    assert conversion["samples"] == len(load_dataset("digits").y_test)
    assert manifest["parent"]["writer"] == "keras3"
    assert manifest["stages"]["prune"]["pruned_layers"]
    rows = {row["label"]: row for row in manifest["comparison"]["rows"]}
    assert rows["compressed tflite"]["accuracy"] > 0.8
    # The int8 file answers as its own Keras model does (a lost Rescaling scale gave 10%).
    assert rows["compressed tflite"]["accuracy"] >= rows["compressed keras"]["accuracy"] - 0.05
    assert manifest["stages"]["qat"]["output_quantized_during_qat"] == ["rescaling"]


def test_a_saved_model_from_keras3_export_is_its_own_reference(cli_runner, saved, tmp_path):
    output = tmp_path / "sm"
    result = cli_runner("compress", str(saved["folder"] / "k3_export"), "--dataset", "digits",
                        "--int8", "--preprocess", "none", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert (output / "saved_model" / "saved_model.pb").is_file()
    rows = _manifest(output)["comparison"]["rows"]
    assert rows[0]["accuracy"] == pytest.approx(saved["accuracy"], abs=1e-9)
    exported = cli_runner("export", str(output), "--to", "tflite,onnx", "--onnx-precisions", "fp32")
    assert exported.exit_code == 0, exported.output
    refused = cli_runner("compress", str(saved["folder"] / "k3_export"), "--dataset", "digits",
                         "--prune", "0.5", "--preprocess", "none", "--output", str(tmp_path / "p"))
    assert refused.exit_code == 2 and "post-training quantization" in refused.output


def test_a_live_keras3_model_object_compresses_and_exports(saved, tmp_path):
    import edgekit

    result = edgekit.compress(saved["model"], dataset="digits", fp16=True,
                              output_dir=tmp_path / "fp16", progress=False)
    assert result.rows[0]["accuracy"] == pytest.approx(saved["accuracy"], abs=1e-9)
    exported = edgekit.export(saved["model"], output_dir=tmp_path / "export", dataset="digits",
                              to="tflite,onnx", onnx_precisions="fp32")
    assert exported.passed


def test_a_subclassed_keras3_model_gets_ptq_and_a_clear_refusal_for_pruning(keras3, digits,
                                                                           tmp_path):
    import edgekit

    class Net(keras3.Model):
        def __init__(self):
            super().__init__(name="net")
            self.conv = keras3.layers.Conv2D(8, 3, activation="relu")
            self.flat = keras3.layers.Flatten()
            self.head = keras3.layers.Dense(10, activation="softmax")

        def call(self, x):
            return self.head(self.flat(self.conv(x / 16.0)))

    model = _train(Net(), digits, epochs=3)
    keras_accuracy = float((model.predict(digits.x_test, verbose=0).argmax(1)
                            == digits.y_test).mean())
    result = edgekit.compress(model, dataset="digits", int8=True, preprocess="none",
                              output_dir=tmp_path / "int8", progress=False)
    assert result.rows[0]["accuracy"] == pytest.approx(keras_accuracy, abs=1e-9)
    assert abs(result.accuracy - keras_accuracy) <= 0.02
    with pytest.raises(edgekit.EdgekitError, match=r"subclassed Keras 3 model \(Net\).*Rebuild it "
                                                   r"as a functional model"):
        edgekit.compress(model, dataset="digits", prune=0.5, preprocess="none",
                         output_dir=tmp_path / "pruned", progress=False)
    assert not (tmp_path / "pruned").exists()


def test_a_keras3_custom_layer_loads_through_custom_objects(cli_runner, keras3, digits, tmp_path):
    import importlib.util

    (tmp_path / "user_layers.py").write_text(CUSTOM_LAYER_SOURCE)
    spec = importlib.util.spec_from_file_location("user_layers_keras3", tmp_path / "user_layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = _train(_functional(keras3, 1, custom=module.Doubler), digits, epochs=2)
    model.save(tmp_path / "custom.keras")
    base = ["compress", str(tmp_path / "custom.keras"), "--dataset", "digits",
            "--custom-objects", str(tmp_path / "user_layers.py")]
    result = cli_runner(*base, "--int8", "--output", str(tmp_path / "int8"))
    assert result.exit_code == 0, result.output
    refused = cli_runner(*base, "--prune", "0.5", "--output", str(tmp_path / "pruned"))
    assert refused.exit_code == 2
    assert "'doubler'" in refused.output and "post-training quantization" in refused.output
    assert not (tmp_path / "pruned").exists()


def test_train_continues_a_keras3_model_in_keras3(cli_runner, saved, tmp_path):
    output = tmp_path / "more"
    result = cli_runner("train", "--model", str(saved["folder"] / "k3.keras"), "--dataset",
                        "digits", "--epochs", "2", "--output", str(output))
    assert result.exit_code == 0, result.output
    manifest = _manifest(output)
    assert manifest["model"]["keras"]["api"] == "keras3"
    assert json.loads(__import__("zipfile").ZipFile(output / "model.keras").read(
        "metadata.json"))["keras_version"].startswith("3.")
    assert manifest["evaluation"]["test"]["accuracy"] > 0.8
    assert manifest["input_contract"]["source"] == "model"


def test_keras3_rebuild_numbers_match_on_real_data(saved, digits):
    from edgekit.models.keras3_rebuild import max_abs_difference, rebuild_as_tf_keras

    rebuilt = rebuild_as_tf_keras(saved["model"], flatten=True)
    assert max_abs_difference(saved["model"], rebuilt, digits.x_test) <= 1e-5
    assert np.array_equal(rebuilt.predict(digits.x_test, verbose=0).argmax(1),
                          saved["model"].predict(digits.x_test, verbose=0).argmax(1))


def test_qat_keeps_a_rescaling_layers_scale_in_the_int8_file(keras3, digits, tmp_path):
    """Raw 0..255 pixels, Rescaling(1/255), Conv-BN-ReLU: the int8 file once came out at 10%."""
    import edgekit

    to_pixels = 255 / 16.0
    np.savez(tmp_path / "pixels.npz",
             x_train=np.round(digits.x_train * to_pixels).astype(np.uint8), y_train=digits.y_train,
             x_test=np.round(digits.x_test * to_pixels).astype(np.uint8), y_test=digits.y_test)
    keras3.utils.set_random_seed(0)
    inputs = keras3.Input((8, 8, 1))
    x = keras3.layers.Rescaling(1 / 255.0)(inputs)
    x = keras3.layers.Conv2D(8, 3)(x)
    x = keras3.layers.BatchNormalization()(x)
    x = keras3.layers.ReLU()(x)
    x = keras3.layers.Flatten()(x)
    model = keras3.Model(inputs, keras3.layers.Dense(10, activation="softmax")(x))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(np.round(digits.x_train * to_pixels), digits.y_train, epochs=6, verbose=0)
    model.save(tmp_path / "pixels.keras")
    result = edgekit.compress(str(tmp_path / "pixels.keras"), dataset=f"npz:{tmp_path / 'pixels.npz'}",
                              qat=True, finetune_epochs=1, output_dir=tmp_path / "qat",
                              progress=False)
    rows = {row["label"]: row["accuracy"] for row in result.rows}
    assert rows["compressed keras"] > 0.8
    assert rows["compressed tflite"] >= rows["compressed keras"] - 0.05
