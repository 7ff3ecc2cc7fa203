"""Reading a report for the page: CSV and JSON Lines alike, older reports without the
amount columns, a torn last line left out, an unusable row named by its line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.unit.page.reports import row, write_report
from worker.errors import ReportError
from worker.model import REPORT_COLUMNS
from worker.page.night import gather
from worker.page.rows import read_rows


def test_csv_and_jsonl_reports_give_the_same_night(tmp_path: Path) -> None:
    rows = [
        row(2, "A", "canceled", amount=1234, currency="EUR"),
        row(3, "B", "not_cancelable", amount=500, currency="JPY", state="Captured"),
        row(4, "C", "failed", detail="timeout"),
    ]
    csv_night = gather(write_report(tmp_path / "r.csv", rows))
    jsonl = tmp_path / "r.jsonl"
    typed = [{k: (v if v != "" else None) for k, v in r.items()} for r in rows]
    jsonl.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in typed))
    jsonl_night = gather(jsonl)
    for night in (csv_night, jsonl_night):
        assert night.outcomes == {"canceled": 1, "not_cancelable": 1, "failed": 1}
        assert night.released == {"EUR": 1234} and night.held == {"JPY": 500}
        assert [r.reference for r in night.lists["failed"]] == ["C"]


def test_a_report_from_before_the_amount_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    lines = [",".join(REPORT_COLUMNS), "2,T1,A,canceled,201,,,1,,2026-11-27T01:00:00Z"]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    night = gather(path)
    assert night.outcomes == {"canceled": 1} and night.released == {}


def test_a_torn_last_line_is_left_out(tmp_path: Path) -> None:
    path = write_report(tmp_path / "r.csv", [row(2, "A", "canceled")])
    with open(path, "ab") as f:
        f.write(b"3,T1,B,canc")
    assert [cells[2] for cells in read_rows(path)] == ["A"]


@pytest.mark.parametrize(
    ("tail", "why"),
    [
        ("3,T1,B,exploded,,,,1,,x,,,r1,\r\n", "line 3: unknown outcome 'exploded'"),
        ("3,T1,B\r\n", "line 3: 3 fields, the header has 14"),
    ],
)
def test_an_unusable_row_is_named_by_its_line(tmp_path: Path, tail: str, why: str) -> None:
    path = write_report(tmp_path / "r.csv", [row(2, "A", "canceled")])
    with open(path, "a", encoding="utf-8") as f:
        f.write(tail)
    with pytest.raises(ReportError, match=why):
        list(read_rows(path))
