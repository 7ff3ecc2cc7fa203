"""The worker's source as syntax trees, each file parsed once per test session: the
shape checks (layering, the exit table, the exception tree) all read every module."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

WORKER = Path(__file__).resolve().parents[1] / "worker"


@functools.cache
def parsed(path: Path) -> ast.Module:
    """`path`'s syntax tree; callers must not change it (it is shared)."""
    return ast.parse(path.read_text(encoding="utf-8"))


@functools.cache
def nodes(path: Path) -> tuple[ast.AST, ...]:
    """Every node of `path`'s tree, as `ast.walk` yields them."""
    return tuple(ast.walk(parsed(path)))
