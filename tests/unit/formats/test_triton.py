"""The Triton model repository: config built from the ONNX graph, parsed by Triton's protobuf."""

from __future__ import annotations

import json

import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from edgekit.errors import ModelError, OptionError
from edgekit.formats.triton import (add_model_version, build_model_config, parse_version_policy,
                                   read_model_config)


def _parse(path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_config_parses_into_model_config_with_the_graphs_names_and_dims(tmp_path, onnx_file):
    added = add_model_version(tmp_path / "repo", "tiny", onnx_file, class_names=["a", "b", "c"],
                              max_batch_size=16, preferred_batch_sizes=(4, 8),
                              max_queue_delay_us=250, instance_count=2, instance_kind="gpu",
                              version_policy="latest:2")
    config = _parse(tmp_path / "repo" / "tiny" / "config.pbtxt")
    graph = onnx.load(str(onnx_file)).graph
    assert config.name == "tiny" and config.platform == "onnxruntime_onnx"
    assert [i.name for i in config.input] == [i.name for i in graph.input] == ["input"]
    assert [o.name for o in config.output] == [o.name for o in graph.output] == ["probabilities"]
    assert config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert list(config.input[0].dims) == [4] and list(config.output[0].dims) == [3]
    assert config.max_batch_size == 16
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    assert config.instance_group[0].count == 2
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert config.version_policy.latest.num_versions == 2
    assert config.output[0].label_filename == "labels.txt"
    assert (tmp_path / "repo" / "tiny" / "labels.txt").read_text() == "a\nb\nc\n"
    assert added["version"] == 1 and (tmp_path / "repo" / "tiny" / "1" / "model.onnx").is_file()


def test_a_second_version_keeps_the_first(tmp_path, onnx_file):
    first = add_model_version(tmp_path, "tiny", onnx_file, lineage={"run": 1})
    second = add_model_version(tmp_path, "tiny", onnx_file, lineage={"run": 2})
    assert (first["version"], second["version"]) == (1, 2)
    assert second["versions"] == [1, 2]
    for version in (1, 2):
        assert (tmp_path / "tiny" / str(version) / "model.onnx").read_bytes() == onnx_file.read_bytes()
        assert json.loads((tmp_path / "tiny" / str(version) / "edgekit.json").read_text()) == {
            "run": version}
    assert not list((tmp_path / "tiny").glob(".*"))


def test_fixed_batch_graph_gets_max_batch_size_0_and_full_dims(fixed_batch_onnx_classifier):
    config = build_model_config("fixed", fixed_batch_onnx_classifier, max_batch_size=32)
    assert config.max_batch_size == 0
    assert list(config.input[0].dims) == [1, 4]
    assert not config.HasField("dynamic_batching")


def test_fp16_io_maps_to_triton_fp16(onnx_classifier):
    onnx_classifier.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    config = build_model_config("half", onnx_classifier)
    assert config.input[0].data_type == model_config_pb2.TYPE_FP16


@pytest.mark.parametrize("text, expected", [
    ("latest:1", {"latest": {"num_versions": 1}}),
    ("all", {"all": {}}),
    ("specific:1,3", {"specific": {"versions": [1, 3]}}),
])
def test_version_policies(text, expected):
    assert parse_version_policy(text) == expected


@pytest.mark.parametrize("text", ["latest:0", "specific:", "every", "all:2", "latest:x"])
def test_bad_version_policy_is_refused(text):
    with pytest.raises(OptionError, match="unknown version policy"):
        parse_version_policy(text)


def test_bad_model_name_is_refused(tmp_path, onnx_file):
    with pytest.raises(OptionError, match="not usable as a folder name"):
        add_model_version(tmp_path, "../escape", onnx_file)


def test_a_broken_config_gets_a_clean_error(tmp_path):
    (tmp_path / "config.pbtxt").write_text('name: "x"\nmax_batch_size: "many"\n')
    with pytest.raises(ModelError, match="does not parse as ModelConfig"):
        read_model_config(tmp_path)
