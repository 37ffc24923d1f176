"""Shared by the benchmark scripts: the machine header and rewriting one section of RESULTS.md."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# edgekit — measured figures\n\nEvery figure below was produced by a script in `benchmarks/`; rerun it to refresh its section.\n"


def machine_line(machine: dict) -> str:
    flags = " ".join(machine["cpu_flags"]) or "none of note"
    return f"{machine['cpu']}, {machine['cores']} cores, flags: {flags}, {machine['os']}"


def replace_section(name: str, body: str) -> Path:
    """Replace (or append) the section between ``<!-- name -->`` markers in RESULTS.md."""
    # Commands are written relative to the repo root: no path of the machine that ran them.
    body = body.replace(str(RESULTS.parents[1]) + "/", "")
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    return RESULTS
