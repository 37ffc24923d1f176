"""Reliability battery (issue 11): bad input, broken files, interruptions, full disks, serving,
concurrency and attacks, each tried through the real ``edgekit`` command; rewrites the
reliability section of benchmarks/RESULTS.md.

Usage:
    .venv/bin/python benchmarks/reliability.py                  # every case; writes RESULTS.md
    .venv/bin/python benchmarks/reliability.py --quick          # ~15 cases; prints, no RESULTS.md
    .venv/bin/python benchmarks/reliability.py --classes serving,security   # some classes; prints
    .venv/bin/python benchmarks/reliability.py --cases lambda   # cases whose name holds a word

Shared fixtures are built once in benchmarks/out/reliability/fixtures (``edgekit train --model
mlp --epochs 1`` on digits, ``compress --int8``, ``export --to tflite,onnx,triton,mobile``, a
short ``bench``, ``report``, plus a Lambda .h5 / .keras and a few inputs). Every case gets a fresh
folder under benchmarks/out/reliability/cases/ holding a copy of all of them, runs one ``edgekit``
command there in a subprocess (environment without TF_USE_LEGACY_KERAS) and records: the exit
code against the documented one (2 bad input, 1 a failed check or an OS error, 0 success, 130
interrupted), the stderr line count, a traceback, anything half-written (new 0-byte files,
``.partial`` / ``.tmp`` / ``.old-`` leftovers, a lock file left behind, new files after a failed
run, an orphaned Triton server, a serve staging folder left), whether every earlier file keeps
its sha256 (except the case's expected output) and the case's own check (a marker file that
must never appear, one labels.txt line per class, ...). A case is clean when all of them hold.

Full disks are small tmpfs mounts and read-only folders tmpfs remounts (root only; skipped with a
note otherwise); EACCES runs the command without CAP_DAC_OVERRIDE (``setpriv``) since root never
gets it; EMFILE runs under ``prlimit --nofile``. Serving cases use one shared ``edgekit serve``
on free loopback ports. Clean case folders are removed at the end (``--keep`` keeps them); the
records go to benchmarks/out/reliability.json (reliability_partial.json for --quick / filtered).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import machine_line, replace_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"
WORK = OUT / "reliability"
FIXTURES = WORK / "fixtures"
CASES_DIR = WORK / "cases"
LOGS = WORK / "logs"
SERVER_DIR = WORK / "server"
EDGEKIT = Path(sys.executable).with_name("edgekit")
if not EDGEKIT.exists():
    EDGEKIT = REPO / ".venv" / "bin" / "edgekit"
# What a user's shell gives edgekit: never TF_USE_LEGACY_KERAS (edgekit sets it itself).
ENV = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}

T = "mlp-digits"          # the trained fixture (edgekit train)
K = "mlp-digits-int8"     # its int8 child, exported, benchmarked and reported
FAST_BENCH = ["--warmup-runs", "2", "--warmup-seconds", "0", "--min-runs", "5",
              "--min-seconds", "0.05", "--max-windows", "2", "--samples", "100"]
TRAIN = ["train", "--model", "mlp", "--epochs", "1"]
LONG_TRAIN = ["train", "--model", "mlp", "--epochs", "400", "--early-stopping", "0"]
MARKER = "PWNED_MARKER"
LONG_NAME = "n" * 300
SETPRIV = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


class Skip(Exception):
    """The case cannot run on this machine (e.g. mounting a tmpfs is not permitted)."""


class Invalid(Exception):
    """The case could not provoke what it tests (its setup failed); neither clean nor unclean."""


@dataclass
class Case:
    cls: str
    name: str
    args: list | Callable               # after ``edgekit``; or ctx -> list
    expect: tuple                       # accepted exit codes (sorted tuples for two processes)
    setup: Callable | None = None       # ctx -> None, before the "before" hashes
    may_change: tuple = ()              # globs: the expected output (may appear or change)
    leftovers_ok: tuple = ()            # globs of leftovers that are by design (train staging)
    verify: Callable | None = None      # (ctx, run) -> list of problems
    runner: Callable | None = None      # (ctx, args) -> Run; default: one process to its end
    prefix: tuple = ()                  # setpriv / prlimit before edgekit
    cwd: str = ""                       # sub-folder of the case folder to run in
    quick: bool = False
    server: bool = False                # needs the shared edgekit serve
    after: str = ""                     # start from this earlier case's folder, not the fixtures
    timeout: float = 600
    how: str = ""                       # how the command is run, when it is not plain


@dataclass
class Run:
    codes: list
    stdout: list
    stderr: list
    display: str
    seconds: float
    extra: dict = field(default_factory=dict)


@dataclass
class Ctx:
    case: Case
    dir: Path
    log: Path
    vars: dict = field(default_factory=dict)
    mounts: list = field(default_factory=list)
    sockets: list = field(default_factory=list)
    procs: list = field(default_factory=list)
    before: dict = field(default_factory=dict)
    half: list = field(default_factory=list)
    checks: list = field(default_factory=list)

    def p(self, rel: str) -> Path:
        return self.dir / rel


# --------------------------------------------------------------------------------------------
# Processes


def _command_line(args: list, prefix=()) -> list[str]:
    return [*map(str, prefix), str(EDGEKIT), *map(str, args)]


def display(args: list, prefix=()) -> str:
    return shlex.join([*map(str, prefix), "edgekit", *map(str, args)])


def launch(ctx: Ctx, args: list, prefix=(), tag: str = "") -> subprocess.Popen:
    out_path = ctx.log.with_name(f"{ctx.log.name}{tag}.out")
    err_path = ctx.log.with_name(f"{ctx.log.name}{tag}.err")
    out, err = open(out_path, "w"), open(err_path, "w")
    process = subprocess.Popen(_command_line(args, prefix), cwd=ctx.dir / ctx.case.cwd, env=ENV,
                               stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    process.files = (out, err, out_path, err_path)
    ctx.procs.append(process)
    return process


def finish(process: subprocess.Popen, timeout: float):
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process, signal.SIGKILL)
        process.wait()
        code = "timeout"
    out, err, out_path, err_path = process.files
    out.close()
    err.close()
    return code, out_path.read_text(errors="replace"), err_path.read_text(errors="replace")


def _kill_group(process: subprocess.Popen, sig) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_plain(ctx: Ctx, args: list) -> Run:
    started = time.time()
    process = launch(ctx, args, ctx.case.prefix)
    code, out, err = finish(process, ctx.case.timeout)
    return Run([code], [out], [err], display(args, ctx.case.prefix), time.time() - started)


def setup_edgekit(ctx: Ctx, *args, ok=(0,), timeout=600) -> str:
    """Run edgekit as part of a case's setup (not recorded); its failure makes the case invalid."""
    result = subprocess.run(_command_line(args), cwd=ctx.dir, env=ENV, capture_output=True,
                            text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if result.returncode not in ok:
        tail = result.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        raise Invalid(f"setup `{display(args)}` exited {result.returncode}: {tail[0]}")
    return result.stdout


def wait_for(condition: Callable[[], bool], process: subprocess.Popen | None, limit: float) -> bool:
    deadline = time.time() + limit
    while time.time() < deadline:
        if condition():
            return True
        if process is not None and process.poll() is not None:
            return condition()
        time.sleep(0.1)
    return False


def exists(rel: str) -> Callable:
    return lambda ctx: any(ctx.dir.glob(rel))


def interrupt(sig: int, when: Callable, describe: str, delay: float = 0.0, group: bool = True,
              twice: bool = False, limit: float = 240) -> Callable:
    """Runner: start the command, send ``sig`` once ``when(ctx)`` holds (plus ``delay``)."""

    def runner(ctx: Ctx, args: list) -> Run:
        started = time.time()
        process = launch(ctx, args, ctx.case.prefix)
        reached = wait_for(lambda: when(ctx), process, limit)
        if reached and delay:
            time.sleep(delay)
        sent = reached and process.poll() is None
        signalled = time.time()
        if sent:
            _signal(process, sig, group)
            if twice:
                time.sleep(0.3)
                _signal(process, sig, group)
        code, out, err = finish(process, 300)
        if not sent:
            raise Invalid(f"the command {'ended' if reached else 'never reached: ' + describe} "
                          f"before {signal.Signals(sig).name} could be sent (exit {code})")
        target = "its process group" if group else "its process"
        text = (f"{display(args, ctx.case.prefix)}  # {signal.Signals(sig).name}"
                f"{' twice' if twice else ''} to {target} once {describe}"
                f"{f' + {delay:g} s' if delay else ''}")
        return Run([code], [out], [err], text, time.time() - started,
                   {"after_signal": round(time.time() - signalled, 1)})

    return runner


def _signal(process: subprocess.Popen, sig: int, group: bool) -> None:
    try:
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
    except ProcessLookupError:
        pass


def pair(second: list | None = None, stagger: float = 0.0) -> Callable:
    """Runner: two edgekit processes started at once (the second one ``second`` if given)."""

    def runner(ctx: Ctx, args: list) -> Run:
        started = time.time()
        first = launch(ctx, args, tag="-a")
        if stagger:
            time.sleep(stagger)
        other = launch(ctx, second or args, tag="-b")
        results = [finish(first, ctx.case.timeout), finish(other, ctx.case.timeout)]
        text = (f"two at once: {display(args)}" if second is None else
                f"two at once: {display(args)}  &  {display(second)}")
        return Run([r[0] for r in results], [r[1] for r in results], [r[2] for r in results],
                   text, time.time() - started, {"pids": [first.pid, other.pid]})

    return runner


# --------------------------------------------------------------------------------------------
# Triton processes


def free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    for probe in probes:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in probes]
    for probe in probes:
        probe.close()
    return ports


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            fields = _stat(int(stat.parent.name))
            if fields and int(fields[1]) == parent:
                found.append(int(stat.parent.name))
                frontier.append(int(stat.parent.name))
    return found


def tritons_on(ports: list[int]) -> list[int]:
    """Running tritonserver processes listening on any of ``ports``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "tritonserver" in text and any(f"-port={port} " in text + " " for port in ports):
            pid = int(cmdline.parent.name)
            if alive(pid):
                found.append(pid)
    return found


def wait_ready(process: subprocess.Popen, limit: float = 150) -> bool:
    out_path = process.files[2]
    return wait_for(lambda: "\nready" in "\n" + out_path.read_text(errors="replace"), process, limit)


def staging_of(text: str) -> Path | None:
    match = re.search(r"staging\s+(\S+)", text)
    return Path(match.group(1)).parent if match else None


def serve_args(repository: str, ports: list[int], *more) -> list[str]:
    return ["serve", repository, "--http-port", str(ports[0]), "--grpc-port", str(ports[1]),
            "--metrics-port", str(ports[2]), *more]


def serve_then(sig: int) -> Callable:
    """Runner: ``edgekit serve`` until ready, then ``sig`` to its process only (not the group:
    its Triton server must go down with it on its own); checks the server and staging are gone."""

    def runner(ctx: Ctx, args: list) -> Run:
        started = time.time()
        process = launch(ctx, args)
        ready = wait_ready(process)
        servers = descendants(process.pid) if ready else []
        if ready:
            process.send_signal(sig)
        code, out, err = finish(process, 120)
        if not ready:
            ctx.checks.append(f"serve never became ready (exit {code})")
        wait_for(lambda: not any(alive(pid) for pid in servers), None, 25)
        for pid in servers:
            if alive(pid):
                ctx.half.append(f"Triton server (pid {pid}) still running after edgekit serve "
                                f"exited on {signal.Signals(sig).name}")
                _kill_pid(pid)
        staging = staging_of(out)
        if staging is not None and staging.exists() and sig != signal.SIGKILL:
            ctx.half.append(f"serve staging folder left: {staging}")
            shutil.rmtree(staging, ignore_errors=True)
        text = f"{display(args)}  # {signal.Signals(sig).name} to its process once ready"
        return Run([code], [out], [err], text, time.time() - started)

    return runner


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class SharedServer:
    """One ``edgekit serve`` of a copy of the fixture repository, for the infer / bench cases."""

    def __init__(self):
        self.process = None
        self.ports = None
        self.failed = None

    def ensure(self) -> dict:
        if self.failed:
            raise Skip(f"the shared edgekit serve did not start: {self.failed}")
        if self.process is not None:
            return {"http": self.ports[0], "grpc": self.ports[1], "metrics": self.ports[2]}
        shutil.rmtree(SERVER_DIR, ignore_errors=True)
        SERVER_DIR.mkdir(parents=True)
        shutil.copytree(FIXTURES / "repo", SERVER_DIR / "repo")
        self.ports = free_ports(3)
        out = open(SERVER_DIR / "serve.out", "w")
        self.process = subprocess.Popen(_command_line(serve_args("repo", self.ports)),
                                        cwd=SERVER_DIR, env=ENV, stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        self.process.files = (out, None, SERVER_DIR / "serve.out", None)
        if not wait_ready(self.process):
            self.failed = (SERVER_DIR / "serve.out").read_text()[-300:]
            self.stop()
            raise Skip(f"the shared edgekit serve did not start: {self.failed}")
        return self.ensure()

    def stop(self) -> None:
        if self.process is None:
            return
        servers = descendants(self.process.pid)
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            _kill_group(self.process, signal.SIGKILL)
            self.process.wait()
        for pid in servers:
            if alive(pid):
                _kill_pid(pid)
        self.process.files[0].close()
        self.process = None


SERVER = SharedServer()


# --------------------------------------------------------------------------------------------
# Files: fixtures, setup helpers, hashes


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def snapshot(root: Path) -> tuple[dict, set]:
    """Every file below ``root`` (sha256, size) and every folder; symlinks by target."""
    files, folders = {}, set()
    for folder, subfolders, names in os.walk(root):
        base = Path(folder)
        rel_base = base.relative_to(root)
        for name in subfolders:
            rel = (rel_base / name).as_posix()
            if (base / name).is_symlink():
                files[rel] = ("symlink", os.readlink(base / name))
            else:
                folders.add(rel)
        for name in names:
            full, rel = base / name, (rel_base / name).as_posix()
            if full.is_symlink():
                files[rel] = ("symlink", os.readlink(full))
                continue
            try:
                files[rel] = (sha256(full), full.stat().st_size)
            except OSError as error:
                files[rel] = (f"unreadable: {error.strerror}", -1)
    return files, folders


def matches(rel: str, patterns) -> bool:
    for pattern in patterns:
        if pattern.endswith("/**"):
            stem = pattern[:-3]
            if rel == stem or rel.startswith(stem + "/") or fnmatch.fnmatch(rel.split("/")[0], stem):
                return True
        elif fnmatch.fnmatch(rel, pattern):
            return True
    return False


def leftover_prefix(rel: str) -> tuple[str, str] | None:
    """(path up to the leftover component, kind) for staging / temp / lock / old leftovers."""
    parts = rel.split("/")
    for index, part in enumerate(parts):
        kind = None
        if ".partial" in part:
            kind = "staging (.partial)"
        elif part.endswith(".tmp") or part.startswith(".tmp") or ".tmp-" in part:
            kind = "temporary (.tmp)"
        elif ".old-" in part:
            kind = "replaced-folder backup (.old-)"
        elif part.endswith(".lock") and index == len(parts) - 1:
            kind = "lock file"
        if kind:
            return "/".join(parts[:index + 1]), kind
    return None


def unmount_below(root: Path) -> None:
    """Unmount every mount under ``root`` (deepest first): a case's tmpfs left by a crash."""
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    prefix = str(root.resolve()) + "/"
    for point in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def base_arrays(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x_train": rng.uniform(0, 16, (90, 8, 8, 1)).astype(np.float32),
            "y_train": np.arange(90) % 3,
            "x_test": rng.uniform(0, 16, (30, 8, 8, 1)).astype(np.float32),
            "y_test": np.arange(30) % 3}


