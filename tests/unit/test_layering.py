"""The shape of the code, checked: packages import each other one way only, the decision
and the value types are pure, the environment is read in one place, and the sandbox
shares nothing with the worker. Each rule is one test that names every offender.

"One way only" is read from the source (the AST), not from what happens to be imported:
every import counts, at the top, inside a function or under TYPE_CHECKING, so that a
cycle cannot be hidden by moving an import into a function. It holds between the
worker's sub-packages and top-level modules (`worker.input`, `worker.report`,
`worker.settings`, ...) and between modules. Module size is a guide, not a rule: a
module past GUIDE_LINES is named in a warning, for a look (split it, or say at its top
why it is one piece).
"""

from __future__ import annotations

import ast
import functools
import importlib
import itertools
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.syntax import WORKER, nodes, parsed

MODULES = sorted(WORKER.rglob("*.py"))
#: What the pure layer may import: value types, and nothing that does I/O.
PURE = {
    "decide.py": {"__future__", "dataclasses", "worker.model"},
    "model.py": {"__future__", "dataclasses", "enum"},
    "exits.py": {"__future__", "dataclasses", "enum"},
    "keys.py": {"__future__", "hashlib"},
    "errors.py": {"__future__", "typing", "worker.exits"},
}
#: A module longer than this gets a look; see the module docstring.
GUIDE_LINES = 400
FORBIDDEN = {("os", "environ"), ("os", "getenv"), ("sys", "argv")}


class SizeGuide(UserWarning):
    """A module is past GUIDE_LINES: worth a look, not a failed build."""


def module_name(path: Path, root: Path = WORKER) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass(frozen=True)
class Import:
    """`source` imports `target` (both modules of the tree) at `where` (file:line)."""

    source: str
    target: str
    where: str


def imported_names(path: Path) -> set[str]:
    """Every module name an import statement of `path` names, as written."""
    found: set[str] = set()
    for node in nodes(path):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@functools.cache
def tree_imports(root: Path) -> list[Import]:
    """Every import between modules under `root` (a package folder): at the top, in
    functions, under TYPE_CHECKING; relative ones resolved; `from pkg import mod`
    taken as an import of `pkg.mod` when that is a module."""
    paths = sorted(root.rglob("*.py"))
    modules = {module_name(p, root) for p in paths}

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    found: list[Import] = []
    for path in paths:
        source = module_name(path, root)
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        for node in nodes(path):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            where = f"{path.relative_to(root.parent)}:{node.lineno}" if targets else ""
            for target in targets:
                resolved = known(target)
                if resolved is not None and resolved != source:
                    found.append(Import(source, resolved, where))
    return found


def unit(module: str) -> str:
    """The sub-package or top-level module a module belongs to: `worker.input.dedup`
    -> `worker.input`, `worker.settings` -> itself, `worker` (its __init__) -> itself."""
    return ".".join(module.split(".")[:2])


Graph = dict[str, dict[str, list[str]]]  # node -> node it imports -> where


