"""Code structure figures (issue 12): import cycles, function-level imports, plug-in cost, size.

Usage (from the repo root):
    .venv/bin/python benchmarks/structure_figures.py --no-write          # print only
    .venv/bin/python benchmarks/structure_figures.py --suite-seconds 480 --suite-tests 801
    .venv/bin/python benchmarks/structure_figures.py --no-write --json benchmarks/out/structure.json

Everything is measured by static analysis (``ast`` and ``tokenize``) of the package as it is on
disk when the script runs; no module of it is imported or hard-coded. The only module names the
script knows are the third-party heavy dependencies of ``HEAVY``.

- Import cycles between modules: strongly connected components of more than one module in the
  graph of every import (module level, inside functions, and ``importlib.import_module`` /
  ``__import__`` of a constant edgekit name). ``from edgekit.x import y`` where ``y`` is a
  submodule counts as importing ``edgekit.x.y``, unless ``edgekit/x/__init__.py`` binds ``y`` to
  something else (then it imports ``edgekit.x``). Imports under ``if TYPE_CHECKING:`` are left out
  and counted apart. The implicit import of a module's parent packages is not an edge (as grimp).
- Import cycles between first-level packages (``edgekit.bench``, ``edgekit.compress``, ...; a
  top-level module such as ``edgekit.errors`` is a unit of its own). Imports of the root package
  ``edgekit`` (its ``__init__.py``) are left out of that count and listed apart.
- Function-level imports: of edgekit modules (goal 0), of the heavy dependencies (lazy on purpose,
  counted with how many carry a reason comment: a ``#`` comment on the import's line(s) or on the
  comment line just above that matches ``REASON``), of anything else (goal 0).
- Lines of code of the package and of tests/ (total, and without blank and comment-only lines).
- Files to touch to add a technique / a format / a runtime: shown by the toy plug-in tests
  (``test_toy_technique*``, ``test_toy_format*``, ``test_toy_runtime*`` anywhere under tests/).
- Test-suite time: given on the command line by whoever ran the whole suite (this script does not
  run it), against the time before the restructuring.
- ``lint-imports`` (import-linter), when a contract configuration exists.

``--no-write`` prints the section instead of rewriting its part of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import tokenize
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import machine_line, replace_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "edgekit"
SECTION = "structure"
HEADING = "## Code structure (issue 12)"

# Third-party dependencies heavy enough to import lazily, inside the function that needs them.
HEAVY = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "tf2onnx", "onnx",
         "onnxruntime", "onnxconverter_common", "tritonclient", "ai_edge_litert", "matplotlib",
         "sklearn", "PIL", "google.protobuf", "absl")
# A comment gives the reason of a function-level import when it says why the import is deferred.
REASON = re.compile(
    r"lazy|lazily|defer|heavy|startup|start-up|import[- ]time|\bonly when\b|\boptional\b|--help|"
    r"\bpays? for\b|\bcost|\bslow\b|\bloads? (?:tensorflow|tf|keras)|before (?:tensorflow|tf)\b",
    re.I)
# Files to touch before the restructuring (issue 12), and the toy plug-in tests that show the new
# figure.
PLUG_INS = {"technique": ("test_toy_technique", 7), "format": ("test_toy_format", 3),
            "runtime": ("test_toy_runtime", 4)}
# The whole suite at commit b57607a, before the restructuring: 8 min 18 s for 793 tests.
BASELINE_SECONDS = 498.0
BASELINE_TESTS = 793
BASELINE_COMMIT = "b57607a"


# --------------------------------------------------------------------------------------------
# 1. Reading the package.


@dataclass
class Import:
    """One import statement (or one ``import_module`` call) of a module of the package."""

    module: str  # the importing module, e.g. "edgekit.bench.run"
    path: str  # its file, relative to the folder above the package
    line: int
    statement: str  # the source text, on one line
    written: list[str]  # the absolute names it imports, e.g. ["edgekit.outputs"], ["tensorflow"]
    resolved: list[str] = field(default_factory=list)  # the package's modules it lands on
    unresolved: list[str] = field(default_factory=list)  # package names that are no module
    function_level: bool = False
    type_checking: bool = False
    dynamic: bool = False  # importlib.import_module / __import__ with a constant name
    comment: str = ""  # comments on its line(s) and on the comment line just above
    via_shadowed: list[str] = field(default_factory=list)  # "pkg.name" bound over a submodule

    @property
    def internal(self) -> bool:
        return any(_inside(name, self.root) for name in self.written)

    @property
    def root(self) -> str:
        return self.module.split(".", 1)[0]

    @property
    def has_reason(self) -> bool:
        return bool(REASON.search(self.comment))


@dataclass
class Analysis:
    package: str
    modules: dict[str, str]  # module name -> file (relative to the folder above the package)
    imports: list[Import]
    parse_errors: list[str]
    dynamic_unresolved: list[str]  # import_module(...) calls whose name is not a constant
    duplicates: list[str]  # x.py beside x/__init__.py (the package wins)


def _inside(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


def discover_modules(package_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """``{module name: file}`` for every ``.py`` file below ``package_dir``."""
    package_dir = Path(package_dir)
    base = package_dir.parent
    modules: dict[str, Path] = {}
    duplicates = []
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if not all(part.isidentifier() for part in parts):
            continue  # not importable under a dotted name (e.g. a "data-files" folder)
        name = ".".join(parts)
        if name in modules:
            duplicates.append(name)
            if path.name != "__init__.py":
                continue
        modules[name] = path
    return modules, duplicates


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _comments(source: str) -> tuple[dict[int, str], set[int]]:
    """``{line: comment text}`` and the lines holding nothing but a comment."""
    comments, code_lines = {}, set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string
            elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                                    tokenize.DEDENT, tokenize.ENDMARKER, tokenize.ENCODING):
                code_lines.update(range(token.start[0], token.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        pass
    return comments, set(comments) - code_lines


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    if not level:
        return name or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[:len(parts) - (level - 1)] if level > 1 else parts
    return ".".join(parts + ([name] if name else []))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(tree: ast.AST):
    """Yield ``(node, function_level, type_checking)`` for every import node and call."""
    stack = [(child, False, False) for child in reversed(list(ast.iter_child_nodes(tree)))]
    while stack:
        node, in_function, in_type_checking = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Call)):
            yield node, in_function, in_type_checking
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children = [(child, inner, True) for child in node.body]
            children += [(child, inner, in_type_checking) for child in node.orelse]
            children.append((node.test, inner, in_type_checking))
        else:
            children = [(child, inner, in_type_checking) for child in ast.iter_child_nodes(node)]
        stack.extend(reversed(children))


def _shadowing_names(tree: ast.Module, package: str, modules: dict) -> set[str]:
    """Names that a package's ``__init__.py`` binds, at its top level, to other than its submodule.

    ``from pkg import name`` then gives that object, not the submodule ``pkg.name``: Python only
    imports the submodule when the package has no attribute of that name.
    """
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            source = _absolute(package, True, node.level, node.module)
            for alias in node.names:
                bound = alias.asname or alias.name
                # Bound to the submodule itself only by ``from pkg import name``.
                if f"{source}.{alias.name}" != f"{package}.{bound}":
                    names.add(bound)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            while targets:
                target = targets.pop()
                if isinstance(target, ast.Name):
                    names.add(target.id)
                elif isinstance(target, (ast.Tuple, ast.List)):
                    targets.extend(target.elts)
                elif isinstance(target, ast.Starred):
                    targets.append(target.value)
    return {name for name in names if f"{package}.{name}" in modules}


def _dynamic_name(node: ast.Call) -> tuple[bool, str | None]:
    """(is an import_module / __import__ call, its constant module name or None)."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in ("import_module", "__import__") or not node.args:
        return False, None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return True, first.value
    return True, None


