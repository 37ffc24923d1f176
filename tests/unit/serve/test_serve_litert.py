"""TFLite models in the staging copy: a generated model.py that runs them with LiteRT."""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import numpy as np
import pytest

from edgekit.errors import RepositoryError
from edgekit.formats.triton import read_model_config
from edgekit.serve.staging import stage_repository

CONFIG = """
name: "{name}"
backend: "armnn_tflite"
default_model_filename: "model.tflite"
max_batch_size: 8
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "probabilities" data_type: TYPE_FP32 dims: [ 3 ] }} ]
"""


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory):
    """Two tiny 4 -> 3 classifiers: full int8 with int8 io (any batch), and fp32 with a fixed batch of 1."""
    import edgekit  # noqa: F401  (Keras 2 before TensorFlow)
    from edgekit._compat import keras
    from edgekit.formats.tflite import convert_to_tflite

    tf_keras = keras()
    tf_keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("tflite")
    files = {}
    for name, batch_size in (("int8", None), ("fixed", 1)):
        inputs = tf_keras.Input((4,), batch_size=batch_size, name="input")
        hidden = tf_keras.layers.Dense(8, activation="relu")(inputs)
        outputs = tf_keras.layers.Dense(3, activation="softmax", name="probabilities")(hidden)
        model = tf_keras.Model(inputs, outputs)
        if name == "int8":
            samples = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
            content = convert_to_tflite(model, "int8", representative_data=samples, int8_io=True)
        else:
            content = convert_to_tflite(model, "fp32")
        files[name] = folder / f"{name}.tflite"
        files[name].write_bytes(content)
    return files


def _repository(root, tflite_file, name="tiny"):
    folder = root / "repo" / name
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.tflite").write_bytes(tflite_file.read_bytes())
    (folder / "config.pbtxt").write_text(CONFIG.format(name=name))
    return root / "repo"


def _fake_backend_utils():
    """Just enough of triton_python_backend_utils to run the generated model.py in process."""
    module = types.ModuleType("triton_python_backend_utils")

    class Tensor:
        def __init__(self, name, array):
            self.name, self.array = name, array

        def as_numpy(self):
            return self.array

    class InferenceResponse:
        def __init__(self, output_tensors=(), error=None):
            self.output_tensors, self.error = list(output_tensors), error

    class TritonError:
        def __init__(self, message):
            self.message = message

    module.Tensor, module.InferenceResponse, module.TritonError = Tensor, InferenceResponse, TritonError
    module.get_input_tensor_by_name = lambda request, name: request.get(name)
    module.triton_string_to_numpy = lambda name: {"TYPE_FP32": np.float32, "TYPE_INT8": np.int8}[name]
    return module


def _generated_model(repository, staged, monkeypatch, name="tiny"):
    from google.protobuf import json_format

    stage_repository(repository, staged)
    utils = _fake_backend_utils()
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", utils)
    spec = importlib.util.spec_from_file_location(f"generated_{name}", staged / name / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = read_model_config(staged / name / "config.pbtxt")
    model = module.TritonPythonModel()
    model.initialize({"model_config": json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)),
                      "model_repository": str(staged / name), "model_version": "1"})
    return model, utils


def test_a_tflite_model_is_staged_for_litert_in_the_python_backend(tflite_files, tmp_path):
    repository = _repository(tmp_path, tflite_files["int8"])
    staged = stage_repository(repository, tmp_path / "staged")
    assert [(m.name, m.source_kind, m.versions) for m in staged.models] == [("tiny", "tflite", [1])]
    config = read_model_config(tmp_path / "staged" / "tiny" / "config.pbtxt")
    assert config.backend == "python" and config.default_model_filename == ""
    assert config.parameters["EDGEKIT_TFLITE_FILE"].string_value == "model.tflite"
    assert config.parameters["EDGEKIT_LITERT_THREADS"].string_value == "1"
    assert "ai_edge_litert" in (tmp_path / "staged" / "tiny" / "1" / "model.py").read_text()


@pytest.mark.parametrize("kind", ["int8", "fixed"])
def test_generated_model_answers_batched_requests_as_litert_does(kind, tflite_files, tmp_path, monkeypatch):
    from edgekit.runtimes.litert import LiteRTModel

    model, utils = _generated_model(_repository(tmp_path, tflite_files[kind]), tmp_path / "staged", monkeypatch)
    reference = LiteRTModel.load(tflite_files[kind], num_threads=1)
    rng = np.random.default_rng(1)
    batches = [rng.normal(size=(size, 4)).astype(np.float32) for size in (1, 3, 2)]
    for requests in ([{"input": utils.Tensor("input", batch)} for batch in batches],  # batched together
                     [{"input": utils.Tensor("input", batches[1])}]):                 # alone
        responses = model.execute(requests)
        for request, response in zip(requests, responses):
            assert response.error is None
            (tensor,) = response.output_tensors
            batch = request["input"].array
            assert tensor.name == "probabilities" and tensor.array.dtype == np.float32
            np.testing.assert_allclose(tensor.array, reference.run(batch), atol=1e-6)


def test_generated_model_answers_a_failing_request_with_an_error(tflite_files, tmp_path, monkeypatch):
    model, utils = _generated_model(_repository(tmp_path, tflite_files["int8"]), tmp_path / "staged", monkeypatch)
    (response,) = model.execute([{"input": utils.Tensor("input", np.zeros((1, 5), np.float32))}])
    assert response.error is not None and response.error.message.startswith("LiteRT: ")
    (response,) = model.execute([{"input": utils.Tensor("input", np.zeros((1, 4), np.float32))}])
    assert response.error is None  # the model recovers for the next request


def test_a_config_with_other_tensor_counts_or_a_corrupt_file_is_refused(tflite_files, tmp_path):
    repository = _repository(tmp_path, tflite_files["int8"])
    config = repository / "tiny" / "config.pbtxt"
    config.write_text(config.read_text().replace(
        'input [ { name: "input" data_type: TYPE_FP32 dims: [ 4 ] } ]',
        'input [ { name: "a" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "b" data_type: TYPE_FP32 dims: [ 4 ] } ]'))
    with pytest.raises(RepositoryError, match="lists 2 input.* but model.tflite has 1"):
        stage_repository(repository, tmp_path / "staged")
    config.write_text(CONFIG.format(name="tiny"))
    (repository / "tiny" / "1" / "model.tflite").write_bytes(tflite_files["int8"].read_bytes()[:100])
    with pytest.raises(RepositoryError, match="not a TFLite model LiteRT can load"):
        stage_repository(repository, tmp_path / "staged")


def test_any_backend_with_a_tflite_default_filename_is_staged_as_tflite(tflite_files, tmp_path):
    repository = _repository(tmp_path, tflite_files["int8"])
    config = repository / "tiny" / "config.pbtxt"
    config.write_text(config.read_text().replace('backend: "armnn_tflite"', 'backend: "tflite"'))
    assert stage_repository(repository, tmp_path / "staged").models[0].source_kind == "tflite"
