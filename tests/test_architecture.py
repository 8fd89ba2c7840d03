"""The shape of the code, held by tests: imports only point down (import-linter's
contracts in pyproject.toml), the benchmark scripts use the installed packages only
(never ``tests``, never an edited ``sys.path``), and every error class lives in an errors
module under its package's root error."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = {
    "edgetwin_common": "EdgetwinError",
    "edgetwin_contracts": "ContractError",
    "edge_agent": "EdgeAgentError",
    "model_export": "ExportError",
    "cloud_sync": "CloudSyncError",
    "edgetwin_demo": None,
}
"""Each product package and its root error class (None: it defines no errors)."""


def test_import_contracts_hold(tmp_path: Path) -> None:
    """lint-imports over the working tree, without its cache (a stale cache would hide a
    new import)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout


_SYS_PATH_EDIT = re.compile(r"\bsys\.path\s*(\.\s*(insert|append|extend)\s*\(|\+?=[^=]|\[)")
"""sys.path changed in place, assigned or indexed for assignment: also inside a string
holding a child process's program."""


def bench_script_problems(text: str) -> list[str]:
    """Why a benchmark script is not a plain user of the installed packages: each import
    of ``tests`` and each edit of ``sys.path``, with its line."""
    problems = []
    for node in ast.walk(ast.parse(text)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        problems += [
            f"line {node.lineno}: imports {name}"
            for name in names
            if name == "tests" or name.startswith("tests.")
        ]
    for number, line in enumerate(text.splitlines(), 1):
        if _SYS_PATH_EDIT.search(line):
            problems.append(f"line {number}: edits sys.path")
    return problems


@pytest.mark.parametrize("script", sorted((REPO / "bench").glob("*.py")), ids=lambda p: p.name)
def test_bench_scripts_neither_import_tests_nor_edit_sys_path(script: Path) -> None:
    assert bench_script_problems(script.read_text(encoding="utf-8")) == []


def test_the_bench_check_sees_each_violation() -> None:
    assert bench_script_problems("import os\nfrom _common import REPO\nprint(sys.path)\n") == []
    found = bench_script_problems(
        "import sys\nsys.path.insert(0, 'x')\nfrom tests.conftest import require\n"
        "import tests.edge_agent\nsys.path = []\nsys.path[:0] = ['y']\n"
        "CHILD = 'import sys; sys.path.append(sys.argv[1])'\n"
    )
    assert found == [
        "line 3: imports tests.conftest",
        "line 4: imports tests.edge_agent",
        "line 2: edits sys.path",
        "line 5: edits sys.path",
        "line 6: edits sys.path",
        "line 7: edits sys.path",
    ]


def _exception_classes() -> list[tuple[Path, ast.ClassDef]]:
    """Every class in the product packages whose bases name an exception type."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and any(
                    _base_name(b).endswith(("Error", "Exception", "Rejected", "Invalid"))
                    or _base_name(b) in _error_names()
                    for b in node.bases
                ):
                    found.append((path, node))
    return found


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _error_names() -> set[str]:
    """Names of the classes defined in the errors modules (their subclasses are errors
    too, whatever they are called)."""
    names: set[str] = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("errors.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names |= {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    return names


def test_error_classes_live_in_errors_modules() -> None:
    misplaced = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name}"
        for path, node in _exception_classes()
        if path.name != "errors.py"
    ]
    assert misplaced == []


@pytest.mark.parametrize("package", [p for p, root in PACKAGES.items() if root])
def test_every_error_derives_from_the_package_root(package: str) -> None:
    """Importing each errors module and walking its classes: every exception class is a
    subclass of the package's root (so one ``except`` catches all a package raises)."""
    import importlib

    root_module = {
        "edgetwin_common": "edgetwin_common.errors",
        "edgetwin_contracts": "edgetwin_contracts.errors",
        "edge_agent": "edge_agent.errors",
        "model_export": "model_export.errors",
        "cloud_sync": "cloud_sync.errors",
    }[package]
    root = getattr(importlib.import_module(root_module), str(PACKAGES[package]))
    strays = []
    for path in sorted((REPO / package).rglob("errors.py")):
        module_name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module_name
                and not issubclass(value, root)
            ):
                strays.append(f"{module_name}.{name}")
    assert strays == []


MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _product_modules() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def test_no_module_is_a_big_room() -> None:
    """A module over 500 lines does several jobs: split it by job (database migrations
    aside: each is one job however long)."""
    big = [
        f"{path.relative_to(REPO)}: {lines} lines"
        for path in _product_modules()
        if (lines := path.read_text(encoding="utf-8").count("\n")) > MAX_MODULE_LINES
    ]
    assert big == []


def test_no_function_is_over_80_lines() -> None:
    long = []
    for path in _product_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {lines}")
    assert long == []