def npz(rel: str = "data.npz", drop=(), edit: Callable | None = None, **changes) -> Callable:
    def setup(ctx: Ctx) -> None:
        arrays = base_arrays()
        if edit is not None:
            edit(arrays)
        arrays.update(changes)
        for key in drop:
            arrays.pop(key)
        path = ctx.p(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)

    return setup


def write(rel: str, data: bytes | str) -> Callable:
    def setup(ctx: Ctx) -> None:
        path = ctx.p(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    return setup


def random_bytes(rel: str, size: int, seed: int = 1) -> Callable:
    return write(rel, np.random.default_rng(seed).bytes(size))


def truncate(rel: str, fraction: float = 0.5) -> Callable:
    def setup(ctx: Ctx) -> None:
        path = ctx.p(rel)
        data = path.read_bytes()
        path.write_bytes(data[:int(len(data) * fraction)])

    return setup


def remove(*rels: str) -> Callable:
    def setup(ctx: Ctx) -> None:
        for rel in rels:
            for path in ctx.dir.glob(rel):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

    return setup


def save_npy(rel: str, array) -> Callable:
    def setup(ctx: Ctx) -> None:
        np.save(ctx.p(rel), array, allow_pickle=True)

    return setup


def copy(src: str, dst: str) -> Callable:
    def setup(ctx: Ctx) -> None:
        source, target = ctx.p(src), ctx.p(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)

    return setup


def mkdir(*rels: str, mode: int | None = None) -> Callable:
    def setup(ctx: Ctx) -> None:
        for rel in rels:
            ctx.p(rel).mkdir(parents=True, exist_ok=True)
            if mode is not None:
                ctx.p(rel).chmod(mode)

    return setup


def chmod(rel: str, mode: int) -> Callable:
    return lambda ctx: ctx.p(rel).chmod(mode)


def symlink(rel: str, target: str) -> Callable:
    return lambda ctx: ctx.p(rel).symlink_to(target)


def tmpfs(rel: str, size: str) -> Callable:
    def setup(ctx: Ctx) -> None:
        if not MOUNT_OK[0]:
            raise Skip(f"cannot mount a tmpfs here ({MOUNT_OK[1]})")
        point = ctx.p(rel)
        point.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                 str(point)], capture_output=True, text=True)
        if result.returncode:
            raise Skip(f"mount -t tmpfs failed: {result.stderr.strip()}")
        ctx.mounts.append(point)

    return setup


def fill(rel: str, leave: int) -> Callable:
    """Fill the file system holding ``rel`` until ``leave`` bytes are free."""

    def setup(ctx: Ctx) -> None:
        stats = os.statvfs(ctx.p(rel))
        free = stats.f_bavail * stats.f_frsize
        filler = ctx.p(rel) / "filler"
        with open(filler, "wb") as handle:
            handle.write(b"\0" * max(0, free - leave))

    return setup


def read_only(rel: str) -> Callable:
    def setup(ctx: Ctx) -> None:
        result = subprocess.run(["mount", "-o", "remount,ro", str(ctx.p(rel))],
                                capture_output=True, text=True)
        if result.returncode:
            raise Skip(f"remount,ro failed: {result.stderr.strip()}")

    return setup


def listening_socket(name: str) -> Callable:
    def setup(ctx: Ctx) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        ctx.sockets.append(sock)
        ctx.vars[name] = sock.getsockname()[1]

    return setup


def ports(name: str, count: int = 3) -> Callable:
    def setup(ctx: Ctx) -> None:
        ctx.vars[name] = free_ports(count)

    return setup


def steps(*functions) -> Callable:
    def setup(ctx: Ctx) -> None:
        for function in functions:
            function(ctx)

    return setup


def png(rel: str, value: int = 128, size: int = 8) -> Callable:
    def setup(ctx: Ctx) -> None:
        from PIL import Image

        ctx.p(rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size, size), value, np.uint8)).save(ctx.p(rel))

    return setup


def image_folder(rel: str, classes=("a", "b"), per_class: int = 12, corrupt: str = "") -> Callable:
    def setup(ctx: Ctx) -> None:
        for index, name in enumerate(classes):
            for number in range(per_class):
                png(f"{rel}/{name}/{number}.png", (index * 90 + number * 7) % 255)(ctx)
        if corrupt:
            write(corrupt, b"this is not a png\n" * 4)(ctx)

    return setup


def checkpoint_state(ctx: Ctx, folder: str) -> dict:
    path = ctx.p(folder) / "checkpoints" / "state.json"
    if not path.is_file():
        raise Invalid(f"no checkpoint in {folder} to resume")
    return json.loads(path.read_text())


def build_fixtures(reuse: bool) -> dict:
    stamp = FIXTURES / "fixtures.json"
    if reuse and stamp.is_file():
        print(f"fixtures: reusing {FIXTURES}", flush=True)
        return json.loads(stamp.read_text())
    unmount_below(FIXTURES)
    shutil.rmtree(FIXTURES, ignore_errors=True)
    FIXTURES.mkdir(parents=True)
    commands = [
        [*TRAIN, "--output", T],
        ["compress", T, "--int8", "--calibration-samples", "100", "--output", K],
        ["export", K, "--to", "tflite,onnx,triton,mobile", "--triton-repository", "repo"],
        ["bench", K, *FAST_BENCH],
        ["report", K],
    ]
    for args in commands:
        started = time.time()
        result = subprocess.run(_command_line(args), cwd=FIXTURES, env=ENV, capture_output=True,
                                text=True, timeout=1200, stdin=subprocess.DEVNULL)
        print(f"fixture: {display(args)} -> exit {result.returncode} "
              f"({time.time() - started:.0f} s)", flush=True)
        if result.returncode:
            sys.exit(f"fixture step failed:\n{result.stderr[-3000:]}")
    lambda_h5 = (
        "import os\nos.environ['TF_USE_LEGACY_KERAS'] = '1'\nimport tf_keras as k\n"
        "def evil(x):\n    open('PWNED_MARKER', 'a').write('lambda .h5 ran\\n')\n    return x\n"
        "m = k.Sequential([k.layers.Input((8, 8, 1)), k.layers.Flatten(), k.layers.Lambda(evil),"
        " k.layers.Dense(10, activation='softmax')])\nm.save('lambda.h5')\n")
    lambda_keras = (
        "import keras\nm = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),"
        " keras.layers.Lambda(lambda x: (open('PWNED_MARKER', 'a').write('lambda .keras ran\\n'),"
        " x)[1]), keras.layers.Dense(10, activation='softmax')])\nm.save('lambda.keras')\n")
    for code in (lambda_h5, lambda_keras):
        result = subprocess.run([sys.executable, "-c", code], cwd=FIXTURES, env=ENV,
                                capture_output=True, text=True, timeout=600)
        if result.returncode:
            sys.exit(f"fixture Lambda model failed:\n{result.stderr[-3000:]}")
    (FIXTURES / MARKER).unlink(missing_ok=True)
    np.save(FIXTURES / "sample.npy", base_arrays()["x_test"][0])
    np.save(FIXTURES / "batch.npy", base_arrays()["x_test"][:4])
    from PIL import Image

    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(FIXTURES / "digit.png")
    (FIXTURES / "mystuff").mkdir()
    (FIXTURES / "mystuff" / "thesis.tex").write_text("years of work\n")
    (FIXTURES / "notes.html").write_text("<p>my own notes</p>\n")
    (FIXTURES / "afile").write_text("a plain file\n")
    info = {"commands": [display(args) for args in commands], "built": time.strftime("%F %T")}
    stamp.write_text(json.dumps(info, indent=1))
    return info


MOUNT_OK = [False, "not probed"]


def probe_mount() -> None:
    point = WORK / "mount-probe"
    point.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(point)],
                            capture_output=True, text=True)
    if result.returncode == 0:
        subprocess.run(["umount", str(point)], capture_output=True)
        MOUNT_OK[:] = [True, "ok"]
    else:
        MOUNT_OK[:] = [False, (result.stderr.strip() or f"exit {result.returncode}")[:200]]
    point.rmdir()


# --------------------------------------------------------------------------------------------
# Verifications: (ctx, run) -> problems


def no_marker(ctx: Ctx, run: Run) -> list[str]:
    found = [p.relative_to(ctx.dir).as_posix() for p in ctx.dir.rglob(MARKER)]
    return [f"the model's / file's code ran: {found[0]} appeared"] if found else []


def marker_present(ctx: Ctx, run: Run) -> list[str]:
    if run.codes == [0] and not list(ctx.dir.rglob(MARKER)):
        return ["control: the Lambda ran with --unsafe-deserialization yet wrote no marker"]
    return []


def absent(*rels: str) -> Callable:
    def verify(ctx: Ctx, run: Run) -> list[str]:
        return [f"{rel} exists after the run" for rel in rels if ctx.p(rel).exists()]

    return verify


def complete(folder: str) -> Callable:
    def verify(ctx: Ctx, run: Run) -> list[str]:
        path = ctx.p(folder) / "manifest.json"
        try:
            status = json.loads(path.read_text()).get("status")
        except (OSError, ValueError, AttributeError):
            return [f"{folder}/manifest.json missing or unreadable after a successful run"]
        return [] if status == "complete" else [f"{folder}/manifest.json status is {status!r}"]

    return verify


def committed_or_nothing(folder: str) -> Callable:
    """Interrupted: 130 leaves no ``folder``; 0 means it is complete."""

    def verify(ctx: Ctx, run: Run) -> list[str]:
        code = run.codes[0]
        if code == 130 and ctx.p(folder).exists():
            return [f"exit 130 (nothing written) but {folder} exists"]
        if code == 0:
            problems = complete(folder)(ctx, run)
            if "interrupted" not in run.stderr[0]:
                problems.append(f"exit 0 without a word about the interruption: the signal was "
                                f"not acted on and the run ended {run.extra.get('after_signal')} s "
                                "after it")
            return problems
        return []

    return verify


def acted_on_signal(ctx: Ctx, run: Run) -> list[str]:
    if run.codes == [0] and "interrupted" not in run.stderr[0]:
        return [f"exit 0 without a word about the interruption: the signal was not acted on and "
                f"the run ended {run.extra.get('after_signal')} s after it"]
    return []


