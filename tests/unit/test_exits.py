"""The exit table: one in the code, the same codes in the README, and what each says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