def analyse(package_dir: Path) -> Analysis:
    """Every import of every module below ``package_dir`` (a package folder such as edgekit/)."""
    package_dir = Path(package_dir)
    base = package_dir.parent
    package = package_dir.name
    files, duplicates = discover_modules(package_dir)
    modules = {name: path.relative_to(base).as_posix() for name, path in files.items()}
    trees, sources, parse_errors = {}, {}, []
    for name, path in files.items():
        try:
            sources[name] = path.read_text(encoding="utf-8")
            trees[name] = ast.parse(sources[name], filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError) as error:
            parse_errors.append(f"{modules[name]}: {error}")
    shadowed = {name: _shadowing_names(tree, name, files) for name, tree in trees.items()
                if _is_package(files[name])}

    def resolve(found: Import, target: str, from_module: str | None = None) -> None:
        """Record the module ``target`` lands on (``from_module``: the X of ``from X import``)."""
        if not _inside(target, package):
            return
        if from_module is not None:
            leaf = target.rsplit(".", 1)[1]
            if target in modules and leaf not in shadowed.get(from_module, set()):
                found.resolved.append(target)
                return
            if target in modules:
                found.via_shadowed.append(target)
            target = from_module
        if target in modules:
            found.resolved.append(target)
        else:
            found.unresolved.append(target)

    imports, dynamic_unresolved = [], []
    for name, tree in trees.items():
        is_package = _is_package(files[name])
        lines = sources[name].splitlines()
        comments, comment_only = _comments(sources[name])
        for node, function_level, type_checking in _walk(tree):
            is_dynamic, constant = _dynamic_name(node) if isinstance(node, ast.Call) else (False, None)
            if isinstance(node, ast.Call) and not is_dynamic:
                continue
            end = getattr(node, "end_lineno", node.lineno) or node.lineno
            text = " ".join(line.strip() for line in lines[node.lineno - 1:end])
            notes = [comments[line] for line in range(node.lineno, end + 1) if line in comments]
            if node.lineno - 1 in comment_only:
                notes.insert(0, comments[node.lineno - 1])
            found = Import(name, modules[name], node.lineno, text, [],
                           function_level=function_level, type_checking=type_checking,
                           comment=" ".join(notes))
            if isinstance(node, ast.Import):
                found.written = [alias.name for alias in node.names]
                for alias in node.names:
                    resolve(found, alias.name)
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(name, is_package, node.level, node.module)
                if not _inside(source, package):
                    found.written = [source]
                else:
                    found.written = [source if alias.name == "*" else f"{source}.{alias.name}"
                                     for alias in node.names]
                    for alias in node.names:
                        if alias.name == "*":
                            resolve(found, source)
                        else:
                            resolve(found, f"{source}.{alias.name}", from_module=source)
            else:
                if constant is None:
                    dynamic_unresolved.append(f"{modules[name]}:{node.lineno}")
                    continue
                found.dynamic = True
                found.written = [constant]
                resolve(found, constant)
            found.resolved = sorted(set(found.resolved) - {name})
            imports.append(found)
    return Analysis(package, modules, imports, parse_errors, dynamic_unresolved, duplicates)