def unchanged_unless_success(*patterns: str) -> Callable:
    """Files under ``patterns`` (allowed to change on success) must keep their sha256 on failure."""

    def verify(ctx: Ctx, run: Run) -> list[str]:
        if all(code == 0 for code in run.codes):
            return []
        after, _ = snapshot(ctx.dir)
        problems = []
        for rel, info in ctx.before.items():
            if matches(rel, patterns) and after.get(rel) != info:
                problems.append(f"earlier output changed by a failed run: {rel}")
        return problems[:5]

    return verify


def labels_lines(classes: int) -> Callable:
    def verify(ctx: Ctx, run: Run) -> list[str]:
        problems, found = [], list(ctx.dir.rglob("labels.txt"))
        found = [p for p in found if not p.is_relative_to(ctx.p(K)) and "repo/" + K not in str(p)]
        if run.codes == [0] and not found:
            problems.append("no labels.txt written")
        for path in found:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            if len(lines) != classes:
                problems.append(f"{path.relative_to(ctx.dir)} has {len(lines)} lines for "
                                f"{classes} classes: {lines!r}"[:300])
        return problems

    return verify


def triton_versions_whole(repository: str, model: str = K) -> Callable:
    """Every version folder of a Triton model holds its model file; no staging left."""

    def verify(ctx: Ctx, run: Run) -> list[str]:
        folder = ctx.p(repository) / model
        problems = []
        if not folder.is_dir():
            return [f"{repository}/{model} is gone"]
        for child in folder.iterdir():
            if child.is_dir() and child.name.isdigit() and not (child / "model.onnx").is_file():
                problems.append(f"{repository}/{model}/{child.name}/ has no model.onnx")
        if not (folder / "config.pbtxt").is_file():
            problems.append(f"{repository}/{model}/config.pbtxt is gone")
        return problems

    return verify


def versions_added(repository: str, count_ok: tuple, model: str = K) -> Callable:
    def verify(ctx: Ctx, run: Run) -> list[str]:
        before = {rel.split("/")[2] for rel in ctx.before
                  if rel.startswith(f"{repository}/{model}/") and rel.count("/") >= 3}
        folder = ctx.p(repository) / model
        now = {c.name for c in folder.iterdir() if c.is_dir() and c.name.isdigit()} \
            if folder.is_dir() else set()
        added = len(now - before)
        successes = sum(code == 0 for code in run.codes)
        if added != successes:
            return [f"{successes} run(s) succeeded but {added} new version(s) appeared in "
                    f"{repository}/{model} (now {sorted(now)})"]
        return []

    return verify


def all_of(*verifies) -> Callable:
    def verify(ctx: Ctx, run: Run) -> list[str]:
        problems = []
        for function in verifies:
            problems += function(ctx, run)
        return problems

    return verify


def names_first_process(ctx: Ctx, run: Run) -> list[str]:
    """The losing run of two at once names the winner's process."""
    if sorted(run.codes) != [0, 2]:
        return []
    loser = run.codes.index(2)
    winner_pid = run.extra["pids"][1 - loser]
    if f"process {winner_pid}" not in run.stderr[loser]:
        return [f"the refused run does not name the first one's process {winner_pid}"]
    return []


# --------------------------------------------------------------------------------------------
# The cases


CASES: list[Case] = []


def case(cls: str, name: str, args, expect, **options) -> None:
    expect = tuple(expect) if isinstance(expect, (tuple, list, set)) else (expect,)
    CASES.append(Case(cls, name, args, expect, **options))


def names_and_options() -> None:
    c = "names & options"
    out = ["--output", "out"]
    case(c, "unknown command", ["frobnicate"], 2, quick=True)
    case(c, "unknown zoo model", ["train", "--model", "resnet9000", *out], 2)
    case(c, "unknown dataset", ["train", "--model", "mlp", "--dataset", "cifar99", *out], 2)
    case(c, "unknown optimizer", ["train", "--model", "mlp", "--optimizer", "nadam", *out], 2)
    case(c, "unknown precision", ["train", "--model", "mlp", "--precision", "float64", *out], 2)
    case(c, "epochs 0", ["train", "--model", "mlp", "--epochs", "0", *out], 2)
    case(c, "epochs negative", ["train", "--model", "mlp", "--epochs", "-3", *out], 2)
    case(c, "epochs not a number", ["train", "--model", "mlp", "--epochs", "ten", *out], 2)
    case(c, "batch size 0", ["train", "--model", "mlp", "--batch-size", "0", *out], 2)
    case(c, "negative learning rate", ["train", "--model", "mlp", "--lr", "-0.1", *out], 2)
    case(c, "validation fraction 1.5", ["train", "--model", "mlp", "--validation-fraction", "1.5",
                                        *out], 2)
    case(c, "negative early stopping", ["train", "--model", "mlp", "--early-stopping", "-1", *out], 2)
    case(c, "negative weight decay", ["train", "--model", "mlp", "--weight-decay", "-1", *out], 2)
    case(c, "unknown model option", ["train", "--model", "mlp", "-o", "nosuchkey=3", *out], 2)
    case(c, "model option without =", ["train", "--model", "mobilenet_v2", "-o", "alpha", *out], 2)
    case(c, "model option of the wrong type", ["train", "--model", "mobilenet_v2", "-o",
                                               "alpha=banana", *out], 2)
    case(c, "--resume with --force", ["train", "--model", "mlp", "--output", T, "--resume", "--force",
                                      "--epochs", "3"], 2)
    case(c, "--data-dir that does not exist", ["train", "--model", "mlp", "--dataset",
                                               "fashion_mnist", "--data-dir", "nosuchdir", *out], 2)
    case(c, "--preprocess scale=abc", ["train", "--model", "mlp", "--preprocess", "scale=abc", *out], 2)
    case(c, "--preprocess 3-channel mean on grey digits",
         ["train", "--model", "mlp", "--preprocess", "mean=0.1,0.2,0.3", *out], 2)
    case(c, "--preprocess unknown key", ["train", "--model", "mlp", "--preprocess", "gamma=2", *out], 2)
    case(c, "--dataset npz: with no path", ["train", "--model", "mlp", "--dataset", "npz:", *out], 2)
    case(c, "--dataset images: folder missing", ["train", "--model", "mlp", "--dataset",
                                                 "images:nosuchdir", *out], 2)
    case(c, "compress with no technique", ["compress", T, *out], 2, quick=True)
    case(c, "compress --prune 1.5", ["compress", T, "--prune", "1.5", *out], 2)
    case(c, "compress --prune -0.2", ["compress", T, "--prune", "-0.2", *out], 2)
    case(c, "compress --cluster 1", ["compress", T, "--cluster", "1", *out], 2)
    case(c, "compress --int8-io without --int8", ["compress", T, "--int8-io", *out], 2)
    case(c, "compress --int8 --fp16 together", ["compress", T, "--int8", "--fp16", *out], 2)
    case(c, "compress --qat --dynamic together", ["compress", T, "--qat", "--dynamic", *out], 2)
    case(c, "compress --calibration-samples 0", ["compress", T, "--int8", "--calibration-samples",
                                                 "0", *out], 2)
    case(c, "compress --finetune-epochs -1", ["compress", T, "--qat", "--finetune-epochs", "-1",
                                              *out], 2)
    case(c, "compress a model folder that does not exist", ["compress", "nosuch", "--int8", *out], 2)
    case(c, "compress --dataset unknown", ["compress", T, "--int8", "--dataset", "nosuch", *out], 2)
    case(c, "compress --custom-objects missing file", ["compress", T, "--int8", "--custom-objects",
                                                       "nosuch_layers.py", *out], 2)
    case(c, "export --to pdf", ["export", K, "--to", "pdf", *out], 2)
    case(c, "export --onnx-precisions fp64", ["export", K, "--to", "onnx", "--onnx-precisions",
                                              "fp64", *out], 2)
    case(c, "export --tflite-precisions int4", ["export", K, "--to", "tflite",
                                                "--tflite-precisions", "int4", *out], 2)
    case(c, "export --opset 3", ["export", K, "--to", "onnx", "--opset", "3", *out], 2)
    case(c, "export --version-policy sometimes", ["export", K, "--to", "triton", "--triton-repository",
                                                  "repo", "--version-policy", "sometimes", *out], 2)
    case(c, "export --max-batch-size -1", ["export", K, "--to", "triton", "--triton-repository", "repo",
                                           "--max-batch-size", "-1", *out], 2)
    case(c, "export --instance-count 0", ["export", K, "--to", "triton", "--triton-repository", "repo",
                                          "--instance-count", "0", *out], 2)
    case(c, "export --samples 0", ["export", K, "--to", "tflite", "--samples", "0", *out], 2)
    case(c, "export a model file without --dataset", ["export", f"{T}/model.keras", "--to", "tflite",
                                                      *out], 2)
    case(c, "bench --batch 0", ["bench", K, "--batch", "0", *out], 2)
    case(c, "bench --batch abc", ["bench", K, "--batch", "abc", *out], 2)
    case(c, "bench --threads 0", ["bench", K, "--threads", "0", *out], 2)
    case(c, "bench --max-windows 1", ["bench", K, "--max-windows", "1", *out], 2)
    case(c, "bench --fail-if nonsense", ["bench", K, "--fail-if", "nonsense", *out], 2)
    case(c, "bench --fail-if unknown metric", ["bench", K, "--fail-if", "bogus_metric>1", *out], 2)
    case(c, "bench --only unknown artifact", ["bench", K, "--only", "nosuch", *out], 2)
    case(c, "bench --target ftp://", ["bench", K, "--target", "ftp://x", *out], 2)
    case(c, "bench --protocol smtp", ["bench", K, "--target", "triton://127.0.0.1:9", "--protocol",
                                      "smtp", *out], 2)
    case(c, "bench with nothing to measure", ["bench", *out], 2)
    case(c, "inspect a file that does not exist", ["inspect", "nosuch.onnx"], 2)
    case(c, "inspect a manifest.json", ["inspect", f"{K}/manifest.json"], 2)
    case(c, "deploy --precision fp64", ["deploy", "triton", K, "--repository", "repo", "--precision",
                                        "fp64"], 2)
    case(c, "deploy a folder that does not exist", ["deploy", "triton", "nosuch", "--repository",
                                                    "repo"], 2)
    case(c, "serve a repository that does not exist", ["serve", "nosuch_repo"], 2)
    case(c, "serve --http-port 70000", ["serve", "repo", "--http-port", "70000"], 2, timeout=180,
         may_change=("repo-server.log",))
    case(c, "serve with the same port twice", ["serve", "repo", "--http-port", "18431", "--grpc-port",
                                               "18431", "--metrics-port", "18432"], 2, timeout=180,
         may_change=("repo-server.log",))
    case(c, "serve --timeout -1", ["serve", "repo", "--timeout", "-1"], 2, timeout=180,
         may_change=("repo-server.log",))
    case(c, "infer --url with a port that is not a number", ["infer", "--url",
                                                             "http://127.0.0.1:notaport",
                                                             "sample.npy"], 2)
    case(c, "infer --url ftp://", ["infer", "--url", "ftp://127.0.0.1:1", "sample.npy"], 2)
    case(c, "infer -k 0", ["infer", "-k", "0", "--url", "http://127.0.0.1:9", "sample.npy"], 2)
    case(c, "pipeline unknown model", ["pipeline", "--model", "nosuch", "--output-root", "out"], 2)
    case(c, "pipeline unknown dataset", ["pipeline", "--dataset", "nosuch", "--output-root", "out"], 2)
    case(c, "report a folder that does not exist", ["report", "nosuch"], 2)
    case(c, "models with an extra argument", ["models", "extra"], 2)


