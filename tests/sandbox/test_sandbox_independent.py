"""The sandbox imports nothing from the rest of `worker`, so the worker cannot pass its
tests by sharing a mistake with it; and every module of it says what it owns. (Module
size is the guide of tests/unit/test_layering.py, for the sandbox as for the worker.)"""

from __future__ import annotations

import ast
from pathlib import Path

SANDBOX = Path(__file__).resolve().parents[2] / "worker" / "sandbox"
MODULES = sorted(SANDBOX.glob("*.py"))


def _imported(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def test_imports_only_itself_from_worker() -> None:
    offenders = [
        f"{path.name} imports {name}"
        for path in MODULES
        for name in _imported(ast.parse(path.read_text(encoding="utf-8")))
        if name.startswith(".")
        or (
            (name == "worker" or name.startswith("worker."))
            and not name.startswith("worker.sandbox")
        )
    ]
    assert offenders == []


def test_every_module_says_what_it_owns() -> None:
    silent = [p.name for p in MODULES if not ast.get_docstring(ast.parse(p.read_text("utf-8")))]
    assert silent == []
