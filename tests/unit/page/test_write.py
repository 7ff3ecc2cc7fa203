"""The page lands beside its report, whole, with the report's file mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.unit.page.parse import body_rows, read_page
from tests.unit.page.reports import end_record, row, write_report
from worker.errors import ReportError
from worker.page.write import card_path, write_card


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644])
def test_the_page_gets_the_report_file_mode(tmp_path: Path, mode: int) -> None:
    report = write_report(tmp_path / "a.report.csv", [row(2, "A", "canceled")], [end_record("r")])
    os.chmod(report, mode)
    written = write_card(report)
    assert written == card_path(report) == tmp_path / "a.report.csv.html"
    assert stat.S_IMODE(written.stat().st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.report.csv",
        "a.report.csv.html",
        "a.report.csv.runs.jsonl",
    ]


def test_out_puts_it_elsewhere_and_replaces_an_older_page(tmp_path: Path) -> None:
    report = write_report(tmp_path / "a.csv", [row(2, "A", "canceled")])
    out = tmp_path / "page.html"
    out.write_text("old")
    assert write_card(report, out) == out
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_an_unreadable_report_writes_nothing(tmp_path: Path) -> None:
    report = tmp_path / "a.csv"
    report.write_text("not,a,report\r\n")
    with pytest.raises(ReportError):
        write_card(report)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_a_report_named_through_a_symlink_shows_its_run_records(tmp_path: Path) -> None:
    # runs keep their records beside the report's real file, not beside the link
    (tmp_path / "out").mkdir()
    real = write_report(
        tmp_path / "out" / "night.csv", [row(2, "A", "canceled")], [end_record("r1")]
    )
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    written = write_card(link)
    assert written == tmp_path / "link.csv.html"  # beside the report as named
    shown = read_page(written.read_text(encoding="utf-8"))
    assert [r[0] for r in body_rows(shown.tables["runs"])] == ["r1"]
    assert "no run record" not in shown.texts["verdict"]


@pytest.mark.parametrize("name", ["p.report.shard-1-of-3.csv", "night.csv", "notes"])
def test_out_never_replaces_a_file_that_is_not_a_page(tmp_path: Path, name: str) -> None:
    """`--out` over another shard's report (or an input) turned it into HTML; its next
    run was refused as "not a cancel-worker report"."""
    report = write_report(tmp_path / "p.report.shard-0-of-3.csv", [row(2, "A", "canceled")])
    other = write_report(tmp_path / name, [row(3, "B", "canceled")])
    before = other.read_bytes()
    with pytest.raises(ReportError, match="exists and is not a web page"):
        write_card(report, other)
    assert other.read_bytes() == before
    page = tmp_path / "old-page"
    page.write_text("<!DOCTYPE html>\n<p>an older page</p>")
    assert write_card(report, page) == page  # a page of any name is replaced


def test_out_refuses_a_fifo_instead_of_waiting_for_a_writer(tmp_path: Path) -> None:
    report = write_report(tmp_path / "r.csv", [row(2, "A", "canceled")])
    fifo = tmp_path / "pipe.html"
    os.mkfifo(fifo)
    with pytest.raises(ReportError, match="exists and is not a web page"):
        write_card(report, fifo)