def bad_files() -> None:
    c = "bad files"
    def integrity_marked(ctx: Ctx, run: Run) -> list[str]:
        try:
            rows = json.loads(ctx.p("out/bench.json").read_text())["artifacts"]
        except (OSError, ValueError, KeyError, TypeError):
            return ["no out/bench.json to show the mismatch"]
        marked = [row.get("name") for row in rows if row.get("integrity") == "mismatch"]
        return [] if marked else ["bench.json marks no artifact's sha256 as a mismatch"]

    out = ["--output", "out"]
    man = f"{K}/manifest.json"
    case(c, "manifest not JSON", ["compress", K, "--fp16", *out], 2,
         setup=write(man, "{this is not json"), quick=True)
    case(c, "manifest truncated", ["export", K, "--to", "tflite", *out], 2, setup=truncate(man))
    case(c, "manifest is a list", ["compress", K, "--fp16", *out], 2, setup=write(man, "[]"))
    case(c, "manifest is null", ["export", K, "--to", "onnx", *out], 2, setup=write(man, "null"))
    case(c, "manifest is a string (report)", ["report", K, "--output", "page.html"], 2,
         setup=write(man, '"a string"'))
    case(c, "manifest missing its keys", ["compress", K, "--fp16", *out], 2,
         setup=write(man, '{"stage": "compress"}'))
    case(c, "manifest fields of the wrong type (bench)", ["bench", K, *FAST_BENCH, *out], 2,
         setup=write(man, '{"stage": 5, "config": "x", "parent": 3, "artifacts": 7}'))
    case(c, "manifest empty (deploy)", ["deploy", "triton", K, "--repository", "repo"], 2,
         setup=write(man, ""))
    case(c, "train manifest is a list (resume)", ["train", "--output", T, "--resume", "--epochs", "3"],
         2, setup=write(f"{T}/manifest.json", "[1, 2]"))
    case(c, "export manifest not JSON (bench)", ["bench", K, *FAST_BENCH, *out], 2,
         setup=write(f"{K}/export/manifest.json", "\x00\x01 garbage"))
    case(c, "export manifest is a list (deploy)", ["deploy", "triton", K, "--repository", "repo"], 2,
         setup=write(f"{K}/export/manifest.json", "[]"))
    bench_json = f"{K}/bench/bench.json"
    case(c, "bench.json not JSON (report)", ["report", K, "--output", "page.html"], 2,
         setup=write(bench_json, "<html>not json</html>"))
    case(c, "bench.json is a list (report)", ["report", K, "--output", "page.html"], 2,
         setup=write(bench_json, "[]"))
    case(c, "bench.json is null (report --bench-json)", ["report", K, "--bench-json", bench_json,
                                                         "--output", "page.html"], 2,
         setup=write(bench_json, "null"))
    case(c, "bench.json of the wrong shape (report)", ["report", K, "--output", "page.html"], 2,
         setup=write(bench_json, '{"artifacts": "x", "machine": 3}'))
    case(c, "bench.json truncated (report)", ["report", K, "--output", "page.html"], 2,
         setup=truncate(bench_json, 0.4))
    file_model = ["--dataset", "digits", "--preprocess", "none"]
    case(c, "random bytes as .keras", ["compress", "rand.keras", *file_model, "--int8", *out], 2,
         setup=random_bytes("rand.keras", 4000))
    case(c, "random bytes as .h5", ["compress", "rand.h5", *file_model, "--int8", *out], 2,
         setup=random_bytes("rand.h5", 4000))
    case(c, "random bytes as .tflite (inspect)", ["inspect", "rand.tflite"], 2,
         setup=random_bytes("rand.tflite", 3000))
    case(c, "random bytes as .onnx (inspect)", ["inspect", "rand.onnx"], 2,
         setup=random_bytes("rand.onnx", 3000))
    case(c, "random bytes as .tflite (bench)", ["bench", "rand.tflite", *file_model, *FAST_BENCH, *out],
         1, setup=random_bytes("rand.tflite", 3000), may_change=("out/**",))
    case(c, "random bytes as .onnx (bench)", ["bench", "rand.onnx", *file_model, *FAST_BENCH, *out],
         1, setup=random_bytes("rand.onnx", 3000), may_change=("out/**",))
    case(c, "empty .keras", ["compress", "empty.keras", *file_model, "--int8", *out], 2,
         setup=write("empty.keras", b""))
    case(c, "empty .h5 (train --model)", ["train", "--model", "empty.h5", *file_model, "--epochs", "1",
                                          *out], 2, setup=write("empty.h5", b""))
    case(c, "empty .tflite (inspect)", ["inspect", "empty.tflite"], 2, setup=write("empty.tflite", b""))
    case(c, "empty .onnx (inspect)", ["inspect", "empty.onnx"], 2, setup=write("empty.onnx", b""))
    case(c, "a folder named .keras", ["compress", "dir.keras", *file_model, "--int8", *out], 2,
         setup=mkdir("dir.keras"))
    case(c, "model.keras replaced by random bytes", ["compress", K, "--fp16", *out], 2,
         setup=random_bytes(f"{K}/model.keras", 5000))
    case(c, "model.keras truncated (export)", ["export", K, "--to", "tflite", *out], 2,
         setup=truncate(f"{K}/model.keras"))
    case(c, "parent model.keras truncated (compress)", ["compress", T, "--int8", *out], 2,
         setup=truncate(f"{T}/model.keras"))
    case(c, "truncated .tflite (inspect)", ["inspect", f"{K}/export/model_int8.tflite"], 2,
         setup=truncate(f"{K}/export/model_int8.tflite"))
    case(c, "truncated .onnx (inspect)", ["inspect", f"{K}/export/model_fp32.onnx"], 2,
         setup=truncate(f"{K}/export/model_fp32.onnx"))
    case(c, "artifact replaced by random bytes after export (bench)", ["bench", K, *FAST_BENCH, *out],
         1, setup=random_bytes(f"{K}/export/model_int8.tflite", 15000), may_change=("out/**",),
         verify=integrity_marked)
    def edit_onnx(ctx: Ctx) -> None:  # still a valid model, with another sha256
        code = ("import onnx, sys; m = onnx.load(sys.argv[1]); m.doc_string = 'changed after "
                "export'; onnx.save(m, sys.argv[1])")
        subprocess.run([sys.executable, "-c", code, str(ctx.p(f"{K}/export/model_fp32.onnx"))],
                       check=True, capture_output=True)

    case(c, "a valid artifact changed after export (bench sha256)", ["bench", K, *FAST_BENCH, *out],
         (0, 1), setup=edit_onnx, may_change=("out/**",), verify=integrity_marked)
    case(c, "corrupt mobile.zip (inspect)", ["inspect", f"{K}/export/mobile.zip"], 2,
         setup=random_bytes(f"{K}/export/mobile.zip", 2000))
    case(c, "Triton model folder missing its model file", ["inspect", f"repo/{K}"], 2,
         setup=remove(f"repo/{K}/1/model.onnx"), quick=True)
    case(c, "Triton model folder missing config.pbtxt", ["inspect", f"repo/{K}"], 2,
         setup=remove(f"repo/{K}/config.pbtxt"))
    case(c, "Triton config.pbtxt garbage (inspect)", ["inspect", f"repo/{K}"], 2,
         setup=write(f"repo/{K}/config.pbtxt", "}}}{{{ not a config"))
    case(c, "Triton config.pbtxt garbage (deploy)", ["deploy", "triton", K, "--repository", "repo"], 2,
         setup=write(f"repo/{K}/config.pbtxt", "}}}{{{ not a config"))
    case(c, "custom objects file with a syntax error", ["compress", T, "--int8", "--custom-objects",
                                                        "broken.py", *out], 2,
         setup=write("broken.py", "def broken(:\n"))


def bad_data() -> None:
    c = "bad data"
    train = ["train", "--model", "mlp", "--epochs", "1", "--dataset", "npz:data.npz",
             "--output", "out"]

    def setitem(key, index, value, dtype=None):
        def edit(arrays):
            if dtype is not None:
                arrays[key] = arrays[key].astype(dtype)
            arrays[key][index] = value
        return edit

    case(c, "control: a valid npz trains", train, 0, setup=npz(), may_change=("out/**",),
         verify=complete("out"))
    case(c, "y_train shorter than x_train", train, 2, setup=npz(y_train=np.arange(80) % 3), quick=True)
    case(c, "train and test sample shapes differ", train, 2,
         setup=npz(x_test=np.zeros((30, 9, 9, 1), np.float32)))
    case(c, "NaN in x_train", train, 2, setup=npz(edit=setitem("x_train", (3, 0, 0, 0), np.nan)))
    case(c, "Inf in x_test", train, 2, setup=npz(edit=setitem("x_test", (2, 1, 1, 0), np.inf)))
    case(c, "label -1", train, 2, setup=npz(edit=setitem("y_train", 5, -1)))
    case(c, "label beyond class_names", train, 2,
         setup=npz(class_names=np.array(["a", "b", "c"]), edit=setitem("y_train", 7, 3)))
    case(c, "non-integer labels", train, 2, setup=npz(edit=setitem("y_train", 4, 0.5, np.float32)))
    case(c, "NaN label", train, 2, setup=npz(edit=setitem("y_train", 4, np.nan, np.float32)))
    case(c, "sparse label set (a lone 99 among 0..2)", train, 2,
         setup=npz(edit=setitem("y_train", 4, 99)))
    case(c, "sparse labels covered by 100 class_names", train, 2,
         setup=npz(class_names=np.array([f"c{i}" for i in range(100)]),
                   edit=setitem("y_train", 4, 99)))
    case(c, "test label never seen in training", train, 2, setup=npz(edit=setitem("y_test", 0, 5)))
    case(c, "string labels", train, 2, setup=npz(y_train=np.array(["a", "b", "c"] * 30)))
    case(c, "string samples", train, 2, setup=npz(x_train=np.full((90, 8, 8, 1), "a")))
    case(c, "complex samples", train, 2,
         setup=npz(x_train=np.zeros((90, 8, 8, 1), np.complex64)))
    case(c, "boolean samples", train, 2, setup=npz(x_train=np.zeros((90, 8, 8, 1), bool),
                                                   x_test=np.zeros((30, 8, 8, 1), bool)))
    case(c, "missing y_test", train, 2, setup=npz(drop=("y_test",)))
    case(c, "empty training split", train, 2,
         setup=npz(x_train=np.zeros((0, 8, 8, 1), np.float32), y_train=np.zeros(0, np.int64)))
    case(c, "2-D samples (N, 64)", train, 2,
         setup=npz(x_train=np.zeros((90, 64), np.float32), x_test=np.zeros((30, 64), np.float32)))
    case(c, "one-hot labels", train, 2, setup=npz(y_train=np.eye(3)[np.arange(90) % 3]))
    case(c, "class_names 2-D", train, 2, setup=npz(class_names=np.array([["a", "b"], ["c", "d"]])))
    case(c, "kind = banana", train, 2, setup=npz(kind=np.array("banana")))
    case(c, "a text file named .npz", train, 2, setup=write("data.npz", "hello, not numpy\n"))
    case(c, "truncated .npz", train, 2, setup=steps(npz(), truncate("data.npz", 0.6)))
    case(c, "a .npy given as npz:", ["train", "--model", "mlp", "--epochs", "1", "--dataset",
                                     "npz:data.npy", "--output", "out"], 2,
         setup=save_npy("data.npy", np.zeros((4, 8, 8), np.float32)))
    case(c, "pickled object array in the npz", train, 2,
         setup=npz(x_train=np.array([{"a": 1}] * 90, dtype=object)))
    case(c, "images: empty folder", ["train", "--model", "mlp", "--epochs", "1", "--dataset",
                                     "images:imgs", "--output", "out"], 2, setup=mkdir("imgs"))
    case(c, "images: one corrupt .png", ["train", "--model", "mlp", "--epochs", "1", "--dataset",
                                         "images:imgs", "--output", "out"], 2,
         setup=image_folder("imgs", corrupt="imgs/b/broken.png"))
    big = npz("big.npz", x_train=np.zeros((90, 28, 28, 1), np.float32),
              x_test=np.zeros((30, 28, 28, 1), np.float32))
    case(c, "compress with data of another shape", ["compress", T, "--int8", "--dataset",
                                                    "npz:big.npz", "--output", "out"], 2, setup=big)
    case(c, "export with data of another shape", ["export", K, "--to", "tflite", "--dataset",
                                                  "npz:big.npz", "--output", "out"], 2, setup=big)
    case(c, "bench with data of another shape", ["bench", K, *FAST_BENCH, "--dataset", "npz:big.npz",
                                                 "--output", "out"], (1, 2), setup=big,
         may_change=("out/**",))
    # Silent wrong results: labels.txt must keep one line per class.
    odd_names = np.array(["zero\nline", "one\ttab", "two\x07bell"])

    def trained_with(names):
        return steps(npz(class_names=names),
                     lambda ctx: setup_edgekit(ctx, *TRAIN, "--dataset", "npz:data.npz",
                                               "--output", "named"))

    case(c, "class names with newline / tab / bell: labels.txt lines",
         ["export", "named", "--to", "mobile,triton", "--triton-repository", "repo2", "--output",
          "exp"], 0, setup=trained_with(odd_names), may_change=("exp/**", "repo2/**"),
         verify=labels_lines(3))


