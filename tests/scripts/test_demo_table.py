"""`make demo`'s table (scripts/demo_table.py) fits 80 columns and loses no detail."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from rich.cells import cell_len

from scripts.demo_table import main
from worker.model import REPORT_COLUMNS

LONG_DETAIL = "No payment could be found, check that you used the correct payment identifier."
ROWS = [
    {"line": "2", "merchant_number": "T123456", "payment_reference": "EOD-1", "outcome": "canceled",
     "http_status": "201", "payment_state": "Canceled"},
    {"line": "19", "merchant_number": "T123456", "payment_reference": "unknown-EOD-2026-11-26-0107",
     "outcome": "not_found", "http_status": "404", "detail": LONG_DETAIL},
    {"line": "53", "merchant_number": "T654321", "payment_reference": "Bestellung-Müller-€42-日本",
     "outcome": "canceled", "http_status": "201", "payment_state": "Canceled"},
    {"line": "100", "merchant_number": "T123456", "payment_reference": "expired-1",
     "outcome": "not_cancelable", "http_status": "200", "payment_state": "Authorization Expired"},
    {"line": "7", "merchant_number": "T1", "payment_reference": "x", "outcome": "invalid",
     "detail": "comment is 300 characters;\nat most 256"},
]  # fmt: skip


@pytest.fixture
def report(tmp_path: Path) -> Path:
    path = tmp_path / "r.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, REPORT_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(ROWS)
    return path


@pytest.mark.parametrize("width", [80, 160])
def test_the_table_fits_the_terminal_and_keeps_every_detail(
    report: Path, width: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(str(report), width=width) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(cell_len(line) for line in lines) <= width, lines
    text = " ".join(" ".join(lines).split())
    assert LONG_DETAIL in text and "comment is 300 characters; at most 256" in text
    assert "outcomes: canceled 2, invalid 1, not_found 1, not_cancelable 1" in text
    # rows in line order, the line numbers right-aligned under their heading
    numbered = [line for line in lines if line[:4].strip().isdigit()]
    assert [line[:4] for line in numbered] == ["   2", "   7", "  19", "  53", " 100"]
    if width == 160:  # room for the detail beside its row
        assert any(line.startswith("   7") and "at most 256" in line for line in lines)


def test_the_demo_lines_after_the_table_fit_80_columns() -> None:
    """`make demo`'s closing lines, echoed by the Makefile, wrap nowhere at 80 columns:
    the report card's path (as long as the clone's folder) stands on a line of its own."""
    makefile = Path(__file__).resolve().parents[2] / "Makefile"
    recipe = makefile.read_text(encoding="utf-8").split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    echoed = [line.split('echo "', 1)[1].rsplit('"', 1)[0] for line in recipe.splitlines()
              if 'echo "' in line]  # fmt: skip
    assert echoed, recipe
    for text in echoed:
        if "$(CURDIR)" in text:
            assert text.strip().startswith("$(CURDIR)"), text  # the path alone on its line
        else:
            assert cell_len(text) <= 80, text
