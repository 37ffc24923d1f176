import json

import pytest

from edgekit import manifest, outputs
from edgekit.errors import ModelError, OutputExistsError


def test_non_empty_output_is_refused_without_force(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "manifest.json").write_text(json.dumps({"stage": "compress"}))
    (final / "keep.txt").write_text("earlier work")
    with pytest.raises(OutputExistsError, match="exists and is not empty; pass --force to replace "
                                                "it, or choose"):
        outputs.check_output(final, False, ("compress",))
    with pytest.raises(OutputExistsError, match="pass --force to replace it, --resume"):
        outputs.check_output(final, False, ("compress", "train"))
    outputs.check_output(final, True, ("compress",))
    outputs.check_output(tmp_path / "new", False, ("compress",))


def test_force_never_replaces_a_folder_edgekit_did_not_write(tmp_path):
    final = tmp_path / "mine"
    final.mkdir()
    (final / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputExistsError, match="edgekit did not write"):
        outputs.check_output(final, True, ("compress",))
    (final / "manifest.json").write_text(json.dumps({"stage": "train"}))
    with pytest.raises(OutputExistsError, match="is an edgekit train folder"):
        outputs.check_output(final, True, ("export",))


def test_an_output_that_is_holds_or_lies_in_an_input_is_refused(tmp_path):
    from edgekit.errors import OptionError

    data = tmp_path / "images"
    data.mkdir()
    model = tmp_path / "models" / "m.keras"
    model.parent.mkdir()
    model.write_bytes(b"x")
    with pytest.raises(OptionError, match="contains the input"):
        outputs.check_output(tmp_path / "models", True, ("compress",), inputs=(model,))
    with pytest.raises(OptionError, match="lies inside the input"):
        outputs.check_output(data / "out", True, ("compress",), inputs=(data,))
    with pytest.raises(OptionError, match="is the input"):
        outputs.check_output(data, True, ("compress",), inputs=(data,))


def test_publish_replaces_only_when_the_new_folder_is_complete(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "old.txt").write_text("old")
    staging = outputs.staging_path(final)
    assert staging.name == ".model.partial"
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    outputs.publish(staging, final)
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert not staging.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_manifest_records_every_file_with_its_sha256(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"abc")
    (tmp_path / "sub" / "b.txt").write_text("hello")
    manifest.write_manifest(tmp_path, {"kind": "model"})
    written = manifest.read_manifest(tmp_path)
    assert written["files"]["a.bin"] == {
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "bytes": 3}
    assert set(written["files"]) == {"a.bin", "sub/b.txt"}
    assert written["schema_version"] == manifest.SCHEMA_VERSION


def test_missing_or_corrupt_manifest_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="has no manifest.json"):
        manifest.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{truncated")
    with pytest.raises(ModelError, match="is not valid JSON"):
        manifest.read_manifest(tmp_path)


def test_machine_names_cpu_flags_and_cores():
    described = manifest.machine()
    assert described["cores"] >= 1 and described["cpu"]
    assert isinstance(described["cpu_flags"], list)
    json.dumps(manifest.versions())