def interruptions() -> None:
    c = "interruptions"
    staging = ".out.partial"
    first_checkpoint = exists(f"{staging}/checkpoints/state.json")
    kept = (staging,)

    def resume_args(ctx: Ctx) -> list:
        done = checkpoint_state(ctx, staging)["epochs_done"]
        return ["train", "--output", "out", "--resume", "--epochs", str(done + 1)]

    def staging_kept(ctx: Ctx, run: Run) -> list[str]:
        problems = absent("out")(ctx, run)
        if run.codes == [130] and not ctx.p(f"{staging}/checkpoints/state.json").is_file():
            problems.append("the interrupted run kept no checkpoint to resume")
        return problems

    case(c, "SIGINT to train mid-run", [*LONG_TRAIN, "--output", "out"], 130,
         runner=interrupt(signal.SIGINT, first_checkpoint, "epoch 1 was checkpointed", delay=1.0),
         leftovers_ok=kept, verify=staging_kept, quick=True)
    case(c, "resume after SIGINT", resume_args, 0, after="SIGINT to train mid-run",
         may_change=("out/**", f"{staging}/**"), verify=all_of(complete("out"), absent(staging)))
    case(c, "SIGTERM to train mid-run", [*LONG_TRAIN, "--output", "out"], 130,
         runner=interrupt(signal.SIGTERM, first_checkpoint, "epoch 1 was checkpointed", delay=1.0,
                          group=False), leftovers_ok=kept, verify=staging_kept)
    case(c, "resume after SIGTERM", resume_args, 0, after="SIGTERM to train mid-run",
         may_change=("out/**", f"{staging}/**"), verify=all_of(complete("out"), absent(staging)))
    case(c, "double Ctrl-C to train", [*LONG_TRAIN, "--output", "out"], 130,
         runner=interrupt(signal.SIGINT, first_checkpoint, "epoch 1 was checkpointed", delay=0.5,
                          twice=True), leftovers_ok=kept, verify=staging_kept)
    case(c, "SIGINT while TensorFlow loads", [*TRAIN, "--output", "out"], 130,
         runner=interrupt(signal.SIGINT, lambda ctx: True, "it started", delay=2.0),
         verify=absent("out", staging))

    def killed(args, when, delay=1.0):
        def setup(ctx: Ctx) -> None:
            process = launch(ctx, args, tag="-setup")
            if not wait_for(lambda: when(ctx), process, 240):
                finish(process, 1)
                raise Invalid("setup: the run to kill never reached its mid-run point")
            time.sleep(delay)
            running = process.poll() is None
            _kill_group(process, signal.SIGKILL)
            finish(process, 60)
            if not running or ctx.p("out").exists():
                raise Invalid("setup: the run to kill finished before its SIGKILL")
        return setup

    case(c, "resume after SIGKILL", resume_args, 0,
         setup=killed([*LONG_TRAIN, "--output", "out"], first_checkpoint),
         may_change=("out/**", f"{staging}/**", ".out.lock"),
         verify=all_of(complete("out"), absent(staging, ".out.lock")))
    qat = ["compress", T, "--qat", "--finetune-epochs", "60", "--output", "out"]
    case(c, "SIGINT to compress mid-run", qat, (0, 130),
         runner=interrupt(signal.SIGINT, exists(".out.partial"), "its staging folder appeared",
                          delay=2.0), may_change=("out/**",), verify=committed_or_nothing("out"))
    case(c, "SIGTERM to compress mid-run", qat, (0, 130),
         runner=interrupt(signal.SIGTERM, exists(".out.partial"), "its staging folder appeared",
                          delay=2.0, group=False), may_change=("out/**",),
         verify=committed_or_nothing("out"))
    case(c, "compress again after a SIGKILLed compress", ["compress", T, "--int8", "--output", "out"],
         0, setup=killed(qat, exists(".out.partial"), 2.0),
         may_change=("out/**", ".out.partial/**", ".out.lock"),
         verify=all_of(complete("out"), absent(".out.partial", ".out.lock")))
    export = ["export", K, "--to", "tflite,onnx,triton,mobile", "--triton-repository", "repo",
              "--output", "out"]
    for when, delay in (("early", 0.2), ("mid-run", 1.5)):
        case(c, f"SIGINT to export {when}", export, (0, 130),
             runner=interrupt(signal.SIGINT, exists(".out.partial"), "its staging folder appeared",
                              delay=delay), may_change=("out/**", f"repo/{K}/**"),
             verify=all_of(committed_or_nothing("out"), triton_versions_whole("repo"),
                           unchanged_unless_success(f"repo/{K}/**")))
    case(c, "export again after a SIGKILLed export", export, 0,
         setup=killed(export, exists(".out.partial"), 0.3),
         may_change=("out/**", ".out.partial/**", ".out.lock", f"repo/{K}/**"),
         verify=all_of(complete("out"), absent(".out.partial", ".out.lock"),
                       triton_versions_whole("repo")))
    case(c, "SIGINT to bench mid-run", ["bench", K, "--min-seconds", "0.5"], (0, 130),
         runner=interrupt(signal.SIGINT, lambda ctx: True, "it started", delay=8.0),
         may_change=(f"{K}/bench/**",),
         verify=all_of(unchanged_unless_success(f"{K}/bench/**"), acted_on_signal))
    case(c, "refused --resume: nothing to resume", ["train", "--output", "nothing", "--resume",
                                                     "--epochs", "3"], 2,
         verify=absent("nothing", ".nothing.partial"))
    case(c, "refused --resume: another model", ["train", "--output", T, "--resume", "--epochs", "3",
                                                 "--model", "cnn"], 2, verify=absent(f".{T}.partial"))
    case(c, "refused --resume: fewer epochs than done", ["train", "--output", T, "--resume",
                                                         "--epochs", "1"], 2,
         verify=absent(f".{T}.partial"))
    state = f"{T}/checkpoints/state.json"
    resume = ["train", "--output", T, "--resume", "--epochs", "3"]
    case(c, "corrupt checkpoint state.json", resume, 2, setup=write(state, "{\"epochs_done\": 1, "),
         verify=absent(f".{T}.partial"))
    case(c, "checkpoint state.json is a list", resume, 2, setup=write(state, "[]"))
    case(c, "checkpoint state.json empty", resume, 2, setup=write(state, ""))
    case(c, "checkpoint files missing", resume, 2, setup=remove(f"{T}/checkpoints/epoch-*"),
         verify=absent(f".{T}.partial"))
    case(c, "checkpoint data truncated", resume, 2,
         setup=lambda ctx: [truncate(p.relative_to(ctx.dir).as_posix(), 0.1)(ctx)
                            for p in ctx.p(f"{T}/checkpoints").glob("*.data-*")],
         verify=absent(f".{T}.partial"))
    case(c, "checkpoint folder without state.json", resume, 2, setup=remove(state))


def disk_full() -> None:
    c = "disk full"
    case(c, "train into a 64k disk", [*TRAIN, "--output", "disk/out"], 1,
         setup=tmpfs("disk", "64k"), quick=True)
    case(c, "train into a 16k disk", [*TRAIN, "--output", "disk/out"], 1, setup=tmpfs("disk", "16k"))
    case(c, "train into a 320k disk", [*TRAIN, "--output", "disk/out"], 1,
         setup=tmpfs("disk", "320k"))
    case(c, "compress into a 32k disk", ["compress", T, "--int8", "--output", "disk/out"], 1,
         setup=tmpfs("disk", "32k"))
    case(c, "compress into a 64k disk", ["compress", T, "--int8", "--output", "disk/out"], 1,
         setup=tmpfs("disk", "64k"))
    case(c, "export into a 64k disk", ["export", K, "--to", "tflite,onnx", "--output", "disk/exp"], 1,
         setup=tmpfs("disk", "64k"))
    case(c, "export mobile into a 24k disk", ["export", K, "--to", "mobile", "--output", "disk/exp"], 1,
         setup=tmpfs("disk", "24k"))
    case(c, "export with the Triton repository on a full disk",
         ["export", K, "--to", "triton", "--triton-repository", "disk/repo", "--output", "exp"], 1,
         setup=steps(tmpfs("disk", "256k"), copy("repo", "disk/repo"), fill("disk", 8192)),
         verify=triton_versions_whole("disk/repo"))
    case(c, "bench into a 48k disk", ["bench", K, *FAST_BENCH, "--output", "disk/bench"], 1,
         setup=tmpfs("disk", "48k"))
    case(c, "bench into an 8k disk", ["bench", K, *FAST_BENCH, "--output", "disk/bench"], 1,
         setup=tmpfs("disk", "8k"))
    case(c, "report into a 64k disk", ["report", K, "--output", "disk/report.html"], 1,
         setup=tmpfs("disk", "64k"))
    case(c, "report --force over an earlier report on a full disk",
         ["report", K, "--output", "disk/report.html", "--force"], 1,
         setup=steps(tmpfs("disk", "400k"), copy(f"{K}/report.html", "disk/report.html"),
                     fill("disk", 8192)))
    case(c, "deploy into a repository on a full disk", ["deploy", "triton", K, "--repository",
                                                        "disk/repo"], 1,
         setup=steps(tmpfs("disk", "256k"), copy("repo", "disk/repo"), fill("disk", 4096)),
         verify=triton_versions_whole("disk/repo"))
    case(c, "compress --force over an earlier result on a full disk",
         ["compress", T, "--int8", "--output", "disk/prev", "--force"], 1,
         setup=steps(tmpfs("disk", "1m"), copy(f"{K}/manifest.json", "disk/prev/manifest.json"),
                     copy(f"{K}/model.keras", "disk/prev/model.keras"),
                     copy(f"{K}/model.tflite", "disk/prev/model.tflite"), fill("disk", 16384)))
    case(c, "train --force over an earlier run on a full disk",
         [*TRAIN, "--output", "disk/prev", "--force"], 1,
         setup=steps(tmpfs("disk", "1m"), copy(T, "disk/prev"), fill("disk", 16384)))
    case(c, "export --force over an earlier export on a full disk",
         ["export", "disk/m", "--to", "tflite,onnx", "--force"], 1,
         setup=steps(tmpfs("disk", "2m"), copy(K, "disk/m"), copy(T, "disk/" + T),
                     fill("disk", 24576)))
    case(c, "bench over an earlier bench on a full disk", ["bench", "disk/m", *FAST_BENCH], 1,
         setup=steps(tmpfs("disk", "2m"), copy(K, "disk/m"), copy(T, "disk/" + T),
                     fill("disk", 16384)))
    case(c, "pipeline into a 256k disk", ["pipeline", "--model", "mlp", "--epochs", "1",
                                          "--output-root", "disk/models", "--triton-repository",
                                          "disk/repo"], 1, setup=tmpfs("disk", "256k"))


def os_errors() -> None:
    c = "permissions & OS errors"

    def ro(*copies):
        return steps(tmpfs("ro", "4m"), *[copy(src, f"ro/{dst}") for src, dst in copies],
                     read_only("ro"))

    case(c, "EROFS: train", [*TRAIN, "--output", "ro/out"], 1, setup=ro(), quick=True)
    case(c, "EROFS: compress", ["compress", T, "--int8", "--output", "ro/out"], 1, setup=ro())
    case(c, "EROFS: export", ["export", K, "--to", "tflite", "--output", "ro/exp"], 1, setup=ro())
    case(c, "EROFS: export into a read-only Triton repository",
         ["export", K, "--to", "triton", "--triton-repository", "ro/repo", "--output", "exp"], 1,
         setup=ro(("repo", "repo")))
    case(c, "EROFS: bench", ["bench", K, *FAST_BENCH, "--output", "ro/bench"], 1, setup=ro())
    case(c, "EROFS: report", ["report", K, "--output", "ro/report.html"], 1, setup=ro())
    case(c, "EROFS: deploy", ["deploy", "triton", K, "--repository", "ro/repo"], 1,
         setup=ro(("repo", "repo")))
    case(c, "EROFS: bench of a read-only model folder", ["bench", f"ro/{K}", *FAST_BENCH], 1,
         setup=ro((K, K), (T, T)))
    case(c, "EROFS: report --force in a read-only model folder", ["report", f"ro/{K}", "--force"], 1,
         setup=ro((K, K), (T, T)))
    case(c, "EROFS: export --force in a read-only model folder",
         ["export", f"ro/{K}", "--to", "tflite", "--force"], 1, setup=ro((K, K), (T, T)))
    case(c, "EROFS: resume a read-only run", ["train", "--output", f"ro/{T}", "--resume", "--epochs",
                                              "3"], 1, setup=ro((T, T)))
    case(c, "control: compress from a read-only folder", ["compress", f"ro/{T}", "--int8", "--output",
                                                          "out"], 0, setup=ro((T, T)),
         may_change=("out/**",), verify=complete("out"))
    have_setpriv = shutil.which("setpriv") is not None
    locked = mkdir("locked", mode=0o555)

    def eacces(name, args, setup, expect=1, **options):
        if have_setpriv:
            case(c, f"EACCES: {name}", args, expect, setup=setup, prefix=tuple(SETPRIV), **options)

    eacces("train", [*TRAIN, "--output", "locked/out"], locked)
    eacces("compress", ["compress", T, "--int8", "--output", "locked/out"], locked)
    eacces("export", ["export", K, "--to", "tflite", "--output", "locked/exp"], locked)
    eacces("bench", ["bench", K, *FAST_BENCH, "--output", "locked/bench"], locked)
    eacces("report", ["report", K, "--output", "locked/page.html"], locked)
    eacces("export into a locked Triton model folder",
           ["export", K, "--to", "triton", "--triton-repository", "repo", "--output", "exp"],
           chmod(f"repo/{K}", 0o555))
    eacces("deploy into a locked Triton model folder", ["deploy", "triton", K, "--repository", "repo"],
           chmod(f"repo/{K}", 0o555))
    eacces("an unreadable model.keras", ["compress", K, "--fp16", "--output", "out"],
           chmod(f"{K}/model.keras", 0o000), expect=(1, 2))
    eacces("an unreadable npz", ["train", "--model", "mlp", "--epochs", "1", "--dataset",
                                 "npz:data.npz", "--output", "out"],
           steps(npz(), chmod("data.npz", 0o000)), expect=(1, 2))
    long = ["--output", LONG_NAME]
    case(c, "ENAMETOOLONG: train", [*TRAIN, *long], (1, 2))
    case(c, "ENAMETOOLONG: compress", ["compress", T, "--int8", *long], (1, 2))
    case(c, "ENAMETOOLONG: export", ["export", K, "--to", "tflite", *long], (1, 2))
    case(c, "ENAMETOOLONG: bench", ["bench", K, *FAST_BENCH, *long], (1, 2))
    case(c, "ENAMETOOLONG: report", ["report", K, "--output", LONG_NAME + ".html"], (1, 2))
    case(c, "ENAMETOOLONG: Triton model name", ["deploy", "triton", K, "--repository", "repo",
                                                "--model-name", LONG_NAME], (1, 2))
    case(c, "ENOTDIR: output below a file", ["compress", T, "--int8", "--output", "afile/out"], (1, 2))
    case(c, "EMFILE: train with 6 descriptors", [*TRAIN, "--output", "out"], (0, 1),
         prefix=("prlimit", "--nofile=6"), may_change=("out/**",))
    case(c, "EMFILE: bench with 8 descriptors", ["bench", K, *FAST_BENCH, "--output", "out"], (0, 1),
         prefix=("prlimit", "--nofile=8"), may_change=("out/**",))
    case(c, "EMFILE: export with 9 descriptors", ["export", K, "--to", "tflite,onnx", "--output",
                                                  "out"], (0, 1),
         prefix=("prlimit", "--nofile=9"), may_change=("out/**",))


