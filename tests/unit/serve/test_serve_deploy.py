"""``deploy_triton`` without a server: which export it takes, the version it adds, what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.errors import ModelError, OptionError, RunFailedError
from edgekit.manifest import sha256_file
from edgekit.models.folder import NotAModelFolderError
from edgekit.serve.deploy import deploy_triton, find_onnx_artifact
from edgekit.serve.reload import served_staging
from edgekit.errors import RepositoryError, ServeError

PREPROCESSING = {"scale": 0.5, "mean": 0.1, "std": 2.0}


def _export_folder(model_folder: Path, name: str, onnx_writer, precision: str = "fp32", seed: int = 0,
                   status: str = "passed", created: str = "2026-11-23T10:00:00+00:00") -> Path:
    folder = model_folder / name
    path = onnx_writer(folder / f"model_{precision}.onnx", seed=seed, preprocessing=PREPROCESSING)
    entry = {"name": f"onnx-{precision}", "format": "onnx", "precision": precision, "file": path.name,
             "sha256": sha256_file(path), "status": status,
             "fidelity": {"top1_agreement": 1.0, "failures": [] if status == "passed" else ["top-1 0.5 < 0.98"]}}
    manifest = {"stage": "export", "created": created, "parent": {"path": str(model_folder)},
                "artifacts": {entry["name"]: entry}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def model_folder(tmp_path, onnx_writer) -> Path:
    """A train folder (manifest only) with one export holding onnx-fp32."""
    folder = tmp_path / "models" / "linear"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"stage": "train", "name": "linear"}))
    _export_folder(folder, "export", onnx_writer)
    return folder


def test_first_deploy_writes_version_1_with_the_preprocessing_parameter(model_folder, tmp_path):
    from edgekit.serve.inputs import resolve_preprocessing
    from edgekit.formats.triton import read_model_config

    result = deploy_triton(model_folder, repository=tmp_path / "repo")
    assert (result.model_name, result.version, result.versions, result.exported) == ("linear", 1, [1], False)
    config = read_model_config(tmp_path / "repo" / "linear" / "config.pbtxt")
    assert config.platform == "onnxruntime_onnx"
    # export's config carries the preprocessing, as a full Triton returns it to `edgekit infer`
    from google.protobuf import json_format

    served = json_format.MessageToDict(config, preserving_proto_field_name=True)
    resolved = resolve_preprocessing("auto", served)
    assert resolved.known and resolved.preprocessing.std == 2.0
    lineage = json.loads((tmp_path / "repo" / "linear" / "1" / "edgekit.json").read_text())
    assert lineage["artifact"] == "onnx-fp32" and lineage["command"].startswith("edgekit deploy triton ")


def test_a_new_version_keeps_the_models_batching_instances_policy_and_labels(model_folder, tmp_path, onnx_writer):
    from edgekit.formats.triton import add_model_version
    from edgekit.formats.triton import read_model_config

    first = onnx_writer(tmp_path / "first.onnx", seed=3)
    add_model_version(tmp_path / "repo", "linear", first, class_names=["cat", "dog", "bird"],
                      max_batch_size=8, preferred_batch_sizes=(4,), max_queue_delay_us=300,
                      instance_count=2, version_policy="latest:2")
    result = deploy_triton(model_folder, repository=tmp_path / "repo")
    assert (result.version, result.versions) == (2, [1, 2])
    config = read_model_config(tmp_path / "repo" / "linear" / "config.pbtxt")
    assert config.max_batch_size == 8 and list(config.dynamic_batching.preferred_batch_size) == [4]
    assert config.dynamic_batching.max_queue_delay_microseconds == 300
    assert config.instance_group[0].count == 2 and config.version_policy.latest.num_versions == 2
    assert (tmp_path / "repo" / "linear" / "labels.txt").read_text() == "cat\ndog\nbird\n"
    assert config.output[0].label_filename == "labels.txt"


def test_the_newest_passed_export_of_the_precision_is_chosen(model_folder, onnx_writer):
    _export_folder(model_folder, "export-onnx-int8", onnx_writer, precision="int8")
    _export_folder(model_folder, "export-later", onnx_writer, seed=1, created="2026-11-24T10:00:00+00:00")
    _export_folder(model_folder, "export-failed", onnx_writer, seed=2, status="failed",
                   created="2026-11-25T10:00:00+00:00")
    folder, entry = find_onnx_artifact(model_folder, "fp32")
    assert folder.name == "export-later" and entry["status"] == "passed"
    assert find_onnx_artifact(model_folder, "fp16") is None
    assert find_onnx_artifact(model_folder / "export-onnx-int8", "int8")[0].name == "export-onnx-int8"


def test_an_export_that_failed_its_fidelity_check_is_refused(tmp_path, onnx_writer):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"stage": "compress"}))
    _export_folder(folder, "export", onnx_writer, status="failed")
    with pytest.raises(RunFailedError, match="onnx-fp32 artifact in .* failed its fidelity check .*top-1 0.5"):
        deploy_triton(folder, repository=tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_a_file_changed_since_export_is_refused(model_folder, tmp_path, onnx_writer):
    onnx_writer(model_folder / "export" / "model_fp32.onnx", seed=9)
    with pytest.raises(ModelError, match="changed since it was exported.*export the model again"):
        deploy_triton(model_folder, repository=tmp_path / "repo")


def test_a_version_with_other_inputs_is_refused(model_folder, tmp_path, config_text):
    folder = tmp_path / "repo" / "linear"
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config_text().replace("dims: [ 4 ]", "dims: [ 5 ]"))
    with pytest.raises(RepositoryError, match="has inputs .* but model 'linear' serves .*another --model-name"):
        deploy_triton(model_folder, repository=tmp_path / "repo")
    assert sorted(p.name for p in folder.iterdir()) == ["1", "config.pbtxt"]


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "nowhere", "has no edgekit manifest.json"),
    (lambda root: root, "has no edgekit manifest.json"),
])
def test_what_is_not_a_model_folder_is_refused(make, message, tmp_path):
    with pytest.raises(OptionError, match=message) as raised:
        deploy_triton(make(tmp_path), repository=tmp_path / "repo")
    assert isinstance(raised.value.__cause__, NotAModelFolderError)  # --verbose shows the cause


def test_an_export_folder_deploys_under_its_models_name(model_folder, tmp_path):
    result = deploy_triton(model_folder / "export", repository=tmp_path / "repo")
    assert (result.model_name, result.export_dir) == ("linear", model_folder / "export")


def test_a_folder_name_triton_cannot_take_is_made_a_safe_model_name(model_folder, tmp_path):
    renamed = model_folder.with_name("my linear (v2)")
    model_folder.rename(renamed)
    assert deploy_triton(renamed, repository=tmp_path / "repo").model_name == "my_linear__v2_"
    assert (tmp_path / "repo" / "my_linear__v2_" / "1" / "model.onnx").is_file()


def test_an_unknown_precision_is_refused(model_folder, tmp_path):
    with pytest.raises(OptionError, match="unknown precision 'int4'; expected one of: fp32, fp16, int8"):
        deploy_triton(model_folder, repository=tmp_path / "repo", precision="int4")


def test_an_unreachable_server_fails_before_the_repository_changes(model_folder, tmp_path, free_port):
    with pytest.raises(ServeError, match=f"cannot reach Triton at http://127.0.0.1:{free_port}"):
        deploy_triton(model_folder, repository=tmp_path / "repo", reload_url=f"http://127.0.0.1:{free_port}",
                      timeout=3)
    assert not (tmp_path / "repo").exists()


class _FakeClient:
    url = "http://127.0.0.1:1"

    def __init__(self, configs: dict):
        self.configs = configs

    def models(self):
        return [{"name": name, "version": "1", "state": "READY"} for name in self.configs]

    def config(self, name):
        return self.configs[name]


def _staged_config(source, staged):
    return {"parameters": {"EDGEKIT_SOURCE_REPOSITORY": {"string_value": str(source)},
                           "EDGEKIT_STAGED_REPOSITORY": {"string_value": str(staged)}}}


def test_the_server_tells_where_its_staging_copy_is(tmp_path):
    (tmp_path / "staged").mkdir()
    client = _FakeClient({"python_model": {}, "linear": _staged_config(tmp_path / "repo", tmp_path / "staged")})
    assert served_staging(client, tmp_path / "repo", "linear") == tmp_path / "staged"
    assert served_staging(_FakeClient({"native": {}}), tmp_path / "repo") is None
    with pytest.raises(ServeError, match=f"serves repository {tmp_path / 'repo'}, not {tmp_path / 'other'}"):
        served_staging(client, tmp_path / "other")


def test_restaging_links_a_new_version_and_drops_a_removed_one(linear_repository, tmp_path, onnx_writer):
    import shutil

    from edgekit.formats.triton import read_model_config
    from edgekit.serve.staging import restage_model, stage_repository

    staged = stage_repository(linear_repository, tmp_path / "staged")
    onnx_writer(linear_repository / "linear" / "2" / "model.onnx", seed=5)
    restaged = restage_model(linear_repository, staged.path, "linear")
    assert restaged.versions == [1, 2]
    version_2 = tmp_path / "staged" / "linear" / "2"
    assert (version_2 / "model.py").is_file()
    assert (version_2 / "model.onnx").resolve() == (linear_repository / "linear" / "2" / "model.onnx").resolve()
    config = read_model_config(tmp_path / "staged" / "linear" / "config.pbtxt")
    assert config.parameters["EDGEKIT_SOURCE_REPOSITORY"].string_value == str(linear_repository.resolve())
    assert config.parameters["EDGEKIT_STAGED_REPOSITORY"].string_value == str((tmp_path / "staged").resolve())
    shutil.rmtree(linear_repository / "linear" / "1")
    assert restage_model(linear_repository, staged.path, "linear").versions == [2]
    assert not (tmp_path / "staged" / "linear" / "1").exists()
    assert not list((tmp_path / "staged" / "linear").glob(".*"))  # no temporary files left
