"""The shape of the code, checked: the decision is pure, the environment is read in one
place, the sandbox shares nothing with the worker, and no module outgrows its job."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parents[2] / "worker"
MODULES = sorted(p for p in WORKER.rglob("*.py"))
#: What the pure layer may import: value types, and nothing that does I/O.
PURE = {
    "decide.py": {"__future__", "dataclasses", "worker.model"},
    "model.py": {"__future__", "dataclasses", "enum"},
}
MAX_LINES = 400
FORBIDDEN = {("os", "environ"), ("os", "getenv"), ("sys", "argv")}


def module_name(path: Path) -> str:
    rel = path.relative_to(WORKER.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_every_module_imports_on_its_own(path: Path) -> None:
    importlib.import_module(module_name(path))


@pytest.mark.parametrize("name", sorted(PURE))
def test_the_decision_and_the_model_import_nothing_that_does_io(name: str) -> None:
    assert imports(WORKER / name) <= PURE[name]


def reads_environment_or_argv(path: Path) -> list[str]:
    hits = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in FORBIDDEN
        ):
            hits.append(f"{node.value.id}.{node.attr} at line {node.lineno}")
    return hits


def test_only_the_cli_and_settings_read_the_environment_or_argv() -> None:
    allowed = {WORKER / "cli.py", WORKER / "settings.py"}
    offenders = {
        module_name(p): hits
        for p in MODULES
        if p not in allowed and (hits := reads_environment_or_argv(p))
    }
    assert offenders == {}


def test_the_sandbox_imports_nothing_from_the_worker() -> None:
    for path in (WORKER / "sandbox").rglob("*.py"):
        worker_imports = {m for m in imports(path) if m.startswith("worker")}
        assert all(m.startswith("worker.sandbox") for m in worker_imports), path


def test_no_module_outgrows_its_job() -> None:
    """A guide, not a style rule: a module past MAX_LINES holds more than one job and
    gets a look (split it, or say at its top why it is one piece)."""
    long = {}
    for path in MODULES:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            long[module_name(path)] = lines
    assert long == {}