def serving() -> None:
    c = "serving"

    def url(kind="http", port="http"):
        return lambda ctx: f"{kind}://127.0.0.1:{ctx.vars[port]}"

    def infer(*inputs, url_of=url(), more=()):
        return lambda ctx: ["infer", "--url", url_of(ctx), *more, *inputs]

    case(c, "control: infer one sample", infer("sample.npy"), 0, server=True, quick=True)
    case(c, "control: infer a batch", infer("batch.npy"), 0, server=True)
    case(c, "control: infer a png", infer("digit.png"), 0, server=True)
    case(c, "control: infer --preprocess MODEL_FOLDER", infer("sample.npy", more=("--preprocess", K)),
         0, server=True)
    case(c, ".npy of strings", infer("strings.npy"), 2, server=True,
         setup=save_npy("strings.npy", np.full((8, 8, 1), "a")))
    case(c, ".npy of complex numbers", infer("complex.npy"), 2, server=True,
         setup=save_npy("complex.npy", np.zeros((8, 8, 1), np.complex64)))
    case(c, ".npy with NaN", infer("nan.npy"), 2, server=True,
         setup=save_npy("nan.npy", np.full((8, 8, 1), np.nan, np.float32)))
    case(c, ".npy with Inf", infer("inf.npy"), 2, server=True,
         setup=save_npy("inf.npy", np.full((8, 8, 1), np.inf, np.float32)))
    case(c, ".npy of the wrong shape", infer("shape.npy"), 2, server=True,
         setup=save_npy("shape.npy", np.zeros((5, 5), np.float32)))
    case(c, ".npy with no samples", infer("none.npy"), 2, server=True,
         setup=save_npy("none.npy", np.zeros((0, 8, 8, 1), np.float32)))
    case(c, "random bytes as .npy", infer("garbage.npy"), 2, server=True,
         setup=random_bytes("garbage.npy", 500))
    case(c, "a text file named .png", infer("fake.png"), 2, server=True,
         setup=write("fake.png", "not an image\n"))
    case(c, "an input that does not exist", infer("nosuch.npy"), 2, server=True)
    case(c, "--model unknown", infer("sample.npy", more=("--model", "nosuch")), 2, server=True)
    case(c, "--model-version 99", infer("sample.npy", more=("--model-version", "99")), 2, server=True)
    case(c, "--preprocess folder without a contract", infer("sample.npy",
                                                            more=("--preprocess", "mystuff")), 2,
         server=True)
    case(c, "HTTP to the gRPC port", infer("sample.npy", url_of=url("http", "grpc")), (1, 2),
         server=True, timeout=120)
    case(c, "gRPC to the HTTP port", infer("sample.npy", url_of=url("grpc", "http")), (1, 2),
         server=True, timeout=120)
    case(c, "HTTP to the metrics port", infer("sample.npy", url_of=url("http", "metrics")), (1, 2),
         server=True, timeout=120)
    case(c, "infer with nothing on the port", lambda ctx: ["infer", "--url",
                                                           f"http://127.0.0.1:{ctx.vars['dead'][0]}",
                                                           "sample.npy"], (1, 2),
         setup=ports("dead", 1), timeout=120, quick=True)
    case(c, "infer gRPC with nothing on the port",
         lambda ctx: ["infer", "--url", f"grpc://127.0.0.1:{ctx.vars['dead'][0]}", "sample.npy"],
         (1, 2), setup=ports("dead", 1), timeout=120)
    case(c, "bench a Triton target with nothing on the port",
         lambda ctx: ["bench", K, *FAST_BENCH, "--target", f"triton://127.0.0.1:{ctx.vars['dead'][0]}",
                      "--output", "out"], (1, 2), setup=ports("dead", 1), may_change=("out/**",))
    case(c, "bench HTTP against the gRPC port",
         lambda ctx: ["bench", K, *FAST_BENCH, "--target", f"triton://127.0.0.1:{ctx.vars['grpc']}",
                      "--output", "out"], (1, 2), server=True, may_change=("out/**",))
    case(c, "deploy --reload with nothing on the port",
         lambda ctx: ["deploy", "triton", K, "--repository", "repo", "--reload",
                      f"http://127.0.0.1:{ctx.vars['dead'][0]}"], (1, 2), setup=ports("dead", 1))
    log = ("repo-server.log", "*-server.log")
    case(c, "serve on a busy port",
         lambda ctx: serve_args("repo", [ctx.vars["busy"], *ctx.vars["free"][:2]]), (1, 2),
         setup=steps(listening_socket("busy"), ports("free", 2)), may_change=log, timeout=180)
    case(c, "serve on the shared server's ports",
         lambda ctx: serve_args("repo", [ctx.vars["http"], ctx.vars["grpc"], ctx.vars["metrics"]]),
         (1, 2), server=True, may_change=log, timeout=180)
    case(c, "serve a model folder missing its model file",
         lambda ctx: serve_args("repo", ctx.vars["p"]), (1, 2),
         setup=steps(remove(f"repo/{K}/1/model.onnx"), ports("p")), may_change=log, timeout=180)
    case(c, "serve a file, not a folder", ["serve", "afile"], 2)
    case(c, "serve --tritonserver that does not exist", ["serve", "repo", "--backend", "native",
                                                         "--tritonserver", "/nonexistent/tritonserver"],
         2)
    case(c, "SIGINT to serve", lambda ctx: serve_args("repo", ctx.vars["p"]), (0, 130),
         setup=ports("p"), runner=serve_then(signal.SIGINT), may_change=log, quick=True)
    case(c, "SIGTERM to serve", lambda ctx: serve_args("repo", ctx.vars["p"]), (0, 130),
         setup=ports("p"), runner=serve_then(signal.SIGTERM), may_change=log)

    def killed_serve(ctx: Ctx) -> None:
        ctx.vars["p"] = free_ports(3)
        process = launch(ctx, serve_args("repo", ctx.vars["p"]), tag="-first")
        if not wait_ready(process):
            finish(process, 30)
            raise Invalid("setup: the first serve never became ready")
        servers = descendants(process.pid)
        ctx.vars["first_staging"] = staging_of(process.files[2].read_text())
        process.kill()
        finish(process, 30)
        wait_for(lambda: not any(alive(pid) for pid in servers), None, 25)
        ctx.vars["survivors"] = [pid for pid in servers if alive(pid)]  # killed after the case

    def after_kill(ctx: Ctx, run: Run) -> list[str]:
        problems = [f"the first serve's Triton server (pid {pid}) survived its SIGKILL"
                    for pid in ctx.vars.get("survivors", [])]
        for pid in ctx.vars.get("survivors", []):
            _kill_pid(pid)
        staging = ctx.vars.get("first_staging")
        if staging is not None and staging.exists():
            problems.append(f"the SIGKILLed serve's staging {staging} was not removed by the next")
            shutil.rmtree(staging, ignore_errors=True)
        return problems

    case(c, "serve again on the ports of a SIGKILLed serve",
         lambda ctx: serve_args("repo", ctx.vars["p"]), (0, 130), setup=killed_serve,
         runner=serve_then(signal.SIGINT), may_change=log, verify=after_kill)


def concurrency() -> None:
    c = "concurrency"
    one_each = ((0, 2),)
    compress = ["compress", T, "--int8", "--output", "out"]
    case(c, "two compress into one output", compress, one_each, runner=pair(),
         may_change=("out/**",), verify=all_of(complete("out"), names_first_process), quick=True)
    case(c, "two compress --force over one earlier result", ["compress", T, "--int8", "--output", K,
                                                             "--force"], one_each, runner=pair(),
         may_change=(f"{K}/**",), verify=all_of(complete(K), names_first_process))
    case(c, "two train into one output", [*TRAIN, "--output", "out"], one_each, runner=pair(),
         may_change=("out/**",), verify=all_of(complete("out"), names_first_process))
    case(c, "two export into one output", ["export", K, "--to", "tflite", "--output", "out"],
         one_each, runner=pair(), may_change=("out/**",),
         verify=all_of(complete("out"), names_first_process))
    case(c, "two bench into one output", ["bench", K, *FAST_BENCH, "--output", "out"], one_each,
         runner=pair(), may_change=("out/**",), verify=names_first_process)
    case(c, "two report into one page", ["report", K, "--output", "page.html"], one_each,
         runner=pair(), may_change=("page.html",))
    case(c, "two export into one Triton model",
         ["export", K, "--to", "triton", "--triton-repository", "repo", "--output", "e1"],
         ((0, 0), (0, 2)),
         runner=pair(["export", K, "--to", "triton", "--triton-repository", "repo", "--output", "e2"]),
         may_change=("e1/**", "e2/**", f"repo/{K}/**"),
         verify=all_of(triton_versions_whole("repo"), versions_added("repo", (1, 2))))
    case(c, "two deploy into one Triton model", ["deploy", "triton", K, "--repository", "repo"],
         ((0, 0), (0, 2)), runner=pair(), may_change=(f"repo/{K}/**", f"{K}/export-onnx-*/**"),
         verify=all_of(triton_versions_whole("repo"), versions_added("repo", (1, 2))))
    case(c, "a stale lock file does not block", compress, 0,
         setup=write(".out.lock", "process 999999: edgekit compress (crashed)"),
         may_change=("out/**", ".out.lock"), verify=all_of(complete("out"), absent(".out.lock")))
    case(c, "a crashed run's staging is cleaned, not used", compress, 0,
         setup=write(".out.partial/junk.txt", "left by a crash"),
         may_change=("out/**", ".out.partial/**"),
         verify=all_of(complete("out"), absent(".out.partial", "out/junk.txt")))
    case(c, "a crashed export's staging is cleaned, not used",
         ["export", K, "--to", "tflite", "--output", "exp"], 0,
         setup=write(".exp.partial/junk.txt", "left by a crash"),
         may_change=("exp/**", ".exp.partial/**"),
         verify=all_of(complete("exp"), absent(".exp.partial", "exp/junk.txt")))


