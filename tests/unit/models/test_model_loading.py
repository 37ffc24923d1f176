"""load_model_file reads .keras, .h5 and SavedModel folders, and fails in one clear line."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgekit.errors import ModelError
from edgekit.models import build_model, describe_model, load_model_file


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
@pytest.mark.parametrize("file_name", ["model.keras", "model.h5", "model.hdf5"])
def test_keras_and_hdf5_files_round_trip_with_the_same_predictions(
    file_name, tiny_classifier, sample_batch, tmp_path, tf_keras
):
    path = tmp_path / file_name
    tiny_classifier.save(path)

    loaded = load_model_file(path)

    assert isinstance(loaded, tf_keras.Model)
    np.testing.assert_allclose(loaded.predict(sample_batch, verbose=0),
                               tiny_classifier.predict(sample_batch, verbose=0), atol=1e-6)


def test_saved_model_folder_round_trips_a_zoo_model_with_the_same_predictions(
    sample_batch, tmp_path, tf_keras
):
    model = build_model("cnn", (8, 8, 1), 3, {"filters": 2, "dense_units": 4})
    folder = tmp_path / "saved_model"
    model.save(folder, save_format="tf")

    loaded = load_model_file(str(folder))

    assert isinstance(loaded, tf_keras.Model)
    np.testing.assert_allclose(loaded.predict(sample_batch, verbose=0),
                               model.predict(sample_batch, verbose=0), atol=1e-6)
    assert describe_model(loaded)["input"]["name"] == "input"
    assert describe_model(loaded)["output"]["name"] == "probabilities"


def test_zoo_model_round_trips_through_keras_file_with_its_names(tmp_path):
    model = build_model("resnet8", (8, 8, 1), 3, {"base_filters": 2})
    model.save(tmp_path / "resnet8.keras")

    loaded = load_model_file(tmp_path / "resnet8.keras")

    assert describe_model(loaded) == describe_model(model)


def test_tilde_in_path_is_expanded(tiny_classifier, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    tiny_classifier.save(tmp_path / "model.keras")

    assert load_model_file("~/model.keras").name == "tiny_classifier"


def test_missing_path_error_says_what_was_received(tmp_path):
    missing = tmp_path / "nowhere" / "model.keras"

    with pytest.raises(ModelError, match=r"model path '.*nowhere/model\.keras' does not exist"):
        load_model_file(missing)


def test_unknown_extension_error_names_the_extension_and_the_accepted_formats(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("not a model")

    with pytest.raises(
        ModelError, match=r"has extension '\.txt'; expected a \.keras or \.h5/\.hdf5 file"
    ):
        load_model_file(path)


def test_truncated_keras_file_raises_model_error_with_a_short_reason(tiny_classifier, tmp_path):
    path = tmp_path / "model.keras"
    tiny_classifier.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(ModelError, match=r"cannot read model '.*model\.keras': \w+") as caught:
        load_model_file(path)

    assert "\n" not in str(caught.value)


def test_random_bytes_h5_file_raises_model_error_with_a_short_reason(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(os.urandom(4096))

    with pytest.raises(ModelError, match=r"cannot read model '.*model\.h5': \w+") as caught:
        load_model_file(path)

    assert "\n" not in str(caught.value)
    # The reader's own error is kept as the cause (issue 12): `edgekit --verbose` prints the chain,
    # the CLI otherwise prints the one line above (tests/unit/cli/test_error_reporting.py).
    assert isinstance(caught.value.__cause__, OSError)


def test_multi_output_model_is_refused_as_not_a_single_output_classifier(
    two_output_model, tmp_path
):
    path = tmp_path / "two_heads.keras"
    two_output_model.save(path)

    with pytest.raises(
        ModelError, match=r"has 1 inputs and 2 outputs; edgekit handles single-input single-output"
    ):
        load_model_file(path)


def test_folder_without_saved_model_pb_is_refused(tmp_path):
    with pytest.raises(ModelError, match=r"is not a SavedModel \(no saved_model\.pb inside\)"):
        load_model_file(tmp_path)


def test_saved_model_without_a_serving_signature_is_refused(tmp_path):
    from edgekit._compat import tensorflow

    tf = tensorflow()
    module = tf.Module()
    module.scale = tf.Variable(2.0)
    module.call = tf.function(lambda x: x * module.scale)
    module.call(tf.constant([1.0]))  # traced, but no input signature: no serving signature
    tf.saved_model.save(module, str(tmp_path / "plain"))

    with pytest.raises(ModelError, match=r"has no 'serving_default' signature"):
        load_model_file(tmp_path / "plain")


def test_saved_model_without_keras_runs_through_its_serving_signature(tmp_path):
    import numpy as np

    from edgekit._compat import tensorflow

    tf = tensorflow()
    module = tf.Module()
    module.weights = tf.Variable(np.eye(4, 3, dtype=np.float32))
    module.serve = tf.function(lambda x: tf.nn.softmax(tf.matmul(tf.reshape(x, [-1, 4]),
                                                                 module.weights)),
                               input_signature=[tf.TensorSpec([None, 2, 2], tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp_path / "plain"), signatures={"serving_default": module.serve})

    model = load_model_file(tmp_path / "plain")
    x = np.random.default_rng(0).random((5, 2, 2), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), module.serve(x).numpy(), atol=1e-6)
    assert model.input_shape == (None, 2, 2) and model.output_shape == (None, 3)


def test_describe_model_refuses_a_multi_output_model(two_output_model):
    with pytest.raises(ModelError, match=r"single-input single-output classifiers"):
        describe_model(two_output_model)
