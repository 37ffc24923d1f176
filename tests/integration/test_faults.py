"""Faults a user (or an attacker) can cause: nothing lost, nothing half-written, one line each.

Every case goes through the installed ``edgekit`` console script in a subprocess, as a user
types it, and checks the exit code, the one error line, and that earlier outputs are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest



def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict:
    """Every file below ``folder`` with its sha256: what must stay unchanged."""
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(result, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and len(lines) <= 4, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A trained mlp folder, its int8 child with an export, a bench and a report."""
    import edgekit

    root = tmp_path_factory.mktemp("faults")
    trained = root / "mlp-digits"
    edgekit.train(model="mlp", epochs=1, output_dir=trained, progress=False)
    child = root / "mlp-digits-int8"
    edgekit.compress(trained, output_dir=child, int8=True, calibration_samples=50, progress=False)
    edgekit.export(child, to="tflite,onnx,triton", onnx_precisions="fp32",
                   triton_repository=str(root / "repo"))
    from edgekit.bench.html import write_report

    write_report(child)
    return {"root": root, "trained": trained, "child": child}


@pytest.fixture
def run(tmp_path, edgekit_command):
    def invoke(*args, cwd=None, timeout=300):
        env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
        return subprocess.run([edgekit_command, *map(str, args)], cwd=cwd or tmp_path,
                              env=env, capture_output=True, text=True, timeout=timeout)

    return invoke


def test_compress_and_export_into_their_own_input_are_refused_even_with_force(folders, run):
    child = folders["child"]
    before = _tree(child)
    line = _one_error_line(run("compress", child, "--fp16", "--output", child, "--force"))
    assert "contains the input" in line and "--force or not" in line
    line = _one_error_line(run("export", child, "--to", "tflite", "--output", child, "--force"))
    assert "contains the input" in line
    assert _tree(child) == before


def test_report_never_replaces_a_model_file_or_a_foreign_file(folders, run, tmp_path):
    child = folders["child"]
    before = _tree(child)
    line = _one_error_line(run("report", child, "--output", child / "model.keras"))
    assert "not a .html path" in line
    line = _one_error_line(run("report", child, "--output", child / "export" / "model_fp32.tflite"))
    assert "not a .html path" in line
    foreign = tmp_path / "notes.html"
    foreign.write_text("<p>my notes</p>")
    line = _one_error_line(run("report", child, "--output", foreign, "--force"))
    assert "is not an edgekit report" in line and foreign.read_text() == "<p>my notes</p>"
    assert _tree(child) == before
    page = tmp_path / "page.html"
    assert run("report", child, "--output", page).returncode == 0
    line = _one_error_line(run("report", child, "--output", page))
    assert "pass --force" in line
    assert run("report", child, "--output", page, "--force").returncode == 0


def test_force_replaces_only_a_folder_edgekit_wrote(folders, run, tmp_path):
    mine = tmp_path / "my-stuff"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    line = _one_error_line(run("compress", folders["trained"], "--fp16", "--output", mine,
                               "--force"))
    assert "did not write" in line and (mine / "thesis.tex").read_text() == "years of work"
    line = _one_error_line(run("compress", folders["trained"], "--fp16", "--output",
                               folders["trained"], "--force"))
    assert "contains the input" in line


def test_outputs_that_cannot_be_renamed_into_place_are_refused_before_any_work(folders, run,
                                                                              tmp_path):
    line = _one_error_line(run("compress", folders["trained"], "--fp16", "--output", ".",
                               cwd=tmp_path))
    assert "the current folder" in line
    line = _one_error_line(run("compress", folders["trained"], "--fp16", "--output", "/"))
    assert "mount point" in line or "parent of the current folder" in line
    assert list(tmp_path.iterdir()) == []


def test_a_second_writer_of_the_same_output_fails_at_once_naming_the_first(folders, run,
                                                                           tmp_path,
                                                                           edgekit_command,
                                                                           interruptible):
    output = tmp_path / "long"
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    first = subprocess.Popen([edgekit_command, "train", "--model", "mlp", "--epochs", "400",
                              "--early-stopping", "0", "--output", str(output)], cwd=tmp_path,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=interruptible)
    try:
        lock = tmp_path / ".long.lock"
        deadline = time.time() + 60
        while not (lock.is_file() and lock.read_text().strip()) and time.time() < deadline:
            time.sleep(0.2)
        assert lock.is_file(), "the first run never took its lock"
        started = time.time()
        line = _one_error_line(run("train", "--model", "mlp", "--epochs", "1", "--output", output))
        assert time.time() - started < 30
        assert f"process {first.pid}" in line and "another edgekit run" in line
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    assert not lock.exists() or lock.read_text() == ""