def security() -> None:
    c = "security"
    file_model = ["--dataset", "digits", "--preprocess", "none"]
    out = ["--output", "out"]
    case(c, "Lambda .h5: compress refuses, code never runs",
         ["compress", "lambda.h5", *file_model, "--int8", *out], 2, verify=no_marker, quick=True)
    case(c, "Lambda .h5: export refuses", ["export", "lambda.h5", *file_model, "--to", "tflite", *out],
         2, verify=no_marker)
    case(c, "Lambda .h5: bench refuses", ["bench", "lambda.h5", *file_model, *FAST_BENCH, *out],
         (1, 2), verify=no_marker, may_change=("out/**",))
    case(c, "Lambda .h5: train --model refuses", ["train", "--model", "lambda.h5", *file_model,
                                                  "--epochs", "1", *out], 2, verify=no_marker)
    case(c, "Lambda .keras: compress refuses", ["compress", "lambda.keras", *file_model, "--int8", *out],
         2, verify=no_marker)
    case(c, "Lambda .keras: export refuses", ["export", "lambda.keras", *file_model, "--to", "onnx",
                                              *out], 2, verify=no_marker)
    case(c, "Lambda .h5 inside a model folder's place", ["compress", "fake", "--int8", *out], 2,
         setup=steps(copy(K, "fake"), copy("lambda.h5", "fake/model.keras")), verify=no_marker)
    case(c, "control: --unsafe-deserialization runs the Lambda",
         ["compress", "lambda.h5", *file_model, "--int8", "--unsafe-deserialization", *out], 0,
         may_change=("out/**", MARKER), verify=marker_present)

    class Evil:
        def __reduce__(self):
            return (open, (MARKER, "w"))

    evil = np.empty(2, dtype=object)
    evil[0], evil[1] = Evil(), Evil()
    case(c, "pickle payload in an npz", ["train", "--model", "mlp", "--epochs", "1", "--dataset",
                                         "npz:evil.npz", *out], 2,
         setup=lambda ctx: np.savez(ctx.p("evil.npz"), x_train=evil, **{
             k: v for k, v in base_arrays().items() if k != "x_train"}),
         verify=no_marker)
    case(c, "pickle payload in a .npy for infer",
         lambda ctx: ["infer", "--url", f"http://127.0.0.1:{ctx.vars['http']}", "evil.npy"], 2,
         server=True, setup=save_npy("evil.npy", evil), verify=no_marker)
    case(c, "infer --model with ../", lambda ctx: ["infer", "--url",
                                                   f"http://127.0.0.1:{ctx.vars['http']}",
                                                   "--model", "../../x", "sample.npy"], (1, 2),
         server=True)
    nested = copy("repo", "a/b/repo")
    triton = ["export", K, "--to", "triton", "--triton-repository", "a/b/repo", "--output", "exp"]
    case(c, "Triton model name ../../evil", [*triton, "--triton-model-name", "../../evil"], 2,
         setup=nested)
    case(c, "Triton model name ../../../evil", [*triton, "--triton-model-name", "../../../evil"], 2,
         setup=nested)
    case(c, "Triton model name a/b", [*triton, "--triton-model-name", "a/b"], 2, setup=nested)
    case(c, "Triton model name ..", [*triton, "--triton-model-name", ".."], 2, setup=nested)
    abs_target = f"/tmp/edgekit-reliability-evil-{os.getpid()}"
    case(c, "Triton model name absolute", [*triton, "--triton-model-name", abs_target], 2,
         setup=nested, verify=lambda ctx, run: [f"{abs_target} was written"]
         if Path(abs_target).exists() else [])
    case(c, "deploy --model-name ../evil", ["deploy", "triton", K, "--repository", "a/b/repo",
                                            "--model-name", "../evil"], 2, setup=nested)
    traversal_names = np.array(["../../../../evil", "/etc/passwd", ".."])
    case(c, "class names with path traversal (train + export)",
         ["export", "named", "--to", "mobile,triton", "--triton-repository", "repo2", "--output",
          "exp"], (0, 2),
         setup=steps(npz(class_names=traversal_names),
                     lambda ctx: setup_edgekit(ctx, *TRAIN, "--dataset", "npz:data.npz",
                                               "--output", "named", ok=(0, 2))),
         may_change=("exp/**", "repo2/**"), verify=labels_lines(3))
    case(c, "compress --output = its input --force", ["compress", K, "--fp16", "--output", K, "--force"],
         2, quick=True)
    case(c, "export --output = its input --force", ["export", K, "--to", "tflite", "--output", K,
                                                    "--force"], 2)
    case(c, "export --output = the folder holding its input", ["export", f"{T}/model.keras",
                                                               "--dataset", "digits", "--preprocess",
                                                               "none", "--to", "tflite", "--output",
                                                               T, "--force"], 2)
    case(c, "compress --output inside its input", ["compress", T, "--int8", "--output",
                                                   f"{T}/child"], 2)
    case(c, "compress --output = its checkpoints", ["compress", T, "--int8", "--output",
                                                    f"{T}/checkpoints", "--force"], 2)
    case(c, "train --output holding its dataset", ["train", "--model", "mlp", "--epochs", "1",
                                                   "--dataset", "npz:data/d.npz", "--output", "data",
                                                   "--force"], 2, setup=npz("data/d.npz"))
    case(c, "train --output = its dataset file", ["train", "--model", "mlp", "--epochs", "1",
                                                  "--dataset", "npz:d.npz", "--output", "d.npz",
                                                  "--force"], 2, setup=npz("d.npz"))
    case(c, "train --model X --output X", ["train", "--model", f"{T}/model.keras", "--preprocess",
                                           "none", "--epochs", "1", "--output", T, "--force"], 2)
    case(c, "export --triton-repository inside its input", ["export", K, "--to", "triton",
                                                            "--triton-repository", f"{K}/repo",
                                                            "--output", "exp"], 2)
    case(c, "train --output .", [*TRAIN, "--output", "."], 2)
    case(c, "compress --output .", ["compress", T, "--int8", "--output", ".", "--force"], 2)
    case(c, "export --output .", ["export", K, "--to", "tflite", "--output", ".", "--force"], 2)
    case(c, "bench --output .", ["bench", K, *FAST_BENCH, "--output", "."], 2)
    case(c, "compress --output .. (a parent)", ["compress", f"../{T}", "--int8", "--output", "..",
                                                "--force"], 2, cwd="sub", setup=mkdir("sub"))
    case(c, "export --output a mount point", ["export", K, "--to", "tflite", "--output", "disk"], 2,
         setup=tmpfs("disk", "4m"))
    case(c, "bench --output = its model folder", ["bench", K, *FAST_BENCH, "--output", K], 2)
    case(c, "bench --output = its export folder", ["bench", K, *FAST_BENCH, "--output",
                                                   f"{K}/export"], 2)
    case(c, "report --output model.keras", ["report", K, "--output", f"{K}/model.keras"], 2)
    case(c, "report --output model.keras --force", ["report", K, "--output", f"{K}/model.keras",
                                                    "--force"], 2)
    case(c, "report --output manifest.json --force", ["report", K, "--output", f"{K}/manifest.json",
                                                      "--force"], 2)
    case(c, "report --output a .tflite --force", ["report", K, "--output",
                                                  f"{K}/export/model_fp32.tflite", "--force"], 2)
    case(c, "report --output a foreign .html --force", ["report", K, "--output", "notes.html",
                                                        "--force"], 2)
    case(c, "report --output a foreign .html", ["report", K, "--output", "notes.html"], 2)
    case(c, "report --output a folder", ["report", K, "--output", "mystuff"], 2)
    case(c, "symlinked --output to the input --force", ["compress", T, "--int8", "--output", "link",
                                                        "--force"], 2, setup=symlink("link", T))
    case(c, "symlinked --output to a foreign folder --force", ["compress", T, "--int8", "--output",
                                                               "link", "--force"], 2,
         setup=symlink("link", "mystuff"))


def outputs() -> None:
    c = "outputs (no silent overwrite)"
    case(c, "train over an earlier run", [*TRAIN, "--output", T], 2, quick=True)
    case(c, "compress over an earlier result", ["compress", T, "--int8", "--output", K], 2)
    case(c, "export over an earlier export", ["export", K, "--to", "tflite"], 2)
    case(c, "report --output over an earlier edgekit page", ["report", K, "--output", "page.html"], 2,
         setup=copy(f"{K}/report.html", "page.html"))
    case(c, "train over a foreign folder --force", [*TRAIN, "--output", "mystuff", "--force"], 2)
    case(c, "compress over a foreign folder --force", ["compress", T, "--int8", "--output", "mystuff",
                                                       "--force"], 2)
    case(c, "export over a foreign folder --force", ["export", K, "--to", "tflite", "--output",
                                                     "mystuff", "--force"], 2)
    case(c, "bench into a foreign folder", ["bench", K, *FAST_BENCH, "--output", "mystuff"], 2)
    case(c, "bench into a train folder", ["bench", K, *FAST_BENCH, "--output", T], 2)
    case(c, "compress over an export folder --force", ["compress", T, "--int8", "--output",
                                                       f"{K}/export", "--force"], 2)
    case(c, "export over a train folder --force", ["export", K, "--to", "tflite", "--output", T,
                                                   "--force"], 2)
    case(c, "train --output an existing file", [*TRAIN, "--output", "afile"], 2)
    case(c, "compress --output an existing file --force", ["compress", T, "--int8", "--output",
                                                           "afile", "--force"], 2)
    case(c, "control: train --force over its own run", [*TRAIN, "--output", T, "--force"], 0,
         may_change=(f"{T}/**",), verify=complete(T))
    case(c, "control: compress --force over its own result", ["compress", T, "--int8", "--output", K,
                                                              "--force"], 0,
         may_change=(f"{K}/**",), verify=complete(K))
    case(c, "control: export --force over its own export", ["export", K, "--to", "tflite",
                                                            "--force"], 0,
         may_change=(f"{K}/export/**",), verify=complete(f"{K}/export"))
    case(c, "control: export into an empty folder", ["export", K, "--to", "tflite", "--output",
                                                     "empty"], 0,
         setup=mkdir("empty"), may_change=("empty/**",), verify=complete("empty"))
    case(c, "control: report --force", ["report", K, "--force"], 0, may_change=(f"{K}/report.html",))
    # write_report: only "an earlier edgekit report at a path other than the default needs force".
    case(c, "control: report refreshes its default page", ["report", K], 0,
         may_change=(f"{K}/report.html",))
    case(c, "control: bench again over its own bench", ["bench", K, *FAST_BENCH], 0,
         may_change=(f"{K}/bench/**",))
    case(c, "control: deploy adds a version", ["deploy", "triton", K, "--repository", "repo"], 0,
         may_change=(f"repo/{K}/**", f"{K}/export-onnx-*/**"),
         verify=all_of(triton_versions_whole("repo"), versions_added("repo", (1,))))
    case(c, "control: pipeline", ["pipeline", "--model", "mlp", "--epochs", "1", "--output-root",
                                  "models", "--triton-repository", "repo2"], 0,
         may_change=("models/**", "repo2/**"))


def define_cases() -> None:
    for group in (names_and_options, bad_files, bad_data, interruptions, disk_full, os_errors,
                  serving, concurrency, security, outputs):
        group()
    names = [f"{case.cls}/{case.name}" for case in CASES]
    duplicates = {name for name in names if names.count(name) > 1}
    assert not duplicates, duplicates


# --------------------------------------------------------------------------------------------
# Running one case


HELP_OPTIONS: dict[str, set] = {}


def options_of(command: tuple) -> set:
    if command not in HELP_OPTIONS:
        result = subprocess.run(_command_line([*command, "--help"]), env=ENV, capture_output=True,
                                text=True, timeout=120)
        HELP_OPTIONS[command] = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", result.stdout))
    return HELP_OPTIONS[command]


def foreign_options(args: list, stderr: str) -> list[str]:
    """Options an error line suggests that the command does not have (issue 11, item 7)."""
    known = {"train", "compress", "export", "inspect", "bench", "report", "serve", "infer",
             "pipeline", "models", "datasets", "deploy"}
    if not args or args[0] not in known:
        return []
    command = ("deploy", "triton") if args[0] == "deploy" else (args[0],)
    found = []
    for line in stderr.splitlines():
        if not line.startswith("error:"):
            continue
        # Options after "edgekit OTHER" belong to that command.
        own = re.split(r"edgekit (?!" + re.escape(command[0]) + r"\b)\w+", line)[0]
        own = own.replace("--force or not", "")  # says --force would not help
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", own):
            if option not in options_of(command) and option not in ("--help", "--version"):
                found.append(option)
    return sorted(set(found))


def analyse(case: Case, ctx: Ctx, before: tuple, after: tuple, codes: list) -> tuple:
    before_files, before_dirs = before
    after_files, after_dirs = after
    failed = any(code != 0 for code in codes)
    half, changed, notes = list(ctx.half), [], []
    reported = set()
    new_paths = sorted(set(after_files) - set(before_files)) + \
        sorted(d for d in after_dirs - before_dirs)
    for rel in new_paths:
        leftover = leftover_prefix(rel)
        if leftover:
            prefix, kind = leftover
            if prefix in reported or matches(prefix, case.leftovers_ok):
                continue
            if prefix in before_files or prefix in before_dirs:
                continue  # existed before the run (checked as an earlier output)
            reported.add(prefix)
            half.append(f"{kind} left: {prefix}")
            continue
        if rel in after_dirs:
            if failed and not matches(rel, case.may_change) and \
                    not any(p.startswith(rel + "/") for p in after_files):
                notes.append(f"new empty folder after a failed run: {rel}/")
            continue
        if after_files[rel][1] == 0:
            half.append(f"new 0-byte file: {rel}")
        elif not matches(rel, case.may_change):
            if failed:
                half.append(f"new file after a failed run: {rel}")
            else:
                notes.append(f"unexpected new file: {rel}")
    for rel, info in before_files.items():
        if matches(rel, case.may_change) or leftover_prefix(rel) and \
                matches(leftover_prefix(rel)[0], case.leftovers_ok):
            continue
        if rel not in after_files:
            changed.append(f"removed: {rel}")
        elif after_files[rel] != info:
            changed.append(f"changed: {rel}")
    return half, changed, notes