# --------------------------------------------------------------------------------------------
# 2. Graphs and cycles.


def module_graph(analysis: Analysis, function_level: bool = True, root: bool = True,
                 dynamic: bool = True) -> dict[str, set[str]]:
    """``{module: modules it imports}``; TYPE_CHECKING imports never count."""
    graph: dict[str, set[str]] = {name: set() for name in analysis.modules}
    for found in analysis.imports:
        if found.type_checking or (found.function_level and not function_level) or \
                (found.dynamic and not dynamic):
            continue
        for target in found.resolved:
            if target != found.module and (root or target != analysis.package):
                graph[found.module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative), largest first."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found, key=lambda component: (-len(component), component))


def shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One shortest cycle inside ``component`` (breadth-first from each member), closed."""
    members = set(component)
    best: list[str] = []
    for start in component:
        previous = {start: None}
        queue = [start]
        while queue:
            node = queue.pop(0)
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    path = path[::-1] + [start]
                    if not best or len(path) < len(best):
                        best = path
                    queue = []
                    break
                if child not in previous:
                    previous[child] = node
                    queue.append(child)
    return best


def unit_of(module: str, package: str) -> str:
    """The first-level unit: ``edgekit.bench.run`` -> ``edgekit.bench``; the root stays itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == package else module


def package_edges(analysis: Analysis, function_level: bool = True) -> dict[tuple[str, str], list[Import]]:
    """``{(unit, unit it imports): the imports}`` between different first-level units.

    The root package (its ``__init__.py``) is neither source nor target: see ``root_imports``.
    """
    edges: dict[tuple[str, str], list[Import]] = {}
    package = analysis.package
    for found in analysis.imports:
        if found.type_checking or (found.function_level and not function_level):
            continue
        source = unit_of(found.module, package)
        if source == package:
            continue
        for target in {unit_of(name, package) for name in found.resolved}:
            if target not in (source, package):
                edges.setdefault((source, target), []).append(found)
    return edges


def package_graph(analysis: Analysis, function_level: bool = True) -> dict[str, set[str]]:
    units = {unit_of(name, analysis.package) for name in analysis.modules} - {analysis.package}
    graph: dict[str, set[str]] = {unit: set() for unit in units}
    for source, target in package_edges(analysis, function_level):
        graph[source].add(target)
    return graph


def root_imports(analysis: Analysis) -> list[Import]:
    """Imports of the root package by the package's own modules (the root's ``__init__`` aside)."""
    return [found for found in analysis.imports
            if analysis.package in found.resolved and found.module != analysis.package
            and not found.type_checking]


# --------------------------------------------------------------------------------------------
# 3. Function-level imports.


def heavy_dependency(name: str) -> str | None:
    for dependency in HEAVY:
        if name == dependency or name.startswith(dependency + "."):
            return dependency
    return None


