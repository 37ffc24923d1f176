"""A user's own model, exactly as they trained it: input contract, custom layers, safe loading.

Models are trained here, outside edgekit, the way a user would (tf-keras, inputs scaled ``x / 16``
or a ``Rescaling`` layer inside), then go through the CLI.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from edgekit.data import load_dataset

CUSTOM_LAYER_SOURCE = textwrap.dedent('''
    import tensorflow as tf
    import tf_keras


    class Swish(tf_keras.layers.Layer):
        """x * sigmoid(beta * x), with a trainable beta."""

        def build(self, input_shape):
            self.beta = self.add_weight(name="beta", shape=(), initializer="ones")

        def call(self, inputs):
            return inputs * tf.sigmoid(self.beta * inputs)
''')


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _fit(model, x, y, epochs=8):
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def own_h5(tmp_path_factory, digits):
    """A CNN trained outside edgekit on digits scaled x / 16, saved as .h5."""
    from edgekit._compat import keras

    tf_keras = keras()
    tf_keras.utils.set_random_seed(1)
    inputs = tf_keras.Input((8, 8, 1))
    x = tf_keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = tf_keras.layers.Flatten()(x)
    outputs = tf_keras.layers.Dense(10, activation="softmax")(x)
    model = _fit(tf_keras.Model(inputs, outputs), digits.x_train / 16.0, digits.y_train)
    path = tmp_path_factory.mktemp("own") / "own.h5"
    model.save(path)
    keras_accuracy = float((model.predict(digits.x_test / 16.0, verbose=0).argmax(1)
                            == digits.y_test).mean())
    return path, keras_accuracy


@pytest.fixture(scope="module")
def rescaling_model(tmp_path_factory, digits):
    """A model that scales its own input with a Rescaling layer (takes raw 0..16 values)."""
    from edgekit._compat import keras

    tf_keras = keras()
    tf_keras.utils.set_random_seed(2)
    inputs = tf_keras.Input((8, 8, 1))
    x = tf_keras.layers.Rescaling(1 / 16.0)(inputs)
    x = tf_keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = tf_keras.layers.Flatten()(x)
    outputs = tf_keras.layers.Dense(10, activation="softmax")(x)
    model = _fit(tf_keras.Model(inputs, outputs), digits.x_train, digits.y_train)
    path = tmp_path_factory.mktemp("rescaling") / "rescaling.keras"
    model.save(path)
    keras_accuracy = float((model.predict(digits.x_test, verbose=0).argmax(1)
                            == digits.y_test).mean())
    return path, keras_accuracy


@pytest.fixture(scope="module")
def custom_model(tmp_path_factory, digits):
    """A model with a custom layer (defined in layers.py), trained on x / 16, saved as .keras."""
    import importlib.util

    from edgekit._compat import keras

    tf_keras = keras()
    folder = tmp_path_factory.mktemp("custom")
    (folder / "layers.py").write_text(CUSTOM_LAYER_SOURCE)
    spec = importlib.util.spec_from_file_location("user_layers_for_test", folder / "layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tf_keras.utils.set_random_seed(3)
    inputs = tf_keras.Input((8, 8, 1))
    x = tf_keras.layers.Conv2D(16, 3)(inputs)
    x = module.Swish(name="swish")(x)
    x = tf_keras.layers.Flatten()(x)
    outputs = tf_keras.layers.Dense(10, activation="softmax")(x)
    model = _fit(tf_keras.Model(inputs, outputs), digits.x_train / 16.0, digits.y_train)
    model.save(folder / "custom.keras")
    return folder


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_a_model_file_without_a_stated_contract_is_refused_with_the_data_range(cli_runner, own_h5,
                                                                               tmp_path):
    result = cli_runner("compress", str(own_h5[0]), "--dataset", "digits", "--int8",
                        "--output", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "does not say how its input is scaled" in result.output
    assert "values in [0, 16]" in result.output and "--preprocess scale=0.0625" in result.output
    assert not (tmp_path / "out").exists()


def test_a_stated_contract_gives_the_parent_accuracy_keras_computes(cli_runner, own_h5, tmp_path):
    path, keras_accuracy = own_h5
    output = tmp_path / "own-int8"
    result = cli_runner("compress", str(path), "--dataset", "digits", "--int8",
                        "--preprocess", "scale=0.0625", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert "input contract: raw (8, 8, 1)" in result.output and "from --preprocess" in result.output
    manifest = _manifest(output)
    rows = {row["label"]: row for row in manifest["comparison"]["rows"]}
    assert rows["parent keras"]["accuracy"] == pytest.approx(keras_accuracy, abs=1e-9)
    assert rows["compressed tflite"]["accuracy"] >= keras_accuracy - 0.01
    contract = manifest["input_contract"]
    assert contract["source"] == "stated" and contract["preprocessing"]["scale"] == 0.0625
    assert contract["raw"]["max"] == 16.0


def test_the_int8_file_fed_x_over_16_agrees_with_the_keras_model(own_h5, tmp_path, digits):
    from edgekit.compress import compress
    from edgekit.runtimes.litert import LiteRTModel

    path, keras_accuracy = own_h5
    result = compress(str(path), dataset="digits", int8=True, preprocess="scale=0.0625",
                      output_dir=tmp_path / "int8", progress=False)
    probabilities = LiteRTModel.load(result.tflite_path).run(digits.x_test / 16.0)
    accuracy = float((probabilities.argmax(1) == digits.y_test).mean())
    assert abs(accuracy - keras_accuracy) <= 0.01


def test_a_rescaling_layer_needs_no_flag_and_a_contradicting_flag_is_refused(cli_runner,
                                                                             rescaling_model,
                                                                             tmp_path):
    path, keras_accuracy = rescaling_model
    result = cli_runner("compress", str(path), "--dataset", "digits", "--int8",
                        "--output", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "the model takes them as they are" in result.output and "Rescaling" in result.output
    rows = _manifest(tmp_path / "out")["comparison"]["rows"]
    assert rows[0]["accuracy"] == pytest.approx(keras_accuracy, abs=1e-9)
    refused = cli_runner("compress", str(path), "--dataset", "digits", "--int8",
                         "--preprocess", "scale=0.0625", "--output", str(tmp_path / "other"))
    assert refused.exit_code == 2 and "contradicts" in refused.output
    assert "Rescaling" in refused.output and not (tmp_path / "other").exists()


def test_fine_tuning_sees_inputs_in_the_contracts_range(own_h5, tmp_path, monkeypatch):
    import importlib

    from edgekit.compress import compress

    # edgekit.compress is also the stage function's name: reach the modules by their full names.
    finetune_module = importlib.import_module("edgekit.compress.finetune")
    prune_module = importlib.import_module("edgekit.compress.prune")
    qat_module = importlib.import_module("edgekit.compress.qat")

    seen = []
    real = finetune_module.fine_tune

    def spying_fine_tune(model, context, technique, callbacks=()):
        seen.append((technique, float(context.train[0].min()), float(context.train[0].max())))
        return real(model, context, technique, callbacks)

    monkeypatch.setattr(prune_module, "fine_tune", spying_fine_tune)
    monkeypatch.setattr(qat_module, "fine_tune", spying_fine_tune)
    result = compress(str(own_h5[0]), dataset="digits", prune=0.5, qat=True, finetune_epochs=1,
                      preprocess="scale=0.0625", output_dir=tmp_path / "pq", progress=False)
    assert [technique for technique, _, _ in seen] == ["prune", "qat"]
    assert all(low == 0.0 and high == 1.0 for _, low, high in seen)
    # A child inherits its parent's contract unchanged.
    assert result.manifest["input_contract"]["preprocessing"]["scale"] == 0.0625


@pytest.mark.parametrize("spec, message", [
    ("scale=", "must be numbers"),
    ("scale=0.1,gamma=2", "knows scale, mean and std"),
    ("scale=1,mean=0.1,0.2,0.3", "mean has 3 values; the samples have 1 channel"),
    ("scale=1,std=0", "std must not be 0"),
    ("scale=nan", "must be finite"),
    ("0.5", "takes scale=S,mean=M,std=D or none"),
])
def test_a_malformed_contract_is_refused_in_one_line(cli_runner, own_h5, tmp_path, spec, message):
    result = cli_runner("compress", str(own_h5[0]), "--dataset", "digits", "--int8",
                        "--preprocess", spec, "--output", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_custom_layer_loads_through_custom_objects_and_children_remember_it(cli_runner,
                                                                              custom_model):
    folder = custom_model
    refused = cli_runner("compress", str(folder / "custom.keras"), "--dataset", "digits",
                         "--int8", "--preprocess", "scale=0.0625",
                         "--output", str(folder / "refused"))
    assert refused.exit_code == 2 and "Swish" in refused.output
    assert "--custom-objects" in refused.output
    result = cli_runner("compress", str(folder / "custom.keras"), "--dataset", "digits",
                        "--prune", "0.5", "--finetune-epochs", "1", "--int8",
                        "--preprocess", "scale=0.0625", "--custom-objects",
                        str(folder / "layers.py"), "--output", str(folder / "child"))
    assert result.exit_code == 0, result.output
    assert "left custom layer(s) swish as they are" in result.output
    manifest = _manifest(folder / "child")
    recorded = manifest["model"]["custom_objects"]
    assert recorded["names"] == ["Swish"] and len(recorded["sha256"]) == 64
    assert manifest["stages"]["prune"]["custom_layers_left_alone"] == ["swish"]
    # The child folder reloads without the flag: export and bench.
    exported = cli_runner("export", str(folder / "child"), "--to", "tflite,onnx",
                          "--onnx-precisions", "fp32")
    assert exported.exit_code == 0, exported.output
    benched = cli_runner("bench", str(folder / "child"), "--samples", "50", "--min-runs", "5",
                         "--min-seconds", "0.05", "--warmup-runs", "1", "--max-windows", "2",
                         "--only", "keras,onnx-fp32")
    assert benched.exit_code == 0, benched.output
    bench = json.loads((folder / "child" / "bench" / "bench.json").read_text())
    assert {row["name"]: row["status"] for row in bench["artifacts"]} == {"keras": "ok",
                                                                          "onnx-fp32": "ok"}


def test_a_changed_or_missing_custom_objects_file_is_named(cli_runner, custom_model, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("custom.keras", "layers.py"):
        shutil.copyfile(custom_model / name, folder / name)
    result = cli_runner("compress", str(folder / "custom.keras"), "--dataset", "digits",
                        "--int8", "--preprocess", "scale=0.0625", "--custom-objects",
                        str(folder / "layers.py"), "--output", str(folder / "child"))
    assert result.exit_code == 0, result.output
    (folder / "layers.py").write_text(CUSTOM_LAYER_SOURCE + "\n# edited\n")
    changed = cli_runner("export", str(folder / "child"), "--to", "tflite")
    assert changed.exit_code == 2 and "has changed since" in changed.output
    (folder / "layers.py").unlink()
    missing = cli_runner("export", str(folder / "child"), "--to", "tflite")
    assert missing.exit_code == 2 and "is missing now" in missing.output


def test_custom_objects_that_do_not_import_or_do_not_define_the_layer_are_refused(
        cli_runner, custom_model, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anywhere\n")
    unrelated = tmp_path / "unrelated.py"
    unrelated.write_text("def helper():\n    return 1\n")
    args = ["compress", str(custom_model / "custom.keras"), "--dataset", "digits", "--int8",
            "--preprocess", "scale=0.0625", "--output", str(tmp_path / "out")]
    result = cli_runner(*args, "--custom-objects", str(broken))
    assert result.exit_code == 2 and "does not import" in result.output
    result = cli_runner(*args, "--custom-objects", str(unrelated))
    assert result.exit_code == 2 and "Swish" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_lambda_layer_is_refused_and_its_code_never_runs(cli_runner, tmp_path, suffix):
    from edgekit._compat import keras

    tf_keras = keras()
    marker = tmp_path / "lambda_ran.txt"
    inputs = tf_keras.Input((8, 8, 1))
    x = tf_keras.layers.Lambda(
        lambda t, path=str(marker): (__import__("pathlib").Path(path).write_text("ran"), t)[1],
        name="sneaky")(inputs)
    x = tf_keras.layers.Flatten()(x)
    outputs = tf_keras.layers.Dense(10, activation="softmax")(x)
    model = tf_keras.Model(inputs, outputs)
    model.save(tmp_path / f"lambda{suffix}")
    marker.unlink()  # building the model ran it; only loading matters from here
    args = ["compress", str(tmp_path / f"lambda{suffix}"), "--dataset", "digits", "--fp16",
            "--preprocess", "scale=0.0625"]
    result = cli_runner(*args, "--output", str(tmp_path / "refused"))
    assert result.exit_code == 2, result.output
    assert "'sneaky'" in result.output and "--unsafe-deserialization" in result.output
    assert not marker.exists()
    allowed = cli_runner(*args, "--unsafe-deserialization", "--output", str(tmp_path / "allowed"))
    assert allowed.exit_code == 0, allowed.output
    assert marker.exists()
    assert _manifest(tmp_path / "allowed")["model"]["unsafe_deserialization"] is True


def test_no_traceback_when_a_contract_is_missing(run_edgekit, own_h5):
    result = run_edgekit("export", str(own_h5[0]), "--dataset", "digits", "--to", "tflite")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:") and len(result.stderr.strip().splitlines()) == 1


def test_a_served_own_model_answers_raw_pngs_as_keras_does_with_no_flags(cli_runner, custom_model,
                                                                       digits, tmp_path):
    """Custom layer + stated contract: compress, export to Triton, serve, infer raw PNGs."""
    import socket

    from PIL import Image

    from edgekit.models import load_model_file
    from edgekit.serve import serve

    child = tmp_path / "child"
    result = cli_runner("compress", str(custom_model / "custom.keras"), "--dataset", "digits",
                        "--fp16", "--preprocess", "scale=0.0625", "--custom-objects",
                        str(custom_model / "layers.py"), "--output", str(child))
    assert result.exit_code == 0, result.output
    repository = tmp_path / "repo"
    exported = cli_runner("export", str(child), "--to", "tflite,onnx,triton,mobile",
                          "--onnx-precisions", "fp32", "--triton-repository", str(repository))
    assert exported.exit_code == 0, exported.output
    metadata = json.loads((child / "export" / "mobile" / "metadata.json").read_text())
    assert metadata["normalization"]["scale"] == 0.0625 and metadata["normalization"]["raw_range"] == [0.0, 16.0]
    config_text = next(repository.glob("*/config.pbtxt")).read_text()
    assert "edgekit_preprocessing" in config_text and "0.0625" in config_text
    pixels = np.round(digits.x_test[:8, :, :, 0] * 255 / 16).astype(np.uint8)
    paths = []
    for index, image in enumerate(pixels):
        paths.append(str(tmp_path / f"digit{index}.png"))
        Image.fromarray(image).save(paths[-1])
    model = load_model_file(child / "model.keras")
    raw = pixels[..., np.newaxis].astype(np.float32) * 16 / 255.0  # pixel 255 is raw 16
    expected = model.predict(raw * 0.0625, verbose=0).argmax(1)
    ports = []
    for _ in range(3):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        ports.append(probe.getsockname()[1])
        probe.close()
    server = serve(repository, log_file=str(tmp_path / "server.log"), ready_timeout=90,
                   http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2])
    try:
        answered = cli_runner("infer", "--url", server.endpoints["http"], "-k", "1", *paths)
    finally:
        server.stop()
    assert answered.exit_code == 0, answered.output
    assert "from the served model config" in answered.output
    for path, label in zip(paths, expected):
        assert f"{path}\n  1. {label} " in answered.output, answered.output