def expected_ok(case: Case, codes: list) -> bool:
    # Killed by SIGINT (a second Ctrl-C while Python shuts down) is what a shell reports as 130.
    codes = [130 if code == -signal.SIGINT else code for code in codes]
    if len(codes) == 1:
        return codes[0] in case.expect
    return tuple(sorted(codes, key=str)) in case.expect


def show_codes(codes) -> str:
    def one(code):
        if isinstance(code, int) and code < 0:
            shell = f"; shell status {128 - code}" if code == -signal.SIGINT else ""
            return f"{code} (killed by {signal.Signals(-code).name}{shell})"
        return str(code)
    return "+".join(one(code) for code in codes)


def show_expect(case: Case) -> str:
    return " or ".join(show_codes(e) if isinstance(e, tuple) else str(e) for e in case.expect)


def run_case(index: int, case: Case, done: dict) -> dict:
    slug = re.sub(r"[^a-z0-9]+", "-", f"{case.cls} {case.name}".lower()).strip("-")[:70]
    folder = CASES_DIR / f"{index:03d}-{slug}"
    ctx = Ctx(case, folder, LOGS / f"{index:03d}-{slug}")
    record = {"class": case.cls, "name": case.name, "expected": show_expect(case),
              "folder": str(folder.relative_to(REPO))}
    started = time.time()
    try:
        if case.after:
            earlier = done.get(case.after)
            if earlier is None or earlier.get("status") not in ("clean", "unclean"):
                raise Invalid(f"depends on `{case.after}`, which did not run")
            shutil.copytree(REPO / earlier["folder"], folder, symlinks=True)
        else:
            shutil.copytree(FIXTURES, folder, symlinks=True,
                            ignore=shutil.ignore_patterns("fixtures.json"))
        if case.cwd:
            (folder / case.cwd).mkdir(parents=True, exist_ok=True)
        if case.server:
            ctx.vars.update(SERVER.ensure())
        if case.setup is not None:
            case.setup(ctx)
        args = case.args(ctx) if callable(case.args) else list(case.args)
        before = snapshot(folder)
        ctx.before = before[0]
        run = (case.runner or run_plain)(ctx, args)
        after = snapshot(folder)
        half, changed, notes = analyse(case, ctx, before, after, run.codes)
        checks = case.verify(ctx, run) if case.verify is not None else []
        stderr_all = "\n".join(run.stderr)
        line_counts = [len([line for line in text.splitlines() if line.strip()])
                       for text in run.stderr]
        traceback = any("Traceback" in text for text in run.stderr)
        foreign = foreign_options(args, stderr_all)
        code_ok = expected_ok(case, run.codes)
        if -signal.SIGINT in run.codes:
            notes.append("killed by SIGINT rather than exiting 130 (a shell shows 130 either way)")
        reasons = []
        if not code_ok:
            reasons.append(f"exit {show_codes(run.codes)}, expected {show_expect(case)}")
        if max(line_counts) > 4:
            reasons.append(f"{max(line_counts)} stderr lines")
        if traceback:
            reasons.append("traceback")
        checks = ctx.checks + checks
        reasons += half + changed + checks
        # The stderr shown: of the process that failed unexpectedly, else the first.
        shown = 0
        if len(run.codes) > 1:
            shown = next((i for i, text in enumerate(run.stderr) if "Traceback" in text), None)
            if shown is None:
                shown = next((i for i, code in enumerate(run.codes) if code not in (0,)), 0)
        record.update({
            "command": run.display, "actual": show_codes(run.codes), "codes": run.codes,
            "exit_ok": code_ok, "stderr_lines": max(line_counts), "traceback": traceback,
            "half_written": half, "earlier_outputs_changed": changed, "checks_failed": checks,
            "notes": notes, "options_not_on_command": foreign,
            "stderr_head": [line for line in run.stderr[shown].splitlines() if line.strip()][:2],
            "stderr_last": ([line for line in run.stderr[shown].splitlines() if line.strip()]
                            or [""])[-1],
            "stderr": stderr_all[-4000:], "status": "clean" if not reasons else "unclean",
            "reasons": reasons, "seconds": round(time.time() - started, 1),
        })
    except Skip as reason:
        record.update({"status": "skipped", "reasons": [str(reason)], "command": _plain(case)})
    except Invalid as reason:
        record.update({"status": "invalid", "reasons": [str(reason)], "command": _plain(case)})
    finally:
        teardown(ctx)
    record.setdefault("seconds", round(time.time() - started, 1))
    return record


def _plain(case: Case) -> str:
    return display(case.args, case.prefix) if not callable(case.args) else "(built at run time)"


def teardown(ctx: Ctx) -> None:
    for process in ctx.procs:
        if process.poll() is None:
            _kill_group(process, signal.SIGKILL)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for handle in process.files[:2]:
            if handle is not None and not handle.closed:
                handle.close()
    for sock in ctx.sockets:
        sock.close()
    for point in reversed(ctx.mounts):
        result = subprocess.run(["umount", str(point)], capture_output=True)
        if result.returncode:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)


# --------------------------------------------------------------------------------------------
# Report


def render(records: list[dict], info: dict) -> str:
    from edgekit.manifest import machine

    classes = []
    for record in records:
        if record["class"] not in classes:
            classes.append(record["class"])
    ran = [r for r in records if r["status"] in ("clean", "unclean")]
    unclean = [r for r in ran if r["status"] == "unclean"]
    lines = [
        "## Reliability (issue 11)",
        "",
        f"Machine: {machine_line(machine())}. Script: `benchmarks/reliability.py`"
        f"{' ' + info['flags'] if info['flags'] else ''}. Measured {time.strftime('%Y-%m-%d')} at "
        f"commit {info['commit']}; {len(ran)} cases in {info['minutes']:.0f} min.",
        "",
        "Every case is one real `edgekit` command run in a subprocess (environment without "
        "`TF_USE_LEGACY_KERAS`), in a fresh folder holding copies of the shared fixtures: "
        + "; ".join(f"`{command}`" for command in info["fixtures"]["commands"])
        + " (all on digits), a Lambda `.h5` / `.keras` whose code writes a marker file, and a few "
        "inputs. A case is **clean** when: the exit code is the documented one (2 bad input, 1 a "
        "failed check or an OS error, 0 success, 130 interrupted; where the documentation allows "
        "either of two, both are accepted and the table below says so); stderr has at most 4 "
        "non-blank lines and no `Traceback`; nothing is half-written (no new 0-byte file, no "
        "`.partial` / `.tmp` / `.old-` leftover, no lock file left, no new file after a failed "
        "run, no Triton server or serve staging folder left behind); every file that existed "
        "before keeps its sha256 except the case's expected output; and the case's own check "
        "holds (the marker never appears, `labels.txt` has one line per class, a refused or "
        "interrupted run leaves no output, ...).",
        "",
        "How: full disks are small tmpfs mounts (sizes 8k-2m, or filled to a few kB), read-only "
        "folders a tmpfs remounted `ro` (EROFS), EACCES a `chmod 555` folder with the command run "
        "without CAP_DAC_OVERRIDE (`setpriv`), ENAMETOOLONG a 300-character name, EMFILE "
        "`prlimit --nofile`; Ctrl-C is SIGINT to the command's process group, SIGTERM and "
        "SIGKILL go to its process (to `edgekit serve` only, so its Triton server must follow it "
        "on its own); concurrency is two processes started together.",
        "",
        "| class | tried | clean | unclean |",
        "| --- | --- | --- | --- |",
    ]
    for name in classes:
        mine = [r for r in ran if r["class"] == name]
        bad = sum(r["status"] == "unclean" for r in mine)
        lines.append(f"| {name} | {len(mine)} | {len(mine) - bad} | {bad} |")
    lines.append(f"| **total** | **{len(ran)}** | **{len(ran) - len(unclean)}** | "
                 f"**{len(unclean)}** |")
    lines += ["", "Target: 0 unclean."]
    skipped = [r for r in records if r["status"] in ("skipped", "invalid")]
    if skipped:
        lines += ["", "Not run (neither clean nor unclean):"]
        lines += [f"- {r['class']} / {r['name']}: {r['status']}: {r['reasons'][0]}" for r in skipped]
    if unclean:
        lines += ["", "### Unclean cases", ""]
        for record in unclean:
            lines.append(f"- **{record['class']} / {record['name']}**: `{record['command']}` "
                         f"(expected exit {record['expected']}, got {record['actual']}): "
                         + "; ".join(record["reasons"]))
            head = record["stderr_head"] or ["(stderr empty)"]
            if record["traceback"] and record["stderr_last"] not in head:
                head = head + ["...", record["stderr_last"]]
            lines += ["  ```"] + [f"  {line[:400]}" for line in head] + ["  ```"]
    foreign = [r for r in ran if r.get("options_not_on_command")]
    if foreign:
        lines += ["", "Messages naming an option the command does not have (issue 11, item 7; "
                  "not counted above):"]
        lines += [f"- {r['class']} / {r['name']}: {', '.join(r['options_not_on_command'])}"
                  for r in foreign]
    return "\n".join(lines)


def git_commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "edgekit"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return f"{head}{' with uncommitted changes to edgekit/' if dirty else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="about 15 cases; print the section instead of writing RESULTS.md")
    parser.add_argument("--classes", help="only these classes (comma-separated words of their "
                                          "names); printed, not written")
    parser.add_argument("--cases", help="only cases whose name holds one of these words "
                                        "(comma-separated); printed, not written")
    parser.add_argument("--reuse-fixtures", action="store_true",
                        help="keep the fixtures of an earlier run instead of building them again")
    parser.add_argument("--keep", action="store_true", help="keep the folders of clean cases too")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    arguments = parser.parse_args()
    # Children must get the default SIGINT even when this script runs in the background (where
    # the shell ignores SIGINT, and an ignored signal is inherited across exec).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    define_cases()
    selected = CASES
    if arguments.quick:
        selected = [case for case in selected if case.quick]
    if arguments.classes:
        words = arguments.classes.lower().split(",")
        selected = [case for case in selected if any(w in case.cls.lower() for w in words)]
    if arguments.cases:
        words = arguments.cases.lower().split(",")
        chosen = [case for case in selected if any(w in case.name.lower() for w in words)]
        needed = {case.after for case in chosen if case.after}
        selected = [case for case in selected if case in chosen or case.name in needed]
    if arguments.list:
        for case in selected:
            print(f"{case.cls:32} {case.name:60} expect {show_expect(case)}")
        print(f"{len(selected)} cases")
        return
    partial = arguments.quick or arguments.classes or arguments.cases
    started = time.time()
    WORK.mkdir(parents=True, exist_ok=True)
    unmount_below(CASES_DIR)
    shutil.rmtree(CASES_DIR, ignore_errors=True)
    shutil.rmtree(LOGS, ignore_errors=True)
    CASES_DIR.mkdir(parents=True)
    LOGS.mkdir(parents=True)
    probe_mount()
    fixtures = build_fixtures(arguments.reuse_fixtures)
    fixture_hashes = snapshot(FIXTURES)[0]
    records, done = [], {}
    print(f"{len(selected)} cases; tmpfs mounts: {MOUNT_OK[1]}", flush=True)
    try:
        for index, case in enumerate(selected, 1):
            record = run_case(index, case, done)
            done[case.name] = record
            records.append(record)
            status = record["status"]
            detail = "" if status == "clean" else "  <- " + "; ".join(record["reasons"])[:300]
            print(f"[{index:3d}/{len(selected)}] {status:8} {case.cls} / {case.name} "
                  f"(exit {record.get('actual', '-')}, {record['seconds']:.0f} s){detail}",
                  flush=True)
    finally:
        SERVER.stop()
    if snapshot(FIXTURES)[0] != fixture_hashes:
        print("warning: a case changed the shared fixtures (through an absolute path in a "
              "manifest?)", flush=True)
        for record in records:
            record.setdefault("notes", []).append("the shared fixtures changed during the run")
    if not arguments.keep:
        for record in records:
            if record["status"] == "clean":
                shutil.rmtree(REPO / record["folder"], ignore_errors=True)
    flags = " ".join(flag for flag, on in (("--quick", arguments.quick),) if on)
    info = {"commit": git_commit(), "fixtures": fixtures, "flags": flags,
            "minutes": (time.time() - started) / 60}
    target = OUT / ("reliability_partial.json" if partial else "reliability.json")
    target.write_text(json.dumps({"info": info, "records": records}, indent=1, default=str))
    section = render(records, info)
    if partial:
        print(section)
        print(f"\nnot written to RESULTS.md (a partial run); records in {target}")
    else:
        print(section)
        print(f"\nwrote {replace_section('reliability', section)}; records in {target}")


if __name__ == "__main__":
    main()
