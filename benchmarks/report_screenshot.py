"""Render the page ``edgekit report`` writes in headless Chromium; keep the screenshot beside RESULTS.md.

Usage (from the repo root):
    .venv/bin/python benchmarks/report_screenshot.py              # reuse benchmarks/out/report/
    .venv/bin/python benchmarks/report_screenshot.py --rebuild    # train, compress... again
    .venv/bin/python benchmarks/report_screenshot.py --no-optimize

What it shows (issue 14, step 6): the page of a real folder chain, built with edgekit's public
API as a user would run it, reused when it is already there:

1. ``edgekit.pipeline`` on the bundled digits: cnn trained (``cnn-digits``), compressed to int8
   (``cnn-digits-int8``), exported (TFLite, ONNX, a Triton version in a repository of its own,
   the mobile bundle) and benchmarked;
2. when this checkout has the optimizer (``edgekit.optimize``), a search over the post-training
   candidates of ``cnn-digits`` within a 0.5-point budget (``cnn-digits-optimized``, the winner
   as a compress folder with ``optimize/``), then its export and benchmark. Without it, the page
   is the int8 child's and the script says so;
3. ``edgekit.bench.html.write_report`` of that folder: the parent's training curves, the
   compression comparison, fidelity, the benchmark and the optimizer's choice;
4. ``chromium --headless --screenshot`` at 1200 px wide, cropped at the end of the page (and at
   most ``MAX_HEIGHT``), stored as a 256-colour PNG at benchmarks/report_screenshot.png.

Chromium comes from Debian (``apt-get install -y chromium``); without it the script says so and
exits 1. Pillow (a matplotlib dependency) crops and compresses the screenshot.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import edgekit
from edgekit.bench.html import write_report

HERE = Path(__file__).resolve().parent
WORK = HERE / "out" / "report"
SCREENSHOT = HERE / "report_screenshot.png"
WIDTH, WINDOW_HEIGHT, MAX_HEIGHT = 1200, 9000, 7000
MAX_BYTES = 400_000
BUDGET_POINTS = 0.5
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL = "apt-get install -y chromium"


def find_chromium() -> str | None:
    return next((found for found in map(shutil.which, CHROMIUM_NAMES) if found), None)


def build_chain(root: Path, rebuild: bool) -> tuple[Path, Path]:
    """The trained folder and its int8 child, exported and benchmarked (reused when complete)."""
    trained, child = root / "cnn-digits", root / "cnn-digits-int8"
    if rebuild or not (child / "bench" / "bench.json").is_file():
        edgekit.pipeline(output_root=root, triton_repository=root.parent / "triton_repo",
                         force=True, progress=False)
    return trained, child


def optimized(trained: Path, root: Path, rebuild: bool) -> tuple[Path | None, str]:
    """The optimizer's winner, exported and benchmarked; or None and why there is none."""
    winner = root / "cnn-digits-optimized"
    if not rebuild and (winner / "optimize" / "candidates.json").is_file() \
            and (winner / "bench" / "bench.json").is_file():
        return winner, f"reused the optimizer run in {winner}"
    try:
        # lazy: the optimizer is a newer package; a checkout without it still gets a page
        from edgekit.optimize import optimize
    except ImportError as error:
        return None, f"no optimizer in this checkout ({error}): the page has no optimizer section"
    from edgekit.bench import bench
    from edgekit.errors import EdgekitError
    from edgekit.export import export

    try:
        optimize(trained, output_dir=winner, max_drop=BUDGET_POINTS, finetune=False, force=True,
                 progress=False)
        export(winner, to=("tflite", "onnx", "mobile"), force=True)
        bench(winner)
    except EdgekitError as error:
        return None, f"the optimizer run failed ({error}): the page has no optimizer section"
    return winner, f"ran edgekit optimize {trained} --max-drop {BUDGET_POINTS} --no-finetune"


def screenshot(chromium: str, page: Path, output: Path) -> tuple[int, int]:
    """Render ``page``, crop it where it ends, write a 256-colour PNG; returns its size."""
    # lazy: Pillow is matplotlib's dependency, needed only to crop and compress the screenshot
    from PIL import Image, ImageChops

    with tempfile.TemporaryDirectory(prefix="edgekit-shot-") as folder:
        raw = Path(folder) / "page.png"
        command = [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                   f"--user-data-dir={folder}/profile", f"--screenshot={raw}",
                   f"--window-size={WIDTH},{WINDOW_HEIGHT}", page.resolve().as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
        if done.returncode != 0 or not raw.is_file():
            raise RuntimeError(f"chromium exited {done.returncode} without a screenshot: "
                               f"{done.stderr.strip()[-500:]}")
        with Image.open(raw) as image:
            image = image.convert("RGB")
            background = Image.new("RGB", image.size, image.getpixel((WIDTH - 1, image.height - 1)))
            content = ImageChops.difference(image, background).getbbox()
            bottom = min((content[3] + 24) if content else image.height, MAX_HEIGHT)
            image = image.crop((0, 0, WIDTH, bottom))
    colours = 256
    while True:
        image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(output, optimize=True)
        if output.stat().st_size <= MAX_BYTES or colours <= 32:
            return image.size
        colours //= 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=WORK,
                        help=f"where the model folders go [default {WORK.relative_to(HERE.parent)}]")
    parser.add_argument("--rebuild", action="store_true", help="build every folder again")
    parser.add_argument("--no-optimize", action="store_true",
                        help="show the int8 child, without running the optimizer")
    parser.add_argument("--output", type=Path, default=SCREENSHOT, help="the screenshot (.png)")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print(f"report_screenshot: no Chromium found ({', '.join(CHROMIUM_NAMES)}); install it "
              f"with: {INSTALL}", file=sys.stderr)
        return 1
    root = args.work / "models"
    trained, child = build_chain(root, args.rebuild)
    winner, note = (None, "--no-optimize: the int8 child, no optimizer section") \
        if args.no_optimize else optimized(trained, root, args.rebuild)
    subject = winner or child
    page = write_report(subject, output=args.work / "report.html", force=True)
    width, height = screenshot(chromium, page, args.output)
    print(f"report:     {page} (of {subject.name})")
    print(f"optimizer:  {note}")
    print(f"screenshot: {args.output} ({width}x{height} px, {args.output.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
