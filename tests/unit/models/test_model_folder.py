"""``ModelFolder`` on folders edgekit wrote: train -> compress (int8) -> export (ONNX fp32).

One tiny chain is written once per module (an MLP, one epoch on digits: about 10 s); a test
that damages a folder works on a copy of it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgekit.data.contract import InputContract
from edgekit.errors import ModelError
from edgekit.manifest import sha256_file
from edgekit.models.folder import ModelFolder, NotAModelFolderError, safe_model_name


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    """``{"trained", "compressed", "export"}``: real folders, each the parent of the next."""
    import edgekit
    from edgekit.compress import compress
    from edgekit.export import export

    root = tmp_path_factory.mktemp("models")
    trained, compressed = root / "mlp-digits", root / "mlp-digits-int8"
    edgekit.train(model="mlp", epochs=1, output_dir=trained, progress=False)
    compress(str(trained), output_dir=compressed, int8=True, calibration_samples=100, progress=False)
    result = export(compressed, to=("onnx",), onnx_precisions=("fp32",))
    return {"trained": trained, "compressed": compressed, "export": result.output_dir}


@pytest.fixture
def copied(chain, tmp_path) -> dict[str, Path]:
    """A copy of the compressed folder and its export/ to damage; the trained parent is the original."""
    compressed = tmp_path / "mlp-digits-int8"
    shutil.copytree(chain["compressed"], compressed)
    export = compressed / "export"
    record = json.loads((export / "manifest.json").read_text())["parent"]
    _edit_manifest(export, parent={**record, "path": str(compressed),
                                   "manifest": str(compressed / "manifest.json")})
    return {"trained": chain["trained"], "compressed": compressed, "export": export}


def _edit_manifest(folder: Path, **changes) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_an_export_folders_chain_runs_through_compress_to_the_training_run(chain):
    folders = ModelFolder.open(chain["export"]).chain()
    assert [folder.stage for folder in folders] == ["export", "compress", "train"]
    assert [folder.kind for folder in folders] == ["export", "compression", "training"]
    assert folders[1].path.resolve() == chain["compressed"].resolve()
    assert folders[2].path.resolve() == chain["trained"].resolve()
    assert ModelFolder.open(chain["trained"]).parent() is None  # trained from scratch


def test_artifacts_are_found_by_format_and_precision_and_checked_against_their_sha256(chain):
    compressed = ModelFolder.open(chain["compressed"])
    keras = compressed.find_artifact("keras", verify=True)
    assert (keras.path, keras.precision) == (chain["compressed"] / "model.keras", "fp32")
    tflite = compressed.find_artifact("tflite", "int8", verify=True)
    assert (tflite.name, tflite.path) == ("tflite-int8", chain["compressed"] / "model.tflite")
    assert tflite.sha256 == sha256_file(chain["compressed"] / "model.tflite")
    onnx = compressed.find_artifact("onnx", "fp32", verify=True)
    assert (onnx.name, onnx.status, onnx.folder.stage) == ("onnx-fp32", "passed", "export")
    assert onnx.path == chain["export"] / "model_fp32.onnx"
    assert compressed.find_artifact("onnx-fp32").path == onnx.path
    assert compressed.find_artifact("onnx", "int8") is None
    assert compressed.find_artifact("onnx", "fp32", include_exports=False) is None
    assert compressed.find_artifact("tflite", "fp16") is None


def test_a_changed_artifact_passes_unchecked_and_fails_when_verified(copied):
    (copied["export"] / "model_fp32.onnx").write_bytes(b"not the file that was checked")
    folder = ModelFolder.open(copied["compressed"])
    assert folder.find_artifact("onnx", "fp32").path.name == "model_fp32.onnx"
    with pytest.raises(ModelError, match=r"model_fp32.onnx changed since it was exported and checked "
                                         r"\(sha256 differs from its manifest\); export the model again"):
        folder.find_artifact("onnx", "fp32", verify=True)
    (copied["compressed"] / "model.keras").write_bytes(b"changed")
    with pytest.raises(ModelError, match="model.keras changed since it was compressed.*compress the model again"):
        folder.find_artifact("keras", verify=True)


def test_a_missing_artifact_names_the_manifest_that_lists_it(copied):
    (copied["compressed"] / "model.tflite").unlink()
    with pytest.raises(ModelError, match=r"model.tflite is missing \(listed in .*mlp-digits-int8/manifest.json\); "
                                         "compress the model again"):
        ModelFolder.open(copied["compressed"]).find_artifact("tflite-int8", verify=True)


def test_the_input_contract_is_the_one_the_manifest_recorded(chain):
    for name in ("trained", "compressed", "export"):
        contract = ModelFolder.open(chain[name]).input_contract()
        recorded = json.loads((chain[name] / "manifest.json").read_text())["input_contract"]
        assert isinstance(contract, InputContract) and contract.to_dict() == recorded


def test_a_folder_without_a_contract_has_none(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"stage": "train"}))
    assert ModelFolder.open(tmp_path).input_contract() is None


def test_a_setting_comes_from_the_nearest_folder_that_recorded_it(chain):
    export = ModelFolder.open(chain["export"])
    assert export.setting("calibration_samples") == 100  # compress's calibration section
    assert export.setting("epochs") == 1  # only the training run has it
    assert export.setting("model") == str(chain["trained"])  # compress's config, before train's "mlp"
    assert export.setting("data_dir", "none recorded") == "none recorded"


def test_exports_and_the_model_name_of_an_export_folder(chain):
    compressed = ModelFolder.open(chain["compressed"])
    assert [folder.path for folder in compressed.exports()] == [chain["export"]]
    export = ModelFolder.open(chain["export"])
    assert export.is_export and export.exports() == [export]
    assert (export.model_name, compressed.model_name) == ("mlp-digits-int8", "mlp-digits-int8")
    assert compressed.tflite_mode == "int8" and ModelFolder.open(chain["trained"]).tflite_mode is None


def test_the_folder_recording_a_file_is_found_by_its_sha256(chain, tmp_path):
    folder, artifact = ModelFolder.recording(chain["export"] / "model_fp32.onnx")
    assert (folder.stage, artifact.name) == ("export", "onnx-fp32")
    folder, artifact = ModelFolder.recording(chain["compressed"] / "model.tflite")
    assert (folder.stage, artifact.name) == ("compress", "tflite-int8")
    folder, artifact = ModelFolder.recording(chain["trained"] / "checkpoints" / "state.json")
    assert (folder.stage, artifact) == ("train", None)  # listed among its files, not an artifact
    stranger = tmp_path / "model.onnx"
    shutil.copyfile(chain["export"] / "model_fp32.onnx", stranger)
    stranger.write_bytes(stranger.read_bytes() + b"\0")
    assert ModelFolder.recording(stranger) is None


def test_a_parent_that_is_gone_or_a_model_file_ends_the_chain(copied, tmp_path):
    folder = copied["compressed"]
    _edit_manifest(folder, parent={"path": str(tmp_path / "gone"), "absolute_path": str(tmp_path / "gone")})
    assert ModelFolder.open(folder).parent() is None
    assert [f.stage for f in ModelFolder.open(folder).chain()] == ["compress"]
    (tmp_path / "mine.keras").write_bytes(b"a user's model file")
    _edit_manifest(folder, parent={"path": str(tmp_path / "mine.keras")})
    assert ModelFolder.open(folder).parent() is None
    (tmp_path / "plain").mkdir()  # a folder edgekit did not write
    _edit_manifest(folder, parent={"path": str(tmp_path / "plain")})
    assert ModelFolder.open(folder).chain() == [ModelFolder.open(folder)]


def test_a_parent_cycle_ends_the_chain_instead_of_looping(copied, tmp_path):
    first, second = copied["compressed"], tmp_path / "second"
    shutil.copytree(first, second)
    _edit_manifest(first, parent={"path": str(second)})
    _edit_manifest(second, parent={"path": str(first)})
    assert [f.path for f in ModelFolder.open(first).chain()] == [first, second]
    assert ModelFolder.open(first).setting("epochs", "not found") == "not found"  # ends as well
    _edit_manifest(first, parent={"absolute_path": str(first.resolve())})  # its own parent
    assert [f.path for f in ModelFolder.open(first).chain()] == [first]


def test_a_broken_parent_manifest_raises_when_strict_and_ends_the_lineage_otherwise(copied, tmp_path):
    parent = tmp_path / "broken-parent"
    parent.mkdir()
    (parent / "manifest.json").write_text("{not json")
    _edit_manifest(copied["compressed"], parent={"path": str(parent)})
    folder = ModelFolder.open(copied["export"])
    with pytest.raises(ModelError, match=r"broken-parent/manifest.json is not valid JSON") as raised:
        folder.chain()
    assert isinstance(raised.value.__cause__, json.JSONDecodeError)
    assert [f.stage for f in folder.chain(strict=False)] == ["export", "compress"]


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "nowhere", r"model folder '.*nowhere' does not exist; expected a folder written by edgekit"),
    (lambda root: (root / "file.txt").write_text("x") and root / "file.txt", "is a file"),
    (lambda root: root, "has no manifest.json; expected a folder written by edgekit train, compress or export"),
])
def test_what_edgekit_did_not_write_is_not_a_model_folder(make, message, tmp_path):
    path = make(tmp_path)
    with pytest.raises(NotAModelFolderError, match=message):
        ModelFolder.open(path)
    assert ModelFolder.find(path) is None


@pytest.mark.parametrize("manifest, message", [
    ("[1, 2]", "holds a list that is not an edgekit manifest"),
    (json.dumps({"stage": "train", "parent": "models/x"}), "has a 'parent' entry of type str; expected an object"),
    (json.dumps({"stage": 3}), "has a 'stage' entry of type int; expected a string"),
])
def test_a_malformed_manifest_is_one_clear_error(manifest, message, tmp_path):
    (tmp_path / "manifest.json").write_text(manifest)
    with pytest.raises(ModelError, match=message):
        ModelFolder.find(tmp_path)


def test_a_model_name_becomes_a_folder_name():
    assert safe_model_name("my model (v2)") == "my_model__v2_"
    assert safe_model_name("cnn-digits.int8") == "cnn-digits.int8"
    assert safe_model_name("__") == "model"
