"""The package's layers, checked as the README's test command runs (so CI checks them too).

``[tool.importlinter]`` in pyproject.toml holds the contracts: one-way layers from core to cli,
and no import cycles between sibling modules or packages.
"""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "lint-imports is missing: pip install -e '.[test]' installs import-linter"
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout and "KEPT" in done.stdout


def test_importing_a_library_module_never_imports_the_cli():
    code = ("import sys, edgekit, edgekit.compress, edgekit.export, edgekit.bench, edgekit.serve, "
            "edgekit.train, edgekit.pipeline, edgekit.inspect; "
            "print(sorted(m for m in sys.modules if m.startswith('edgekit.cli')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_importing_edgekit_and_its_cli_loads_no_heavy_library():
    # Heavy libraries are imported inside the functions that need them (each with a "lazy:"
    # reason), so `edgekit --help` and `import edgekit` stay fast.
    heavy = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "tf2onnx", "onnx",
             "onnxruntime", "tritonclient", "ai_edge_litert", "matplotlib", "sklearn", "PIL")
    code = f"import sys, edgekit, edgekit.cli.main; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
