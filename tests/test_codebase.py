"""The codebase's own gates: lint, layers, no import cycles, no hidden imports, no dead code.

They run in `./run tests` like any other test, so a change that climbs a layer, hides an import
inside a function or leaves a function nobody calls fails the suite, not a review.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "fieldsync"
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]):
    """(target module, line, inside a function?) for every fieldsync import of one module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = {id(inner) for fn in functions for inner in ast.walk(fn) if inner is not fn}
    inside = {id(node) for fn in functions for node in ast.walk(fn)} | nested
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            yield target, node.lineno, id(node) in inside


def _has_reason(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, or just above the block of imports it belongs to."""
    index = lineno - 1
    while index > 0 and lines[index - 1].strip().startswith(("import ", "from ")):
        index -= 1
    return any("#" in line for line in lines[max(0, index - 2):lineno])


def test_ruff_is_clean():
    done = _run(str(BIN / "ruff"), "check", "fieldsync", "tests", "bench", "cli.py", "docs", "contrib")
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_import_climbs_a_layer():
    """The layer contract in setup.cfg ([importlinter]): data flows one way."""
    done = _run(str(BIN / "lint-imports"), "--no-cache")
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_import_cycle_counting_imports_inside_functions():
    modules = _modules()
    graph = {name: {target for target, _, _ in _imports(name, path, modules)
                    if target in modules and target != name}
             for name, path in modules.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_imports_inside_functions_are_optional_dependencies_with_a_reason():
    """fieldsync's own modules are imported at the top; a function-level import is kept only for
    an optional or platform-only dependency, with a comment on or just above the line saying why."""
    modules = _modules()
    problems = []
    for name, path in modules.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for target, lineno, in_function in _imports(name, path, modules):
            if not in_function:
                continue
            if target.split(".")[0] == "fieldsync":
                problems.append(f"{path.relative_to(REPO)}:{lineno}: {target} imported inside a function")
            elif not _has_reason(lines, lineno):
                problems.append(f"{path.relative_to(REPO)}:{lineno}: lazy import of {target} without a reason")
    assert not problems, "\n".join(problems)


def test_no_dead_code():
    done = _run(str(BIN / "vulture"), "fieldsync", "tests/vulture_whitelist.py", "--min-confidence", "60",
                "--ignore-decorators", "@*.command,@*.group,@click.*")
    assert done.returncode == 0, done.stdout + done.stderr
