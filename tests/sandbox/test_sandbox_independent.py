"""The sandbox imports nothing from the rest of `worker`, so the worker cannot pass its
tests by sharing a mistake with it; and no module of it grows past what one reader holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_imports_only_itself_from_worker(path: Path) -> None:
    for name in _imported(ast.parse(path.read_text(encoding="utf-8"))):
        assert not name.startswith("."), f"{path.name}: relative import {name}"
        if name == "worker" or name.startswith("worker."):
            assert name.startswith("worker.sandbox"), f"{path.name} imports {name}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_modules_are_small_and_say_what_they_own(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    assert ast.get_docstring(ast.parse(text))