def test_a_full_disk_during_report_keeps_the_previous_page_and_leaves_no_partial_file(
        folders, run, tmp_path):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "small"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        page = disk / "report.html"
        page.write_text("<!doctype html><html><head><meta name='generator' "
                        "content='edgekit report'><title>edgekit report: old</title>")
        earlier = page.read_text()
        (disk / "filler").write_bytes(b"\0" * (60 * 1024 - len(earlier)))
        line = _one_error_line(run("report", folders["child"], "--output", page, "--force"), 1)
        assert "the disk is full" in line and str(disk) in line
        assert page.read_text() == earlier
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "report.html"]
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_bench_where_every_artifact_fails_prints_its_table_and_exits_1(run, tmp_path):
    (tmp_path / "bad.tflite").write_bytes(os.urandom(600))
    (tmp_path / "bad.onnx").write_bytes(os.urandom(300))
    result = run("bench", "bad.tflite", "bad.onnx", "--dataset", "digits", "--preprocess", "none",
                 "--output", "out")
    line = _one_error_line(result, 1)
    assert "2 of 2 artifact(s) could not be measured" in line
    assert "bad.tflite  failed: cannot load TFLite model" in result.stdout
    report = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert {row["status"] for row in report["artifacts"]} == {"failed"}


def test_class_names_with_control_characters_give_one_label_line_per_class(tmp_path):
    from edgekit.formats.labels import labels_text

    names = ["t-shirt", "two\nlines", "tab\there", "bell\x07", "café"]
    text = labels_text(names)
    assert text.count("\n") == len(names)
    assert text.splitlines() == ["t-shirt", "two\\nlines", "tab\\there", "bell\\x07", "café"]


def test_the_lock_is_released_when_its_process_dies(tmp_path):
    """A crashed run's lock never blocks the next run: flock dies with its process."""
    code = ("import sys, os; sys.path.insert(0, %r); from edgekit.outputs import OutputLock; "
            "lock = OutputLock(%r).__enter__(); print('locked', flush=True); os.kill(os.getpid(), 9)"
            % (str(Path(__file__).resolve().parents[2]), str(tmp_path / "out")))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "locked" in result.stdout and result.returncode == -9
    from edgekit.outputs import OutputLock

    with OutputLock(tmp_path / "out"):
        pass


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _free_ports(count: int = 3) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for probe in sockets:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in sockets]
    for probe in sockets:
        probe.close()
    return ports


def _serve(edgekit_command, repository, ports, tmp_path, preexec_fn):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    process = subprocess.Popen([edgekit_command, "serve", str(repository),
                                "--http-port", str(ports[0]), "--grpc-port", str(ports[1]),
                                "--metrics-port", str(ports[2])], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               preexec_fn=preexec_fn)
    for line in process.stdout:
        if line.startswith("ready"):
            return process
    raise AssertionError(f"serve never became ready (exit {process.wait()})")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_serve_killed_with_sigkill_takes_its_triton_server_with_it(folders, tmp_path,
                                                                   edgekit_command,
                                                                   interruptible):
    ports = _free_ports()
    first = _serve(edgekit_command, folders["root"] / "repo", ports, tmp_path, interruptible)
    servers = _children(first.pid)
    assert servers, "serve started no child process"
    first.kill()  # SIGKILL: no handler of ours runs
    first.wait()
    deadline = time.time() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in servers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}/stat").exists()
                   and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z" for pid in servers)
    second = _serve(edgekit_command, folders["root"] / "repo", ports, tmp_path,  # same ports
                    interruptible)
    try:
        import numpy as np

        np.save(tmp_path / "x.npy", np.zeros((8, 8, 1), np.float32))
        env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
        wrong = subprocess.run([edgekit_command, "infer", "--url", f"http://127.0.0.1:{ports[1]}",
                                "x.npy"], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=120)
        line = _one_error_line(wrong, 1)  # HTTP spoken to the gRPC port
        assert "answered, but not in HTTP" in line and "--protocol grpc" in line
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=60)


def test_bench_marks_an_artifact_whose_sha256_left_its_manifest(folders, run, tmp_path):
    child = tmp_path / "child"
    shutil.copytree(folders["child"], child)
    # Still a loadable .tflite (padding after the flatbuffer), but not the bytes export recorded.
    with open(child / "export" / "model_fp32.tflite", "ab") as handle:
        handle.write(b"\0" * 16)
    result = run("bench", child, "--only", "tflite-fp32", "--samples", "30", "--min-runs", "5",
                 "--min-seconds", "0.05", "--warmup-runs", "1")
    assert result.returncode == 0, result.stderr
    report = json.loads((child / "bench" / "bench.json").read_text())
    assert report["artifacts"][0]["integrity"] == "mismatch"
    assert "sha256 differs from the one its manifest recorded" in result.stdout


@pytest.mark.parametrize("content", ["[]", "null", "{\"model\": 3}", "{not json"])
def test_a_manifest_of_the_wrong_shape_is_one_line(folders, run, tmp_path, content):
    child = tmp_path / "child"
    shutil.copytree(folders["child"], child)
    (child / "manifest.json").write_text(content)
    for command in (["export", child, "--to", "tflite"], ["bench", child], ["report", child],
                    ["compress", child, "--fp16", "--output", tmp_path / "out"]):
        line = _one_error_line(run(*command))
        assert "manifest.json" in line
    assert not (tmp_path / "out").exists()


