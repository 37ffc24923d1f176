"""The Python-backend staging copy keeps what the onnxruntime_onnx config says, and runs the ONNX file."""

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


def test_staged_config_keeps_names_shapes_batching_instances_and_labels(linear_repository, tmp_path):
    staged = stage_repository(linear_repository, tmp_path / "staged")
    assert [(m.name, m.source_kind, m.versions) for m in staged.models] == [("linear", "onnxruntime_onnx", [1])]
    source = read_model_config(linear_repository / "linear" / "config.pbtxt")
    config = read_model_config(tmp_path / "staged" / "linear" / "config.pbtxt")
    assert config.backend == "python" and config.platform == ""
    assert config.input == source.input and config.output == source.output
    assert config.max_batch_size == 8
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.instance_group[0].count == 2
    assert config.version_policy == source.version_policy
    assert config.parameters["EDGEKIT_ONNX_FILE"].string_value == "model.onnx"
    # export's preprocessing (ONNX metadata) travels to the client as a config parameter
    assert json.loads(config.parameters["edgekit_preprocessing"].string_value)["std"] == 2.0
    staged_folder = tmp_path / "staged" / "linear"
    assert (staged_folder / "labels.txt").read_text() == "cat\ndog\nbird\n"
    assert (staged_folder / "1" / "model.onnx").resolve() == (linear_repository / "linear" / "1" / "model.onnx").resolve()
    assert "TritonPythonModel" in (staged_folder / "1" / "model.py").read_text()
    assert not (linear_repository / "linear" / "1" / "model.py").exists()  # the source is untouched


def test_gpu_instance_group_runs_on_cpu_with_a_note(linear_repository, tmp_path, config_text):
    config_path = linear_repository / "linear" / "config.pbtxt"
    config_path.write_text(config_text(kind="KIND_GPU"))
    staged = stage_repository(linear_repository, tmp_path / "staged")
    config = read_model_config(tmp_path / "staged" / "linear" / "config.pbtxt")
    assert config.instance_group[0].kind == config.instance_group[0].KIND_CPU
    assert "KIND_GPU" in staged.models[0].notes[0]


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
    module.triton_string_to_numpy = lambda name: {"TYPE_FP32": np.float32}[name]
    return module


@pytest.fixture
def generated_model(linear_repository, tmp_path, monkeypatch):
    from google.protobuf import json_format

    stage_repository(linear_repository, tmp_path / "staged")
    utils = _fake_backend_utils()
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", utils)
    model_file = tmp_path / "staged" / "linear" / "1" / "model.py"
    spec = importlib.util.spec_from_file_location("generated_model", model_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = read_model_config(tmp_path / "staged" / "linear" / "config.pbtxt")
    model = module.TritonPythonModel()
    model.initialize({"model_config": json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)),
                      "model_repository": str(tmp_path / "staged" / "linear"), "model_version": "1"})
    return model, utils


def test_generated_model_runs_batched_requests_as_onnxruntime_does(generated_model, linear_repository):
    import onnxruntime

    model, utils = generated_model
    session = onnxruntime.InferenceSession(str(linear_repository / "linear" / "1" / "model.onnx"))
    rng = np.random.default_rng(1)
    batches = [rng.normal(size=(size, 4)).astype(np.float32) for size in (1, 3, 2)]
    requests = [{"input": utils.Tensor("input", batch)} for batch in batches]
    responses = model.execute(requests)  # three requests, as the dynamic batcher hands them over
    for batch, response in zip(batches, responses):
        assert response.error is None
        (tensor,) = response.output_tensors
        assert tensor.name == "probabilities" and tensor.array.shape == (len(batch), 3)
        expected = session.run(None, {"input": batch})[0]
        np.testing.assert_allclose(tensor.array, expected, atol=1e-6)


def test_generated_model_answers_a_failing_request_with_an_error(generated_model):
    model, utils = generated_model
    (response,) = model.execute([{"input": utils.Tensor("input", np.zeros((1, 5), np.float32))}])
    assert response.error is not None and "ONNX Runtime" in response.error.message


def test_config_names_that_the_onnx_file_lacks_are_refused(linear_repository, tmp_path):
    config_path = linear_repository / "linear" / "config.pbtxt"
    config_path.write_text(config_path.read_text().replace('name: "input"', 'name: "pixels"'))
    with pytest.raises(RepositoryError, match="has no input named 'pixels' .*its inputs: input"):
        stage_repository(linear_repository, tmp_path / "staged")


BROKEN = {
    "platform": ("config.pbtxt", "PLATFORM", "'tensorflow_savedmodel'.*--backend native --tritonserver PATH"),
    "config": ("config.pbtxt", "name: linear, oops {", "not a valid Triton ModelConfig"),
    "onnx-missing": ("1/model.onnx", None, "has no model.onnx"),
    "onnx-corrupt": ("1/model.onnx", "\x08\x01garbage", "not a readable ONNX model"),
    "name": ("config.pbtxt", "NAME", "names the model 'other' but its folder is 'linear'"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_model_that_cannot_be_staged_gets_a_clear_error(case, linear_repository, tmp_path, config_text):
    relative, text, message = BROKEN[case]
    path = linear_repository / "linear" / relative
    if text is None:
        path.unlink()
    else:
        text = {"PLATFORM": config_text().replace("onnxruntime_onnx", "tensorflow_savedmodel"),
                "NAME": config_text(name="other")}.get(text, text)
        path.write_text(text)
    with pytest.raises(RepositoryError, match=message):
        stage_repository(linear_repository, tmp_path / "staged")


def test_missing_or_empty_repository_says_how_to_make_one(tmp_path):
    with pytest.raises(RepositoryError, match="does not exist.*edgekit export"):
        stage_repository(tmp_path / "nowhere", tmp_path / "staged")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RepositoryError, match="holds no model.*edgekit export MODEL --to triton"):
        stage_repository(tmp_path / "empty", tmp_path / "staged")


def test_a_second_version_is_staged_too(linear_repository, tmp_path, onnx_writer):
    onnx_writer(linear_repository / "linear" / "2" / "model.onnx", seed=5)
    staged = stage_repository(linear_repository, tmp_path / "staged")
    assert staged.models[0].versions == [1, 2]
    assert (tmp_path / "staged" / "linear" / "2" / "model.py").is_file()
