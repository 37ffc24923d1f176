import json

import pytest

from edgekit import manifest, outputs
from edgekit.errors import ModelError, OutputExistsError


def test_non_empty_output_is_refused_without_force(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "keep.txt").write_text("earlier work")
    with pytest.raises(OutputExistsError, match="exists and is not empty; pass --force"):
        outputs.check_writable(final, force=False)
    outputs.check_writable(final, force=True)
    outputs.check_writable(tmp_path / "new", force=False)


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