def function_level_imports(analysis: Analysis) -> dict:
    """Import statements inside function bodies: internal, heavy dependencies, others."""
    internal, heavy, other = [], [], []
    for found in analysis.imports:
        if not found.function_level or found.type_checking:
            continue
        if found.internal:
            internal.append(found)
        elif any(heavy_dependency(name) for name in found.written):
            heavy.append(found)
        else:
            other.append(found)
    per_dependency: dict[str, int] = {}
    for found in heavy:
        for dependency in sorted({heavy_dependency(name) for name in found.written} - {None}):
            per_dependency[dependency] = per_dependency.get(dependency, 0) + 1
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    return {
        "internal": internal, "heavy": heavy, "other": other,
        "heavy_with_reason": [found for found in heavy if found.has_reason],
        "heavy_without_reason": [found for found in heavy if not found.has_reason],
        "heavy_per_dependency": dict(sorted(per_dependency.items(), key=lambda item: -item[1])),
        "other_stdlib": [found for found in other
                         if all(name.split(".")[0] in stdlib for name in found.written)],
        "internal_dynamic": [found for found in internal if found.dynamic],
    }


# --------------------------------------------------------------------------------------------
# 4-7. Size, plug-in cost, suite time, import-linter, git.


def lines_of_code(folder: Path) -> dict:
    """Files, lines, and lines that are neither blank nor only a comment, of the .py files."""
    files = total = code = 0
    for path in sorted(Path(folder).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        source = path.read_text(encoding="utf-8", errors="replace")
        lines = source.splitlines()
        files += 1
        total += len(lines)
        _, comment_only = _comments(source)
        code += sum(1 for number, line in enumerate(lines, 1)
                    if line.strip() and number not in comment_only)
    return {"files": files, "lines": total, "code_lines": code}


def toy_plugin_tests(tests_dir: Path, repo: Path) -> dict[str, list[str]]:
    """``{"technique": ["tests/...py::test_toy_technique_..."], ...}`` from the test files."""
    found: dict[str, list[str]] = {kind: [] for kind in PLUG_INS}
    for path in sorted(Path(tests_dir).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        relative = path.relative_to(repo).as_posix() if path.is_relative_to(repo) else str(path)

        def visit(node, prefix):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef):
                    visit(child, prefix + [child.name])
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for kind, (start, _) in PLUG_INS.items():
                        if child.name.startswith(start):
                            found[kind].append("::".join([relative, *prefix, child.name]))

        visit(tree, [])
    return found


def suite_time(seconds: float | None, tests: int | None, baseline_seconds: float,
               baseline_tests: int) -> dict:
    figures = {"seconds": seconds, "tests": tests, "baseline_seconds": baseline_seconds,
               "baseline_tests": baseline_tests, "baseline_commit": BASELINE_COMMIT,
               "ratio": None, "per_test_ratio": None}
    if seconds:
        figures["ratio"] = seconds / baseline_seconds
        if tests:
            figures["per_test_ratio"] = (seconds / tests) / (baseline_seconds / baseline_tests)
    return figures


def suite_split(junit: Path, repo: Path, baseline_commit: str) -> dict:
    """Test time from a JUnit XML file (``PYTEST_ADDOPTS=--junitxml=FILE``), split between the
    test files that existed at ``baseline_commit`` (renames followed) and the files added since."""
    import subprocess
    import xml.etree.ElementTree as ElementTree

    added = subprocess.run(["git", "diff", "--name-status", "-M", baseline_commit, "HEAD", "--", "tests"],
                           cwd=repo, capture_output=True, text=True, check=True).stdout
    new_files = {line.split("\t")[-1] for line in added.splitlines() if line.startswith("A")}
    split = {"existing": {"tests": 0, "seconds": 0.0}, "added": {"tests": 0, "seconds": 0.0}}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        parts = case.get("classname", "").split(".")
        files = {"/".join(parts[:index]) + ".py" for index in range(1, len(parts) + 1)}
        side = split["added" if files & new_files else "existing"]
        side["tests"] += 1
        side["seconds"] += float(case.get("time") or 0)
    return split


def importlinter_config(repo: Path) -> str | None:
    """Where import-linter's contracts are written, if anywhere."""
    pyproject = repo / "pyproject.toml"
    if pyproject.exists():
        text = pyproject.read_text(encoding="utf-8")
        try:
            import tomllib

            if "importlinter" in tomllib.loads(text).get("tool", {}):
                return "pyproject.toml [tool.importlinter]"
        except (ImportError, ValueError):
            if re.search(r"^\[tool\.importlinter", text, re.M):
                return "pyproject.toml [tool.importlinter]"
    if (repo / ".importlinter").exists():
        return ".importlinter"
    setup_cfg = repo / "setup.cfg"
    if setup_cfg.exists() and re.search(r"^\[importlinter", setup_cfg.read_text(), re.M):
        return "setup.cfg [importlinter]"
    return None


def run_lint_imports(repo: Path) -> dict:
    config = importlinter_config(repo)
    if config is None:
        return {"config": None, "ran": False}
    candidates = [Path(sys.executable).parent / "lint-imports", repo / ".venv" / "bin" / "lint-imports"]
    program = next((str(path) for path in candidates if path.exists()), shutil.which("lint-imports"))
    if program is None:
        return {"config": config, "ran": False, "error": "lint-imports not found"}
    started = time.time()
    try:
        done = subprocess.run([program, "--no-cache"], cwd=repo, capture_output=True, text=True,
                              timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"config": config, "ran": False, "error": str(error)}
    output = done.stdout + done.stderr
    counts = re.search(r"Contracts:\s*(\d+)\s*kept,\s*(\d+)\s*broken", output)
    broken = re.findall(r"^(.+?)\s+BROKEN\s*$", output, re.M)
    return {"config": config, "ran": True, "passed": done.returncode == 0,
            "returncode": done.returncode, "kept": int(counts[1]) if counts else None,
            "broken": int(counts[2]) if counts else None, "broken_contracts": broken,
            "seconds": round(time.time() - started, 1), "output_tail": output.strip()[-2000:]}


def git_state(repo: Path, package: str) -> dict:
    def git(*arguments):
        try:
            return subprocess.run(["git", *arguments], cwd=repo, capture_output=True, text=True,
                                  timeout=60).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD") or "unknown",
            "uncommitted": bool(git("status", "--porcelain", "--", package))}