def graph_of(imports: Iterable[Import], *, packages: bool) -> Graph:
    graph: Graph = {}
    for imp in imports:
        a, b = (unit(imp.source), unit(imp.target)) if packages else (imp.source, imp.target)
        graph.setdefault(b, {})
        if a != b and imp.where not in (sites := graph.setdefault(a, {}).setdefault(b, [])):
            sites.append(imp.where)
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle as a path that ends where it starts (a -> b -> a), or None."""
    state: dict[str, bool] = {}  # False: on the current path; True: done, no cycle
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = False
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) is False:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = True
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def cycles(graph: Graph) -> list[str]:
    """Every cycle, each named with the imports that make it: one is found, its last
    edge set aside, and the search goes on until none is left."""
    edges = {a: dict(targets) for a, targets in graph.items()}
    found = []
    while (cycle := find_cycle(edges)) is not None:
        sites = [
            f"    {a} -> {b}: " + ", ".join(edges[a][b][:3]) for a, b in itertools.pairwise(cycle)
        ]
        found.append(" -> ".join(cycle) + "\n" + "\n".join(sites))
        del edges[cycle[-2]][cycle[-1]]
    return found


def test_packages_import_each_other_one_way_only() -> None:
    found = cycles(graph_of(tree_imports(WORKER), packages=True))
    assert not found, "import cycles between packages:\n" + "\n".join(found)


def test_modules_import_each_other_one_way_only() -> None:
    found = cycles(graph_of(tree_imports(WORKER), packages=False))
    assert not found, "import cycles between modules:\n" + "\n".join(found)


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "worker" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "worker"


PLANTED = {
    "__init__.py": "",
    "low.py": "X = 1\n",
    "a/__init__.py": "",
    "a/one.py": (
        "from typing import TYPE_CHECKING\n"
        "from worker import low\n"
        "if TYPE_CHECKING:\n"
        "    from worker.b.two import Two\n"
    ),
    "b/__init__.py": "",
    "b/two.py": "class Two:\n    def late(self):\n        from ..a import one\n",
}


def test_the_checker_finds_a_cycle_hidden_in_a_function_or_type_checking(
    tmp_path: Path,
) -> None:
    root = _plant(tmp_path, PLANTED)
    imports = tree_imports(root)
    found = cycles(graph_of(imports, packages=True))
    assert len(found) == 1
    assert found[0].splitlines() == [
        "worker.a -> worker.b -> worker.a",
        "    worker.a -> worker.b: worker/a/one.py:4",
        "    worker.b -> worker.a: worker/b/two.py:3",
    ]
    assert cycles(graph_of(imports, packages=False))[0].startswith(
        "worker.a.one -> worker.b.two -> worker.a.one"
    )


def test_the_checker_passes_a_tree_without_a_cycle(tmp_path: Path) -> None:
    root = _plant(tmp_path, {**PLANTED, "b/two.py": "from worker.low import X\n"})
    imports = tree_imports(root)
    assert Import("worker.a.one", "worker.low", "worker/a/one.py:2") in imports
    assert Import("worker.b.two", "worker.low", "worker/b/two.py:1") in imports
    assert cycles(graph_of(imports, packages=True)) == []
    assert cycles(graph_of(imports, packages=False)) == []


def test_every_module_imports() -> None:
    failed = {}
    for path in MODULES:
        try:
            importlib.import_module(module_name(path))
        except Exception as exc:  # every failure is listed, not only the first
            failed[module_name(path)] = f"{type(exc).__name__}: {exc}"
    assert failed == {}


def test_the_pure_modules_import_nothing_that_does_io() -> None:
    offenders = {
        name: sorted(extra)
        for name, allowed in PURE.items()
        if (extra := imported_names(WORKER / name) - allowed)
    }
    assert offenders == {}


def reads_environment_or_argv(path: Path) -> list[str]:
    hits = []
    for node in nodes(path):
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
    offenders = {
        f"{imp.where} imports {imp.target}"
        for imp in tree_imports(WORKER)
        if imp.source.startswith("worker.sandbox") and not imp.target.startswith("worker.sandbox")
    }
    assert offenders == set()


def test_every_module_says_what_it_owns() -> None:
    silent = [module_name(p) for p in MODULES if not ast.get_docstring(parsed(p))]
    assert silent == []


def test_long_modules_are_named_for_a_look() -> None:
    """A guide, not a rule: the modules past GUIDE_LINES, in one warning."""
    long = {
        module_name(p): n
        for p in MODULES
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > GUIDE_LINES
    }
    if long:
        listed = ", ".join(f"{name} ({n} lines)" for name, n in sorted(long.items()))
        warnings.warn(f"past {GUIDE_LINES} lines, worth a look: {listed}", SizeGuide, stacklevel=1)
