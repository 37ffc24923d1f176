"""``edgekit report``: the page a person opens follows the lineage and speaks in units.

One real chain is written once per module (an MLP, one epoch on digits, compressed to int8,
exported to TFLite and ONNX, its TFLite files benchmarked briefly: about 30 s); a test that adds
to or damages a folder works on a copy of the compressed child.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from edgekit.bench.html import write_report

# Manifest and record keys a person must never read on the page.
RAW_KEYS = ("accuracy_drop_points", "top1_agreement", "size_ratio_to_parent_fp32_tflite",
            "gzip_ratio_to_parent_fp32_tflite", "max_abs_diff", "gzip_bytes", "size_bytes",
            "drop_points", "accuracy_val", "accuracy_test", "within_budget", "p50_ms", "p99_ms",
            "weights_in_file", "min_top1_agreement", "training_curves", "confusion_matrix",
            "None", "nan")
QUICK = {"warmup_runs": 1, "warmup_seconds": 0.0, "min_runs": 5, "min_seconds": 0.01}


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    """``{"trained", "child"}``: a trained mlp and its int8 child, exported and benchmarked."""
    import edgekit
    from edgekit.bench import bench
    from edgekit.compress import compress
    from edgekit.export import export

    root = tmp_path_factory.mktemp("report")
    trained, child = root / "mlp-digits", root / "mlp-digits-int8"
    edgekit.train(model="mlp", epochs=1, output_dir=trained, progress=False)
    compress(str(trained), output_dir=child, int8=True, calibration_samples=50, progress=False)
    export(child, to=("tflite", "onnx"), onnx_precisions=("fp32", "int8"))
    bench(child, include=("tflite-int8", "tflite-fp32"), **QUICK)
    return {"trained": trained, "child": child}


@pytest.fixture
def child_copy(chain, tmp_path) -> Path:
    """A copy of the compressed child (its parent stays the original trained folder)."""
    copy = tmp_path / "mlp-digits-int8"
    shutil.copytree(chain["child"], copy)
    return copy


def _page(folder: Path, output: Path) -> str:
    return write_report(folder, output=output, force=True).read_text()


def _visible(page: str) -> str:
    """The text a browser shows: no style, no tags, no attributes, entities decoded."""
    import html

    page = re.sub(r"<style>.*?</style>|<title>.*?</title>", "", page, flags=re.S)
    text = html.unescape(re.sub(r"<(b|code)>|</(b|code)>", "", page))
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


def _png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_a_compressed_childs_page_shows_its_parents_training_curves_and_names_the_parent(
        chain, tmp_path):
    page = _page(chain["child"], tmp_path / "report.html")
    trained = chain["trained"]
    assert _png(trained / "training_curves.png") in page
    assert _png(trained / "confusion_matrix.png") in page
    text = _visible(page)
    assert "Training (of the parent, mlp-digits)" in text
    assert "are those of its parent, mlp-digits" in text
    assert "No training curves" not in text
    assert "mlp-digits (trained) → mlp-digits-int8 (compressed with int8)" in text


def test_no_manifest_key_appears_and_figures_have_units(chain, tmp_path):
    page = _page(chain["child"], tmp_path / "report.html")
    text = _visible(page)
    for key in RAW_KEYS:
        assert not re.search(rf"\b{key}\b", text), key
    for heading in ("Training", "Compression: what it cost", "Fidelity of each artifact",
                    "Speed on this machine"):
        assert f">{heading}" in page
    export = json.loads((chain["child"] / "export" / "manifest.json").read_text())
    int8 = export["artifacts"]["onnx-int8"]
    agreement = int8["fidelity"]["top1_agreement"]
    assert re.search(rf"onnx-int8 \| ONNX \| int8 \| {int8['bytes'] / 1e3:.1f} kB \| "
                     rf"{agreement:.2%}", _cells(page))
    rows = json.loads((chain["child"] / "manifest.json").read_text())["comparison"]["rows"]
    compressed = rows[-1]
    # accuracy as a percentage, the size in kB, its ratio and the p50 bench measured
    assert re.search(rf"This model, TFLite int8 \| {compressed['accuracy']:.2%} \| [^|]+ \| "
                     rf"{compressed['bytes'] / 1e3:.1f} kB \| [^|]+ kB \| "
                     rf"{compressed['size_ratio_to_parent_fp32_tflite']:.2f}x \| [0-9.]+% \| "
                     r"[0-9.]+ ms", _cells(page))
    assert re.search(r"tflite-int8 \| LiteRT \| [0-9.]+ kB \| [0-9.]+% \|", _cells(page))


def _cells(page: str) -> str:
    """Table rows as 'a | b | c' lines."""
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", page, flags=re.S)
    return "\n".join(" | ".join(_visible(cell).strip()
                                for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row))
                     for row in rows)


def test_an_optimizer_record_renders_as_a_table_with_the_chosen_row_marked(chain, child_copy,
                                                                             tmp_path):
    folder = child_copy / "optimize"
    folder.mkdir()
    (folder / "candidates.json").write_text(json.dumps(_candidates()))
    shutil.copy(chain["trained"] / "training_curves.png", folder / "pareto.png")
    page = _page(child_copy, tmp_path / "report.html")
    text = _visible(page)
    assert ">How the optimizer chose" in page
    chosen = re.findall(r"<tr class='chosen'>(.*?)</tr>", page)
    assert len(chosen) == 1 and ">★ tflite-int8<" in chosen[0]
    assert ">within budget, chosen<" in chosen[0]
    assert ("tflite-int8 won: fastest p50 among the 3 candidates within the 0.5-point budget "
            "(0.0109 ms); next came tflite-dynamic at 0.014 ms.") in text
    table = _cells(page)
    assert "\ntflite-int16x8 | int16x8 | LiteRT | 88.89% | -2.08 points |" in table
    assert table.count("over budget") == 1 and "skipped: --no-finetune" in table
    assert "| 113.4 kB | 103.6 kB | 0.0109 ms | 0.0253 ms | within budget" in table
    assert _png(folder / "pareto.png") in page
    for key in RAW_KEYS:
        assert not re.search(rf"\b{key}\b", text), key


def _candidates() -> dict:
    """A small candidates.json in the layout edgekit optimize writes."""
    def record(name, recipe, accuracy, drop, size, gzip, p50, p99, within, chosen=False,
               status="measured"):
        return {"name": name, "recipe": recipe, "accuracy_val": accuracy,
                "accuracy_test": 0.9694 if chosen else None, "drop_points": drop,
                "size_bytes": size, "gzip_bytes": gzip, "p50_ms": p50, "p99_ms": p99,
                "runtime": "litert", "within_budget": within, "chosen": chosen, "status": status}

    return {
        "schema": "edgekit.optimize.candidates", "schema_version": 1,
        "budget": {"max_drop_points": 0.5, "split": "val", "reference": "parent Keras model",
                   "reference_accuracy_val": 0.9097},
        "objective": {"name": "latency", "field": "p50_ms"}, "runtime": "litert", "threads": 1,
        "stopped_by_time_budget": False, "skipped_for_time": [], "chosen": "tflite-int8",
        "notes": [],
        "candidates": [
            record("tflite-fp32", "fp32", 0.9097, 0.0, 401076, 367349, 0.0428, 5.09, True),
            record("tflite-dynamic", "dynamic", 0.9097, 0.0, 109136, 103033, 0.0140, 0.0277, True),
            record("tflite-int8", "int8", 0.9097, 0.0, 113432, 103616, 0.0109, 0.0253, True,
                   chosen=True),
            record("tflite-int16x8", "int16x8", 0.8889, 2.08, 117760, 106592, 0.609, 5.07, False),
            record("tflite-prune50-qat", "prune50-qat", None, None, None, None, None, None, False,
                   status="skipped: --no-finetune"),
        ],
    }


def test_the_page_is_one_file_with_every_image_embedded(chain, tmp_path):
    page = _page(chain["child"], tmp_path / "report.html")
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) >= 4  # the parent's curves and matrix, the bench plots
    assert all(source.startswith("data:image/png;base64,") for source in sources)
    assert "<link" not in page and "<script" not in page
    assert "How the optimizer chose" not in page  # no optimizer record: no section


def test_a_trained_folders_page_shows_its_own_curves_and_the_command_that_compresses_it(
        chain, tmp_path):
    trained = chain["trained"]
    page = _page(trained, tmp_path / "report.html")
    text = _visible(page)
    assert _png(trained / "training_curves.png") in page
    assert "of the parent" not in text
    assert f"This model is not compressed: edgekit compress {trained} --int8" in text
    assert f"No exported artifacts yet: run edgekit export {trained}" in text
    assert f"No benchmark yet: run edgekit bench {trained}" in text


def test_a_parent_that_is_gone_is_said_in_words(child_copy, tmp_path):
    manifest = json.loads((child_copy / "manifest.json").read_text())
    gone = str(tmp_path / "moved-away")
    manifest["parent"].update(path=gone, absolute_path=gone)
    manifest["parent"].pop("file", None)
    (child_copy / "manifest.json").write_text(json.dumps(manifest))
    text = _visible(_page(child_copy, tmp_path / "report.html"))
    assert f"No training record to show: it was made from {gone}, which is no longer there" in text
    assert "Compression: what it cost" in text and "Parent (mlp-digits), Keras" in text
