"""The exit table: one in the code, the same codes in the README, and what each says."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.syntax import parsed
from worker.exits import MEANINGS, RERUN_HELPS, Exit, help_text, summary_line

ROOT = Path(__file__).resolve().parents[2]
#: The README's short table and the operations page's full one.
TABLES = {"README.md": "## Exit codes", "docs/operations.md": "## Exit status"}


def documented_exit_codes(page: str) -> set[int]:
    text = (ROOT / page).read_text(encoding="utf-8")
    section = text[text.index(TABLES[page]) :]
    table = section[section.index("| code |") : section.index("\n\n", section.index("| code |"))]
    codes: set[int] = set()
    for cell in re.findall(r"^\| ([\d /]+) \|", table, re.MULTILINE):
        codes.update(int(c) for c in cell.split("/"))
    return codes


@pytest.mark.parametrize("page", TABLES)
def test_the_docs_list_exactly_the_codes_of_the_table(page: str) -> None:
    assert documented_exit_codes(page) == {int(c) for c in MEANINGS}


def test_only_codes_a_rerun_can_change_are_retried() -> None:
    assert {Exit.ABORTED, Exit.FAILED_ROWS, Exit.SIGINT, Exit.SIGTERM} == RERUN_HELPS


def test_help_names_every_code_on_its_own_line() -> None:
    lines = help_text().splitlines()
    assert [int(line.split()[0]) for line in lines] == [int(c) for c in MEANINGS]
    assert all(len(line) <= 92 for line in lines)  # --help is 100 columns, indented


def test_the_summary_line_says_what_to_do() -> None:
    assert summary_line(5) == "finished; some references failed (a rerun retries them)"
    assert "need a person" in summary_line(1)


def _spelled_codes(tree: ast.AST) -> list[int]:
    """Lines where an exit code is written as a number: `sys.exit(2)`, `code in (3, 4)`,
    `exit_code == 130`, or a table keyed by codes (`{3: ..., 130: ...}`)."""
    codes = {int(c) for c in Exit}

    def numbers(node: ast.AST) -> list[int]:
        items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
        return [n.value for n in items if isinstance(n, ast.Constant) and type(n.value) is int]

    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "sys.exit":
            if any(numbers(arg) for arg in node.args):
                hits.append(node.lineno)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            named = any("exit" in ast.unparse(s) or "code" in ast.unparse(s) for s in sides)
            if named and any(set(numbers(s)) & codes - {0} for s in sides):
                hits.append(node.lineno)
        elif isinstance(node, ast.Dict) and len(node.keys) >= 2:
            keys = [k.value if isinstance(k, ast.Constant) else None for k in node.keys]
            # small ints key other tables too (currency exponents): a signal's code tells
            if all(type(k) is int and k in codes for k in keys) and {130, 143} & set(keys):
                hits.append(node.lineno)
    return hits


def test_no_module_but_the_table_spells_an_exit_code_as_a_number() -> None:
    worker = ROOT / "worker"
    spelled = {
        str(path.relative_to(ROOT)): lines
        for path in sorted(worker.rglob("*.py"))
        if path.name != "exits.py"
        and "sandbox" not in path.parts  # the sandbox stands alone
        and (lines := _spelled_codes(parsed(path)))
    }
    assert spelled == {}


def test_the_check_finds_codes_spelled_as_numbers() -> None:
    tree = ast.parse(
        "sys.exit(130)\n"
        "if last.exit_code in (3, 4, 130, 143): pass\n"
        "STOPPED = {3: 'aborted', 130: 'SIGINT'}\n"
        "DIGITS = {0: 'JPY', 3: 'KWD'}\n"
        "if code == Exit.USAGE: pass\n"
    )
    assert _spelled_codes(tree) == [1, 2, 3]  # not the currency table, nor Exit.USAGE
