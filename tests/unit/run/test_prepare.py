"""Prepare refuses, before anything is read or sent, a report that cannot be the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import UsageError
from worker.model import Mode
from worker.run.prepare import prepare
from worker.settings import Settings


def test_the_input_as_report_is_refused_with_the_report_to_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("night.csv").write_text("payment_reference\nA\n")
    Path("link.csv").symlink_to("night.csv")
    for report in ("night.csv", "link.csv", "./night.csv"):
        settings = Settings(mode=Mode.RUN, input="night.csv", report=Path(report))
        with pytest.raises(UsageError, match=r"is the input file; .* --report night\.report\.csv"):
            prepare(settings)


def test_a_symlinked_report_whose_target_folder_is_missing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("payment_reference\nA\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "gone" / "r.csv")
    settings = Settings(mode=Mode.RUN, input=str(tmp_path / "in.csv"), report=tmp_path / "link.csv")
    with pytest.raises(UsageError, match=r"folder .*gone does not exist"):
        prepare(settings)
    assert not (tmp_path / "gone").exists()


HEADER = "line,merchant_number,payment_reference,outcome,http_status,error_type,payment_state,"
HEADER += "attempts,detail,finished_at\n"


@pytest.mark.parametrize("changed", [False, True], ids=["by line", "by reference"])
def test_a_repeat_the_report_already_has_is_not_left_to_do(tmp_path: Path, changed: bool) -> None:
    src = tmp_path / "in.csv"
    src.write_text("payment_reference,merchant_number\nA1,T1\nA2,T1\nA2,T1\nA3,T1\n")
    (tmp_path / "r.csv").write_text(
        HEADER
        + "2,T1,A1,canceled,201,,,1,,2026-12-01T21:00:00Z\n"
        + "3,T1,A2,failed,503,,,5,,2026-12-01T21:00:00Z\n"
        + "4,T1,A2,duplicate,,,,0,duplicate of line 3,2026-12-01T21:00:00Z\n"
    )
    if changed:  # the report's rows no longer fit their lines: resumed by reference
        src.write_text("payment_reference,merchant_number\nA0,T1\nA1,T1\nA2,T1\nA2,T1\nA3,T1\n")
        (tmp_path / "r.csv").write_text(
            (tmp_path / "r.csv").read_text().replace("\n4,T1,A2,dup", "\n5,T1,A2,dup")
        )
    settings = Settings(mode=Mode.RUN, input=str(src), report=tmp_path / "r.csv")
    prepared = prepare(settings)
    try:
        # A2 (failed: again) and A3, and A0 when it was added; A1 and A2's repeat are done
        assert prepared.left == (3 if changed else 2)
        assert prepared.to_send == {"T1": 3 if changed else 2}
    finally:
        prepared.store.close()
        prepared.lock.release()
        prepared.source.close()


def test_echo_columns_must_name_columns_of_the_csv_header(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("payment_reference,merchant_number,order_id,note\nA1,T1,o-1,x\n")

    def settings(echo: str) -> Settings:
        return Settings(mode=Mode.RUN, input=str(src), report=tmp_path / "r.csv", echo_columns=echo)

    with pytest.raises(UsageError, match=r"names 'orderid', which the header .* order_id, note"):
        prepare(settings("note,orderid"))
    assert not (tmp_path / "r.csv").exists()
    for fine in ("order_id, note", "all", "none"):
        prepared = prepare(settings(fine))
        prepared.store.close()
        prepared.lock.release()
        prepared.source.close()


@pytest.mark.parametrize("merchant", ["T\x01", "T\u200b1", "x" * 2001])
def test_a_merchant_option_no_row_could_hold_is_a_usage_error(
    tmp_path: Path, merchant: str
) -> None:
    """It made every row that names no merchant `invalid` (exit 1), not exit 2."""
    src = tmp_path / "in.csv"
    src.write_text("payment_reference\nA1\n")
    settings = Settings(mode=Mode.RUN, input=str(src), report=tmp_path / "r.csv", merchant=merchant)
    with pytest.raises(UsageError, match=r"--merchant .* is not a merchant number: "):
        prepare(settings)
    assert not (tmp_path / "r.csv").exists()


def test_the_journal_s_answered_references_are_not_queried_first(tmp_path: Path) -> None:
    """Their cancels all got clear answers before the stop: sent as new, not query-first
    (which reported a payment someone else had canceled as `canceled`)."""
    from worker.keys import key_of
    from worker.report.journal import IntentJournal, journal_path

    src = tmp_path / "in.csv"
    src.write_text("payment_reference,merchant_number\nA1,T1\nA2,T1\n")
    report = tmp_path / "r.csv"
    journal = IntentJournal(journal_path(report))
    journal.record([("T1", "A1"), ("T1", "A2")])
    journal.append([("T1", "A1")], answered=True)
    journal.close()
    prepared = prepare(Settings(mode=Mode.RUN, input=str(src), report=report))
    try:
        assert key_of("T1", "A1") not in prepared.pending
        assert key_of("T1", "A2") in prepared.pending
    finally:
        prepared.store.close()
        prepared.lock.release()
        prepared.source.close()