def test_a_non_json_bench_json_is_one_line_for_report(folders, run, tmp_path):
    child = tmp_path / "child"
    shutil.copytree(folders["child"], child)
    (child / "bench").mkdir(exist_ok=True)
    (child / "bench" / "bench.json").write_text("not json at all")
    line = _one_error_line(run("report", child))
    assert "bench.json is not JSON" in line


@pytest.mark.parametrize("values, message", [
    ("strings", "holds <U"),
    ("complex", "holds complex"),
    ("nan", "NaN or infinite"),
])
def test_infer_refuses_npy_inputs_that_are_not_finite_real_numbers(tmp_path, values, message):
    import numpy as np

    from edgekit.errors import DataError
    from edgekit.serve.inputs import load_batch, resolve_preprocessing

    array = {"strings": np.array([["a"] * 8] * 8), "complex": np.ones((8, 8, 1), np.complex64),
             "nan": np.full((8, 8, 1), np.nan, np.float32)}[values]
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=message):
        load_batch(tmp_path / "x.npy", [8, 8, 1], "float32", resolve_preprocessing("none", {}))


def test_a_sparse_label_set_is_refused_with_the_offending_values(run, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    y_train = np.array([0, 1, 2] * 10 + [99])
    np.savez(tmp_path / "sparse.npz", x_train=rng.integers(0, 255, (31, 6, 6, 1)).astype(np.uint8),
             y_train=y_train, x_test=rng.integers(0, 255, (6, 6, 6, 1)).astype(np.uint8),
             y_test=np.array([0, 1, 2, 0, 1, 99]))
    line = _one_error_line(run("train", "--model", "mlp", "--dataset", "npz:sparse.npz",
                               "--epochs", "1", "--output", "out"))
    assert "96 of the 100 classes" in line and "labels present: 0, 1, 2, 99" in line
    assert not (tmp_path / "out").exists()


def test_a_corrupt_checkpoint_and_a_refused_resume_are_clean(folders, run, tmp_path):
    trained = tmp_path / "trained"
    shutil.copytree(folders["trained"], trained)
    before = _tree(trained)
    line = _one_error_line(run("train", "--output", trained, "--resume", "--epochs", "3",
                               "--batch-size", "64"))
    assert "--resume continues a run with batch_size=32" in line
    assert _tree(trained) == before and not (tmp_path / ".trained.partial").exists()
    (trained / "checkpoints" / "state.json").write_text("{cut off")
    line = _one_error_line(run("train", "--output", trained, "--resume", "--epochs", "3"))
    assert "state.json is not JSON" in line and "--force" in line
    assert not (tmp_path / ".trained.partial").exists()


def test_an_interruption_after_the_output_is_committed_exits_0(tmp_path):
    import click
    from click.testing import CliRunner

    from edgekit import outputs
    from edgekit.cli.common import EdgekitGroup

    @click.command("make")
    def make():
        staging = outputs.staging_path(tmp_path / "result")
        staging.mkdir()
        (staging / "done.txt").write_text("complete")
        outputs.publish(staging, tmp_path / "result")
        raise KeyboardInterrupt  # Ctrl-C while the summary prints

    @click.command("fail")
    def fail():
        raise KeyboardInterrupt  # Ctrl-C before anything was written

    group = EdgekitGroup("edgekit", commands={"make": make, "fail": fail})
    outputs.COMMITTED.clear()
    failed = CliRunner().invoke(group, ["fail"])
    assert failed.exit_code == 130 and "nothing was written" in failed.output
    made = CliRunner().invoke(group, ["make"])
    outputs.COMMITTED.clear()
    assert made.exit_code == 0 and "it is complete" in made.output
    assert (tmp_path / "result" / "done.txt").read_text() == "complete"


def test_outputs_inside_the_input_model_folder_are_refused(folders, run, tmp_path):
    child = tmp_path / "child"
    shutil.copytree(folders["child"], child)
    before = _tree(child)
    line = _one_error_line(run("compress", child, "--fp16", "--output", child / "sub"))
    assert "lies inside the input" in line
    line = _one_error_line(run("export", child, "--to", "onnx,triton", "--onnx-precisions", "fp32",
                               "--output", tmp_path / "exported", "--triton-repository",
                               child / "repo"))
    assert "--triton-repository" in line
    assert _tree(child) == before


def test_a_tensorflow_disk_error_is_one_os_error_line():
    from edgekit._compat import os_error_from_tensorflow

    class ResourceExhaustedError(Exception):
        __module__ = "tensorflow.python.framework.errors_impl"

    error = ResourceExhaustedError(
        "{{function_node __wrapped__SaveV2_dtypes_15_device_/job:localhost/replica:0/task:0/device:"
        "CPU:0}} /data/run/.out.partial/checkpoints/epoch-0001_temp/part-00000-of-00001.data; "
        "No space left on device [Op:SaveV2]")
    converted = os_error_from_tensorflow(error)
    assert converted.errno == __import__("errno").ENOSPC
    assert converted.filename == "/data/run/.out.partial/checkpoints"
    assert os_error_from_tensorflow(ValueError("No space left on device")) is None