def this_machine() -> dict:
    """edgekit's own machine description when its manifest module imports, else the same fields."""
    try:
        from edgekit.manifest import machine

        return machine()
    except Exception:  # the package may be mid-move; describe the machine here instead
        cpu, flags = platform.processor() or "", set()
        try:
            with open("/proc/cpuinfo") as handle:
                for line in handle:
                    if line.startswith("model name") and not cpu:
                        cpu = line.split(":", 1)[1].strip()
                    elif line.startswith("flags"):
                        flags = set(line.split(":", 1)[1].split())
        except OSError:
            pass
        wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
        return {"cpu": cpu or platform.machine(), "cpu_flags": [f for f in wanted if f in flags],
                "cores": os.cpu_count(), "os": f"{platform.system()} {platform.release()}",
                "arch": platform.machine()}


# --------------------------------------------------------------------------------------------
# Putting it together.


def _site(found: Import) -> str:
    return f"{found.path}:{found.line}"


def _record(found: Import) -> dict:
    record = asdict(found)
    record["has_reason"] = found.has_reason
    return record


def measure(repo: Path = REPO, package: str = PACKAGE, tests: str = "tests", suite: dict | None = None,
            lint: bool = True) -> dict:
    """All the figures, as plain data (what ``--json`` writes)."""
    repo = Path(repo)
    analysis = analyse(repo / package)
    all_imports = module_graph(analysis)
    module_cycles = cycles(all_imports)
    without_root = cycles(module_graph(analysis, root=False))
    module_level_cycles = cycles(module_graph(analysis, function_level=False, dynamic=False))
    units = package_graph(analysis)
    unit_cycles = cycles(units)
    unit_cycles_module_level = cycles(package_graph(analysis, function_level=False))
    edges = package_edges(analysis)
    in_function = function_level_imports(analysis)
    roots = root_imports(analysis)
    packages = sorted(name for name, path in analysis.modules.items() if path.endswith("__init__.py"))
    return {
        "package": package,
        "git": git_state(repo, package),
        "machine": this_machine(),
        "measured": time.strftime("%Y-%m-%d"),
        "modules": len(analysis.modules),
        "packages": len(packages),
        "first_level_units": sorted(units),
        "parse_errors": analysis.parse_errors,
        "duplicate_modules": analysis.duplicates,
        "module_cycles": [{"modules": component,
                           "example": shortest_cycle(all_imports, component),
                           "through_root": package in component}
                          for component in module_cycles],
        "module_cycles_without_root": len(without_root),
        "module_cycles_module_level_only": len(module_level_cycles),
        "package_cycles": [{
            "units": component, "example": shortest_cycle(units, component),
            "edges": [{"from": source, "to": target, "imports": len(found),
                       "function_level": sum(1 for one in found if one.function_level),
                       "sites": [f"{_site(one)} {one.module} -> "
                                 f"{', '.join(n for n in one.resolved if unit_of(n, package) == target)}"
                                 f"{' (in a function)' if one.function_level else ''}"
                                 for one in found]}
                      for (source, target), found in sorted(edges.items())
                      if source in component and target in component]}
            for component in unit_cycles],
        "package_cycles_module_level_only": len(unit_cycles_module_level),
        "root_imports": [_record(found) for found in roots],
        "function_level": {
            "internal": len(in_function["internal"]),
            "internal_dynamic": len(in_function["internal_dynamic"]),
            "heavy": len(in_function["heavy"]),
            "heavy_with_reason": len(in_function["heavy_with_reason"]),
            "heavy_per_dependency": in_function["heavy_per_dependency"],
            "other": len(in_function["other"]),
            "other_stdlib": len(in_function["other_stdlib"]),
            "internal_sites": [_record(found) for found in in_function["internal"]],
            "heavy_without_reason_sites": [_record(f) for f in in_function["heavy_without_reason"]],
            "other_sites": [_record(found) for found in in_function["other"]],
        },
        "type_checking_imports": sum(1 for found in analysis.imports if found.type_checking),
        "dynamic_imports_not_constant": analysis.dynamic_unresolved,
        "unresolved_internal": sorted({f"{_site(found)} {name}" for found in analysis.imports
                                       for name in found.unresolved}),
        "shadowed_submodule_imports": sorted({f"{_site(found)} {name}" for found in analysis.imports
                                              for name in found.via_shadowed}),
        "lines": {"package": lines_of_code(repo / package), "tests": lines_of_code(repo / tests)},
        "plug_ins": {kind: {"tests": shown, "before": before}
                     for kind, shown in toy_plugin_tests(repo / tests, repo).items()
                     for before in [PLUG_INS[kind][1]]},
        "suite": suite or suite_time(None, None, BASELINE_SECONDS, BASELINE_TESTS),
        "lint_imports": run_lint_imports(repo) if lint else {"config": importlinter_config(repo),
                                                              "ran": False, "skipped": True},
    }


