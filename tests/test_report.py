"""Report: whole rows, torn-tail repair, the latest-row view for resume, the intent journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.dedup import key_of
from worker.models import REPORT_COLUMNS, Outcome, Result
from worker.report import (
    CHECK_FINAL,
    RUN_FINAL,
    IntentJournal,
    ReportError,
    ReportWriter,
    load_report,
)


def write(path: Path, *results: Result) -> None:
    writer = ReportWriter(path)
    writer.open()
    writer.write(results)
    writer.close()


def result(ref: str, outcome: Outcome, line: int = 2, merchant: str = "T1") -> Result:
    return Result(line, merchant, ref, outcome, http_status=201, attempts=1)


def test_csv_rows_quote_what_needs_quoting(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write(path, result('a,"b"\nc', Outcome.CANCELED))
    text = path.read_bytes().decode()
    assert text.startswith(",".join(REPORT_COLUMNS) + "\r\n")
    assert '"a,""b""\nc"' in text
    prior = load_report(path, RUN_FINAL)
    assert prior.final("T1", 'a,"b"\nc') is Outcome.CANCELED


def test_jsonl_types(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write(path, Result(3, "T1", "x", Outcome.INVALID, detail="empty"))
    row = json.loads(path.read_text())
    assert list(row) == list(REPORT_COLUMNS)
    assert row["line"] == 3 and row["attempts"] == 0 and row["http_status"] is None
    assert row["error_type"] is None and row["finished_at"].endswith("Z")


def test_latest_row_wins_and_failed_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write(path, result("a", Outcome.FAILED), result("b", Outcome.CANCELED))
    write(path, result("a", Outcome.CANCELED), result("b", Outcome.FAILED))
    write(path, result("c", Outcome.CHECKED), result("d", Outcome.WOULD_CANCEL))
    write(path, Result(9, "T1", "", Outcome.INVALID), Result(10, "T1", "a", Outcome.DUPLICATE))
    prior = load_report(path, RUN_FINAL)
    assert prior.final("T1", "a") is Outcome.CANCELED
    assert prior.final("T1", "b") is None  # its last row is failed: send again
    assert prior.final("T1", "c") is None and prior.final("T1", "d") is None
    assert prior.unsent_lines == {9: Outcome.INVALID, 10: Outcome.DUPLICATE}
    assert load_report(path, CHECK_FINAL).final("T1", "c") is Outcome.CHECKED


@pytest.mark.parametrize("name", ["r.csv", "r.jsonl"])
def test_torn_last_row_is_cut_off_and_appending_goes_on(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write(path, result("a", Outcome.CANCELED), result("b", Outcome.CANCELED, line=3))
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # a power cut in the middle of the last row
    prior = load_report(path, RUN_FINAL)
    assert prior.final("T1", "a") is Outcome.CANCELED and prior.final("T1", "b") is None
    assert prior.repaired_bytes > 0
    write(path, result("b", Outcome.CANCELED, line=3))
    assert load_report(path, RUN_FINAL).rows == 2
    assert load_report(path, RUN_FINAL).final("T1", "b") is Outcome.CANCELED


def test_torn_row_inside_a_quoted_newline_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write(path, result("a", Outcome.CANCELED), result("multi\nline", Outcome.CANCELED, line=3))
    text = path.read_bytes()
    cut = text.index(b"multi\n") + len(b"multi\n")
    path.write_bytes(text[:cut])  # ends in a newline, yet inside an open quote
    prior = load_report(path, RUN_FINAL)
    assert prior.rows == 1 and prior.final("T1", "a") is Outcome.CANCELED
    assert path.read_bytes().endswith(b"\r\n") and b"multi" not in path.read_bytes()


def test_a_foreign_file_is_not_taken_for_a_report(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("payment_reference,merchant_number\nA,T1\n")
    with pytest.raises(ReportError, match="not a cancel-worker report"):
        load_report(path, RUN_FINAL)


def test_journal_keeps_only_references_without_a_final_row(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    write(report, result("done", Outcome.CANCELED))
    journal = IntentJournal(tmp_path / "r.csv.journal")
    journal.open()
    for ref in ("done", "maybe", "failed-one"):
        journal.record("T1", ref)
    journal.close()
    with open(journal.path, "ab") as f:
        f.write(b'["T1", "torn')  # killed mid-write: that cancel was never sent
    write(report, result("failed-one", Outcome.FAILED))
    pending = IntentJournal.load(journal.path, load_report(report, RUN_FINAL))
    assert pending == {key_of("T1", "maybe"), key_of("T1", "failed-one")}