def _count(number: int, word: str) -> str:
    return f"{number:,} {word}{'' if number == 1 else 's'}"


def _sites(records: list[dict], limit: int = 30, top: int = 8) -> str:
    """``path:line (what), line (what)`` grouped by file; past ``limit`` sites, counts only."""
    by_file: dict[str, list[str]] = {}
    by_target: dict[str, int] = {}
    for record in records:
        what = ", ".join(record["resolved"] or record["written"])
        by_file.setdefault(record["path"], []).append(f"{record['line']} ({what})")
        for name in record["resolved"] or record["written"]:
            by_target[name] = by_target.get(name, 0) + 1
    if len(records) <= limit:
        return "; ".join(f"`{path}`:{', '.join(lines)}" for path, lines in by_file.items())

    def most(counts: dict[str, int]) -> str:
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return ", ".join(f"`{name}` {count}" for name, count in ranked[:top]) + (
            f", {len(ranked) - top} more" if len(ranked) > top else "")

    return (f"{len(records)} in {len(by_file)} files; most in {most({p: len(l) for p, l in by_file.items()})}; "
            f"most imported: {most(by_target)} (every place in `--json`)")


def render(figures: dict, command: str) -> str:
    package = figures["package"]
    git = figures["git"]
    commit = git["commit"] + (" + uncommitted changes" if git["uncommitted"] else "")
    module_cycles = figures["module_cycles"]
    package_cycles = figures["package_cycles"]
    inner = figures["function_level"]
    lines_package, lines_tests = figures["lines"]["package"], figures["lines"]["tests"]
    suite, lint = figures["suite"], figures["lint_imports"]
    largest = max((len(cycle["modules"]) for cycle in module_cycles), default=0)

    if suite["seconds"]:
        ratio = suite["ratio"]
        suite_text = (f"{suite['seconds']:.0f} s" + (f" for {suite['tests']:,} tests" if suite["tests"] else "")
                      + f"; {ratio:.2f}x the {suite['baseline_seconds']:.0f} s for "
                      f"{suite['baseline_tests']:,} tests at {suite['baseline_commit']}"
                      + (f" ({suite['per_test_ratio']:.2f}x per test)" if suite["per_test_ratio"] else "")
                      + (" — met" if ratio <= 1 else " — **slower**"))
        split = suite.get("split")
        if split:
            existing, added = split["existing"], split["added"]
            suite_text += (f". By file (JUnit times): the test files that existed at "
                           f"{suite['baseline_commit']} ran {existing['tests']:,} tests in "
                           f"{existing['seconds']:.0f} s ({existing['seconds'] / suite['baseline_seconds']:.2f}x "
                           f"the whole suite then, with the tests added to those files); the files "
                           f"added since ran {added['tests']:,} tests in {added['seconds']:.0f} s")
        if suite.get("note"):
            suite_text += f" ({suite['note']})"
    else:
        suite_text = (f"not measured in this run (pass `--suite-seconds` and `--suite-tests`); "
                      f"before: {suite['baseline_seconds']:.0f} s for {suite['baseline_tests']:,} tests "
                      f"at {suite['baseline_commit']}")
    if lint.get("ran"):
        lint_text = (("passes" if lint["passed"] else "**fails**")
                     + (f": {lint['kept']} contract(s) kept, {lint['broken']} broken"
                        if lint["kept"] is not None else f" (exit {lint['returncode']})")
                     + f" ({lint['config']})")
    elif lint.get("config"):
        lint_text = f"not run ({lint.get('error') or 'skipped'}; config in {lint['config']})"
    else:
        lint_text = "no contracts yet (no `[tool.importlinter]` in pyproject.toml)"

    def plug_in(kind: str) -> str:
        shown = figures["plug_ins"][kind]
        before = f"before: about {shown['before']}"
        if not shown["tests"]:
            return f"not yet shown by a test ({before})"
        tests = ", ".join(f"`{test}`" for test in shown["tests"])
        return f"1 module + 1 registration (shown by {tests}; {before})"

    heavy_per = ", ".join(f"{name} {count}" for name, count in inner["heavy_per_dependency"].items())
    rows = [
        ("import cycles between modules (every import, function-level included)",
         f"{len(module_cycles)}" + (f" (largest: {largest} modules)" if module_cycles else "")
         + f"; {figures['module_cycles_without_root']} without imports of the root `{package}`; "
         f"{figures['module_cycles_module_level_only']} counting module-level imports only", "0"),
        ("import cycles between first-level packages (root `__init__` left out)",
         f"{len(package_cycles)}"
         + (f" (largest: {max(len(c['units']) for c in package_cycles)} units)" if package_cycles else "")
         + f"; {figures['package_cycles_module_level_only']} counting module-level imports only", "0"),
        (f"imports of the root package `{package}` by its own modules",
         f"{len(figures['root_imports'])}", "0"),
        ("function-level imports of edgekit modules",
         f"{inner['internal']}" + (f" ({inner['internal_dynamic']} by `import_module`)"
                                   if inner["internal_dynamic"] else ""), "0"),
        ("function-level imports of heavy dependencies (lazy on purpose)",
         f"{inner['heavy']}, {inner['heavy_with_reason']} with a reason comment"
         + (f" ({heavy_per})" if heavy_per else ""), "each with a reason"),
        ("other function-level imports (stdlib etc.)",
         f"{inner['other']} ({inner['other_stdlib']} stdlib)", "0"),
        ("files to touch to add a technique", plug_in("technique"), "1"),
        ("files to touch to add a format", plug_in("format"), "1"),
        ("files to touch to add a runtime", plug_in("runtime"), "1"),
        (f"lines of code, `{package}/`",
         f"{lines_package['code_lines']:,} ({lines_package['lines']:,} with blank and comment lines), "
         f"{figures['modules']} modules in {figures['packages']} packages", "—"),
        ("lines of code, `tests/`",
         f"{lines_tests['code_lines']:,} ({lines_tests['lines']:,} with blank and comment lines), "
         f"{lines_tests['files']} files", "—"),
        ("test-suite time", suite_text, "no slower"),
        ("import-linter contracts (`lint-imports`)", lint_text, "pass"),
    ]
    lines = [
        HEADING,
        "",
        f"Commit {commit}. Machine: {machine_line(figures['machine'])}. Script: "
        f"`benchmarks/structure_figures.py`. Measured {figures['measured']}.",
        "",
        f"Static analysis (`ast`) of every module under `{package}/`, imports inside functions "
        "included; imports under `if TYPE_CHECKING:` are left out "
        f"({figures['type_checking_imports']} of them). `from {package}.x import y` counts as "
        f"importing `{package}.x.y` when `y` is a submodule. A reason comment is a `#` comment on "
        "the import or on the line above that says why it is deferred (lazy, heavy, startup, ...). "
        "Files to touch: before the restructuring, from issue 12.",
        "",
        "| figure | now | goal |",
        "| --- | --- | --- |",
        *[f"| {figure} | {now} | {goal} |" for figure, now, goal in rows],
    ]
    if module_cycles:
        lines += ["", "Import cycles between modules (members; one shortest cycle):", ""]
        for cycle in module_cycles:
            members = cycle["modules"]
            shown = ", ".join(f"`{m}`" for m in members[:12]) + (
                f" and {len(members) - 12} more" if len(members) > 12 else "")
            lines.append(f"- {len(members)} modules: {shown}; e.g. "
                         + " -> ".join(f"`{m}`" for m in cycle["example"]))
    if package_cycles:
        lines += ["", "Import cycles between first-level packages (edges: imports, of which in a "
                      "function; first place):", ""]
        for cycle in package_cycles:
            lines.append(f"- {', '.join(f'`{u}`' for u in cycle['units'])}; e.g. "
                         + " -> ".join(f"`{u}`" for u in cycle["example"]) + ". Edges: "
                         + "; ".join(f"`{e['from']}` -> `{e['to']}` {e['imports']}"
                                     f"/{e['function_level']} ({e['sites'][0].split(' ')[0]})"
                                     for e in cycle["edges"]))
    if lint.get("broken_contracts"):
        lines += ["", "Broken import-linter contracts: "
                  + "; ".join(f"{name}" for name in lint["broken_contracts"]) + "."]
    if figures["root_imports"]:
        lines += ["", f"Imports of the root `{package}` by its own modules: "
                  + _sites(figures["root_imports"]) + "."]
    if inner["internal_sites"]:
        lines += ["", "Function-level imports of edgekit modules: " + _sites(inner["internal_sites"]) + "."]
    if inner["heavy_without_reason_sites"]:
        lines += ["", "Heavy function-level imports without a reason comment: "
                  + _sites(inner["heavy_without_reason_sites"]) + "."]
    if inner["other_sites"]:
        lines += ["", "Other function-level imports: " + _sites(inner["other_sites"]) + "."]
    odd = []
    if figures["parse_errors"]:
        odd.append(f"{len(figures['parse_errors'])} file(s) do not parse: "
                   + "; ".join(figures["parse_errors"][:5]))
    if figures["unresolved_internal"]:
        odd.append(f"{len(figures['unresolved_internal'])} import(s) of `{package}` names that are no "
                   "module: " + "; ".join(figures["unresolved_internal"][:10]))
    if figures["duplicate_modules"]:
        odd.append("module file beside a package of the same name: "
                   + ", ".join(figures["duplicate_modules"]))
    if figures["dynamic_imports_not_constant"]:
        odd.append("`import_module` of a computed name (not in the graph): "
                   + ", ".join(figures["dynamic_imports_not_constant"]))
    if odd:
        lines += ["", "Notes: " + " ".join(f"{note}." for note in odd)]
    lines += ["", f"Rerun (from the repo root): `{command}`"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite-seconds", type=float,
                        help="wall time of the whole test suite, measured by whoever ran it")
    parser.add_argument("--suite-tests", type=int, help="number of tests in that run")
    parser.add_argument("--baseline-seconds", type=float, default=BASELINE_SECONDS,
                        help=f"suite time before the restructuring [default {BASELINE_SECONDS:g}: "
                             f"8 min 18 s at {BASELINE_COMMIT}]")
    parser.add_argument("--baseline-tests", type=int, default=BASELINE_TESTS,
                        help=f"tests in that run [default {BASELINE_TESTS}]")
    parser.add_argument("--suite-junit", type=Path,
                        help="that run's JUnit XML: splits its time between the test files that "
                             "existed before the restructuring and those added since")
    parser.add_argument("--suite-note", default="",
                        help="how that run was measured (machine load, commit), shown beside it")
    parser.add_argument("--no-lint", action="store_true", help="do not run lint-imports")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    parser.add_argument("--no-write", action="store_true",
                        help="print the section instead of writing it into benchmarks/RESULTS.md")
    arguments = parser.parse_args(argv)
    suite = suite_time(arguments.suite_seconds, arguments.suite_tests, arguments.baseline_seconds,
                       arguments.baseline_tests)
    if arguments.suite_junit:
        suite["split"] = suite_split(arguments.suite_junit, REPO, BASELINE_COMMIT)
    suite["note"] = arguments.suite_note
    figures = measure(REPO, PACKAGE, "tests", suite=suite, lint=not arguments.no_lint)
    command = ".venv/bin/python benchmarks/structure_figures.py"
    if arguments.suite_seconds:
        command += f" --suite-seconds {arguments.suite_seconds:g}"
    if arguments.suite_tests:
        command += f" --suite-tests {arguments.suite_tests}"
    if arguments.suite_junit:
        command += " --suite-junit JUNIT.xml"
    if arguments.baseline_seconds != BASELINE_SECONDS:
        command += f" --baseline-seconds {arguments.baseline_seconds:g}"
    if arguments.baseline_tests != BASELINE_TESTS:
        command += f" --baseline-tests {arguments.baseline_tests}"
    section = render(figures, command)
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(figures, indent=2, default=str))
    if arguments.no_write:
        print(section)
        print("\n--no-write: RESULTS.md left as it is"
              + (f" (figures in {arguments.json})" if arguments.json else ""))
    else:
        print(f"wrote {replace_section(SECTION, section)}"
              + (f" (figures in {arguments.json})" if arguments.json else ""))


if __name__ == "__main__":
    main()
