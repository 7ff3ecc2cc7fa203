"""Report: whole rows, torn-tail repair, the latest-row view for resume, the intent journal."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from worker.errors import ReportError, StorageError
from worker.keys import key_of
from worker.model import EXTRA_COLUMNS, REPORT_COLUMNS, Outcome, Rejected, Result
from worker.page.rows import read_rows
from worker.report.index import SpillStore
from worker.report.journal import IntentJournal
from worker.report.records import read_records
from worker.report.resume import (
    CHECK,
    RUN,
    ByKey,
    PriorRows,
    ResumePolicy,
    load_report,
    repair_torn_tail,
)
from worker.report.writer import Echo, ReportWriter


def load(path: Path, policy: ResumePolicy = RUN) -> PriorRows:
    return load_report(path, policy, SpillStore(path, 1 << 30), by_line=False)


def final(prior: PriorRows, merchant: str, reference: str) -> Outcome | None:
    """The final outcome a by-reference resume holds for the pair."""
    got = prior.final(0, key_of(merchant, reference))
    return None if got is None else got[0]


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
    assert text.startswith(",".join(REPORT_COLUMNS + EXTRA_COLUMNS) + "\r\n")
    assert '"a,""b""\nc"' in text
    prior = load(path, RUN)
    assert final(prior, "T1", 'a,"b"\nc') is Outcome.CANCELED


def test_jsonl_types(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write(path, Result(3, "T1", "x", Outcome.INVALID, detail="empty"))
    row = json.loads(path.read_text())
    assert list(row) == list(REPORT_COLUMNS + EXTRA_COLUMNS)
    assert row["line"] == 3 and row["attempts"] == 0 and row["http_status"] is None
    assert row["error_type"] is None and row["finished_at"].endswith("Z")


def test_an_empty_echoed_cell_is_null_in_a_jsonl_report(tmp_path: Path) -> None:
    """Every empty value of a JSON Lines row is null, echoed ones too (an empty CSV cell
    was written as "", and merge-reports wrote null for the same cell)."""
    path = tmp_path / "r.jsonl"
    extra = (("comment", ""), ("note", "n"), ("zero", 0), ("no", False))
    writer = ReportWriter(path, run_id="x", input_columns=["comment", "note", "zero", "no"])
    writer.open()
    writer.write([Result(2, "T1", "a", Outcome.CANCELED, 201, extra=extra)])
    writer.close()
    row = json.loads(path.read_text())
    assert row["comment"] is None and row["note"] == "n"
    assert row["zero"] == 0 and row["no"] is False  # JSON values as read, not emptied


def test_an_invalid_rows_missing_merchant_or_reference_is_null_in_a_jsonl_report(
    tmp_path: Path,
) -> None:
    """The contract: empty values are null. An invalid row with no reference or no
    merchant wrote "" (and the rerun still matches it: no second invalid row)."""
    path = tmp_path / "r.jsonl"
    write(path, Result(2, "", "", Outcome.INVALID, detail="cannot parse JSON"))
    row = json.loads(path.read_text())
    assert row["merchant_number"] is None and row["payment_reference"] is None
    prior = load_report(path, RUN, SpillStore(path, 1 << 30), by_line=True)
    again = Rejected(2, "", "", Outcome.INVALID, "cannot parse JSON")
    assert prior.unsent_before(again)


@pytest.mark.parametrize("name", ["r.csv", "r.jsonl"])
def test_every_text_cell_is_masked_but_the_keys(tmp_path: Path, name: str) -> None:
    token = "eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl"
    quoted = f"request had Authorization: Bearer {token}"
    path = tmp_path / name
    write(
        path,
        Result(
            2,
            "T1",
            "ref-1",
            Outcome.REJECTED,
            http_status=403,
            error_type=f"https://x/{token}",
            detail=quoted,
            extra=(("note", quoted), ("n", 3)),
        ),
    )
    text = path.read_text()
    assert token not in text and "Authorization: Bearer ***" in text
    [row] = read_records(path)
    assert row["payment_reference"] == "ref-1" and row["merchant_number"] == "T1"


def test_latest_row_wins_and_failed_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write(path, result("a", Outcome.FAILED), result("b", Outcome.CANCELED))
    write(path, result("a", Outcome.CANCELED), result("b", Outcome.FAILED))
    write(path, result("c", Outcome.CHECKED), result("d", Outcome.WOULD_CANCEL))
    write(path, Result(9, "T1", "", Outcome.INVALID), Result(10, "T1", "a", Outcome.DUPLICATE))
    prior = load(path, RUN)
    assert final(prior, "T1", "a") is Outcome.CANCELED
    assert final(prior, "T1", "b") is None  # its last row is failed: send again
    assert final(prior, "T1", "c") is None and final(prior, "T1", "d") is None
    assert isinstance(prior, ByKey)
    assert prior.unsent_before(Rejected(9, "T1", "", Outcome.INVALID, ""))
    assert prior.unsent_before(Rejected(10, "T1", "a", Outcome.DUPLICATE, ""))
    assert not prior.unsent_before(Rejected(10, "T1", "b", Outcome.DUPLICATE, ""))
    assert not prior.unsent_before(Rejected(9, "T1", "", Outcome.DUPLICATE, ""))
    assert final(load(path, CHECK), "T1", "c") is Outcome.CHECKED


@pytest.mark.parametrize("name", ["r.csv", "r.jsonl"])
def test_torn_last_row_is_cut_off_and_appending_goes_on(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write(path, result("a", Outcome.CANCELED), result("b", Outcome.CANCELED, line=3))
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # a power cut in the middle of the last row
    prior = load(path, RUN)
    assert final(prior, "T1", "a") is Outcome.CANCELED and final(prior, "T1", "b") is None
    assert path.read_bytes() == whole[:-7]  # reading changes nothing
    assert prior.torn_bytes == len(whole[:-7]) - len(whole[:-7].rsplit(b"\n", 1)[0]) - 1
    repair_torn_tail(path, prior.torn_bytes)
    assert path.read_bytes().endswith(b"\n")
    write(path, result("b", Outcome.CANCELED, line=3))
    assert load(path, RUN).rows == 2
    assert final(load(path, RUN), "T1", "b") is Outcome.CANCELED


@pytest.mark.parametrize("name", ["r.csv", "r.jsonl"])
def test_a_file_whose_only_line_is_torn_is_a_report_only_if_it_starts_like_one(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    write(path, result("a", Outcome.CANCELED))
    first = path.read_bytes().split(b"\n", 1)[0]
    for torn in (first[:9], b"\xef\xbb\xbf" + first[:5], first):  # a crash in the first write
        path.write_bytes(torn)
        prior = load(path, RUN)
        assert prior.rows == 0 and prior.torn_bytes == len(torn)
        assert list(read_rows(path)) == []  # the report card's reader
    for other in (b"hello", b"\x7fELF\x02\x01", b"payment_reference,merchant"):
        path.write_bytes(other)
        for read in (lambda: load(path, RUN), lambda: list(read_rows(path))):
            with pytest.raises(ReportError, match="its only line, with no newline, is not"):
                read()
        with pytest.raises(ReportError, match="is not the start of one"):
            list(read_records(path, []))
        assert path.read_bytes() == other


def test_a_quote_that_never_closes_is_refused_not_cut(tmp_path: Path) -> None:
    # Only a last line without its newline is forgiven: an open quote at the end may
    # just as well be a stray quote typed into the middle, which would swallow rows.
    path = tmp_path / "r.csv"
    write(path, result("a", Outcome.CANCELED), result("multi\nline", Outcome.CANCELED, line=3))
    text = path.read_bytes()
    cut = text.index(b"multi\n") + len(b"multi\n")
    path.write_bytes(text[:cut])  # ends in a newline, yet inside an open quote
    with pytest.raises(ReportError, match="line 3: a quoted field never closes"):
        load(path, RUN)
    assert path.read_bytes() == text[:cut]


def test_a_torn_last_row_is_cut_whatever_it_holds(tmp_path: Path) -> None:
    # issue 18, item 12: the last row's quoted cell holds line breaks, and the power
    # cut came inside it: no final newline, so the whole row (three lines) is torn
    path = tmp_path / "r.csv"
    write(path, result("a", Outcome.CANCELED))
    whole = path.read_bytes()
    write(path, result("two\nline\nbreaks", Outcome.CANCELED, line=3))
    text = path.read_bytes()
    cut = text.index(b"line\nbre") + 7  # inside the third line of the quoted cell
    path.write_bytes(text[:cut])
    prior = load(path, RUN)
    assert prior.rows == 1 and final(prior, "T1", "a") is Outcome.CANCELED
    assert prior.torn_bytes == cut - len(whole)
    repair_torn_tail(path, prior.torn_bytes)
    assert path.read_bytes() == whole
    # a report another tool is to trust must be whole: merge-reports refuses it
    path.write_bytes(text[:cut])
    with pytest.raises(ReportError, match="cut short"):
        list(read_records(path))


def test_a_stray_quote_before_a_torn_tail_is_refused_not_cut(tmp_path: Path) -> None:
    # A quote typed into row 2 runs on to the end of a file that lacks its final
    # newline: the rows after it read as whole rows, so it is not one torn cell.
    path = tmp_path / "r.csv"
    write(path, result("a", Outcome.CANCELED), result("b", Outcome.CANCELED, line=3))
    write(path, result("c", Outcome.CANCELED, line=4))
    broken = path.read_bytes().replace(b"T1,a,", b'T1,"a,', 1)[:-3]
    path.write_bytes(broken)
    with pytest.raises(ReportError, match="line 2: a quoted field never closes"):
        load(path, RUN)
    assert path.read_bytes() == broken


def test_a_foreign_file_is_not_taken_for_a_report(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("payment_reference,merchant_number\nA,T1\n")
    with pytest.raises(ReportError, match="not a cancel-worker report"):
        load(path, RUN)


def test_journal_gives_every_whole_intent_back(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    write(report, result("done", Outcome.CANCELED))
    journal = IntentJournal(tmp_path / "r.csv.journal")
    journal.record([("T1", "done"), ("T1", "maybe")])
    journal.record([("T1", "failed-one")])
    journal.close()
    with open(journal.path, "ab") as f:
        f.write(b'["T1", "torn')  # killed mid-write: that cancel was never sent
    write(report, result("failed-one", Outcome.FAILED))
    keys = set(IntentJournal.keys(journal.path))
    assert keys == {key_of("T1", "done"), key_of("T1", "maybe"), key_of("T1", "failed-one")}


def test_a_torn_intent_is_cut_off_before_the_next_run_appends(tmp_path: Path) -> None:
    # Found by the simulator (tests/sim, seed 1224): the next run's intent was glued
    # onto the torn line, so a rerun after its cancel landed did not query it first:
    # it sent the cancel again and reported the payment already_canceled.
    path = tmp_path / "r.csv.journal"
    journal = IntentJournal(path)
    journal.record([("T1", "a")])
    journal.close()
    with open(path, "ab") as f:
        f.write(b'["T1", "to')  # a power cut kept part of an intent never synced
    rerun = IntentJournal(path)
    rerun.record([("T1", "b")])
    rerun.close()
    assert list(IntentJournal.keys(path)) == [key_of("T1", "a"), key_of("T1", "b")]


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("r.jsonl", lambda b: b.replace(b'"b"', b'"b', 1), "line 2: not JSON"),
        ("r.jsonl", lambda b: b.replace(b'"outcome"', b'"outcom"', 1), "line 1: not a report row"),
        ("r.csv", lambda b: b.replace(b"T1,b,", b'T1,"b,', 1), "line 3"),
        (
            "r.csv",
            lambda b: b.replace(b"T1,b,canceled", b"T1,b,cancelled", 1),
            "line 3: unknown outcome 'cancelled'",
        ),
        (
            "r.jsonl",
            lambda b: b.replace(b'"c","outcome":"canceled"', b'"c","outcome":"cancelled"', 1),
            "line 3: unknown outcome 'cancelled'",
        ),
        ("r.csv", lambda b: b.replace(b"\n3,T1", b"\nthree,T1", 1), "line 3: the line column"),
        (
            "r.csv",
            lambda b: b.replace(b"T1,b,", b"T1,b,x,", 1),
            "line 3: 14 fields, the header has 13",
        ),
    ],
)
def test_a_report_edited_in_the_middle_is_refused_and_left_alone(
    tmp_path: Path, name: str, damage: object, message: str
) -> None:
    path = tmp_path / name
    write(path, result("a", Outcome.CANCELED), result("b", Outcome.CANCELED, line=3))
    write(path, result("c", Outcome.CANCELED, line=4))
    broken = damage(path.read_bytes())  # type: ignore[operator]
    path.write_bytes(broken)
    with pytest.raises(ReportError, match=message):
        load(path, RUN)
    with pytest.raises(ReportError, match=message):  # merge-reports' reader says the same
        list(read_records(path, []))
    assert path.read_bytes() == broken


def test_every_field_the_writer_writes_reads_back(tmp_path: Path) -> None:
    # formula-like references stay exact: the CSV is machine-exact (see the README)
    refs = ['=HYPERLINK("http://x","y")', "+cmd", "@SUM(1)", "-1", "r" * 2000, "é€\"'"]
    for name in ("r.csv", "r.jsonl"):
        path = tmp_path / name
        write(path, *[result(r, Outcome.CANCELED, line=i) for i, r in enumerate(refs, 2)])
        assert [row["payment_reference"] for row in read_records(path)] == refs
        assert all(final(load(path, RUN), "T1", r) for r in refs)


def test_a_failed_write_leaves_no_half_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.csv"
    write(path, result("a", Outcome.CANCELED))
    before = path.read_bytes()
    real_write = os.write
    calls = 0

    def disk_fills_up(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:  # a short write: half the bytes land
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("worker.report.storage.os.write", disk_fills_up)
    writer = ReportWriter(path)
    writer.open()
    with pytest.raises(StorageError, match=r"r.csv: No space left on device"):
        writer.write([result("b", Outcome.CANCELED, line=3)])
    assert calls == 2 and path.read_bytes() == before and writer.rows_written == 0
    monkeypatch.setattr("worker.report.storage.os.write", real_write)
    writer.write([result("b", Outcome.CANCELED, line=3)])  # space again: rows go on
    writer.close()
    assert load(path, RUN).rows == 2


def test_the_report_folder_must_exist(tmp_path: Path) -> None:
    writer = ReportWriter(tmp_path / "nope" / "r.csv")
    with pytest.raises(ReportError, match="does not exist"):
        writer.open()
    (tmp_path / "afile").write_text("")
    with pytest.raises(ReportError, match="is not a folder"):
        ReportWriter(tmp_path / "afile" / "r.csv").open()


def test_reports_and_journals_are_not_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write(path, result("a", Outcome.CANCELED))
    journal = IntentJournal(tmp_path / "r.csv.journal")
    assert not journal.path.exists()  # created by the first record, not before
    journal.record([])  # nothing to record: still no file
    assert not journal.path.exists()
    journal.record([("T1", "a")])
    journal.close()
    for p in (path, journal.path):
        assert p.stat().st_mode & 0o007 == 0


def test_rows_say_what_was_released_who_wrote_them_and_echo_their_input(tmp_path: Path) -> None:
    extra = (("order", "o-7"), ("outcome", "shadowed"), ("n", 3))
    row = Result(2, "T1", "a", Outcome.CANCELED, 201, amount=1250, currency="EUR", extra=extra)
    for name in ("r.csv", "r.jsonl"):
        path = tmp_path / name
        writer = ReportWriter(path, run_id="abc123", input_columns=["order", "outcome", "n"])
        writer.open()
        writer.write([row])
        writer.close()
        (got,) = read_records(path)
        assert got["run_id"] == "abc123" and got["currency"] == "EUR"
        assert got["order"] == "o-7" and got["input_outcome"] == "shadowed"  # no clash
        assert got["outcome"] == "canceled"
        if name.endswith(".jsonl"):
            assert got["amount"] == 1250 and got["n"] == 3  # JSON types as read
        else:
            assert got["amount"] == "1250" and got["n"] == "3"
    only = ReportWriter(tmp_path / "o.csv", echo=Echo("order"), input_columns=["order", "n"])
    only.open()
    only.write([row])
    only.close()
    assert next(read_records(tmp_path / "o.csv")).keys() >= {"order"}
    assert "n" not in next(read_records(tmp_path / "o.csv"))


def test_an_existing_report_keeps_its_own_columns(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(",".join(REPORT_COLUMNS) + "\r\n")  # an older report: ten columns
    writer = ReportWriter(path, run_id="x", input_columns=["order"])
    writer.open()
    writer.write([Result(2, "T1", "a", Outcome.CANCELED, extra=(("order", "o"),))])
    writer.close()
    (got,) = read_records(path)
    assert list(got) == list(REPORT_COLUMNS)


def test_a_batch_of_rows_is_one_write_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A regression guard for the cost per reference: however many rows a batch holds,
    # the report grows by exactly one write() (whole rows, one system call).
    calls: list[int] = []
    real_write = os.write

    def counting(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return real_write(fd, data)

    writer = ReportWriter(tmp_path / "r.csv", run_id="x")
    writer.open()
    monkeypatch.setattr("worker.report.storage.os.write", counting)
    writer.write([result(f"r{i}", Outcome.CANCELED, line=i + 2) for i in range(1000)])
    writer.close()
    assert len(calls) == 1 and load(tmp_path / "r.csv", RUN).rows == 1000


@pytest.mark.parametrize("name", ["r.csv", "r.jsonl"])
def test_the_report_sums_its_latest_canceled_amounts_and_checked_states(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name

    def priced(ref: str, outcome: Outcome, amount: int, currency: str = "EUR") -> Result:
        r = result(ref, outcome)
        r.amount, r.currency = amount, currency
        return r

    write(
        path,
        priced("a", Outcome.FAILED, 100),  # failed, then canceled by the rerun
        priced("b", Outcome.CANCELED, 250),
        priced("c", Outcome.NOT_CANCELABLE, 999),  # not released
        priced("d", Outcome.CANCELED, 4000, "DKK"),
        priced("a", Outcome.CANCELED, 100),
        priced("b", Outcome.CANCELED, 250),  # a copied row: one reference, one amount
        result("e", Outcome.CANCELED),  # no amount known
    )
    assert load(path, RUN).totals.released == {"EUR": 350, "DKK": 4000}

    checked = tmp_path / ("c." + name.split(".")[1])
    rows = [result(ref, Outcome.CHECKED) for ref in ("a", "b", "c")] + [
        result("z", Outcome.NOT_FOUND)
    ]
    for r, state in zip(rows, ("Authorized", "Captured", "Authorized", None), strict=True):
        r.payment_state = state
    write(checked, *rows)
    assert load(checked, CHECK).totals.states == {"Authorized": 2, "Captured": 1}


def test_echoed_columns_of_one_name_each_keep_their_value(tmp_path: Path) -> None:
    # a header naming `x` twice, `line` (a report column) and `input_line` beside it
    names = ["x", "x", "X", "line", "input_line"]
    extra = tuple(zip(names, ["a", "b", "c", "d", "e"], strict=True))
    row = Result(2, "T1", "r", Outcome.CANCELED, 201, extra=extra)
    for name in ("r.csv", "r.jsonl"):
        path = tmp_path / name
        writer = ReportWriter(path, input_columns=names)
        writer.open()
        writer.write([row])
        writer.close()
        (got,) = list(read_records(path))
        echoed = {k: got[k] for k in list(got)[len(REPORT_COLUMNS) + len(EXTRA_COLUMNS) :]}
        if name.endswith("jsonl"):
            echoed = {k: v for k, v in got.items() if k not in (*REPORT_COLUMNS, *EXTRA_COLUMNS)}
        assert echoed == {
            "x": "a",
            "input_x": "b",
            "X": "c",
            "input_line": "d",
            "input_input_line": "e",
        }


def test_a_cell_that_is_not_utf8_is_shown_with_a_replacement_in_a_jsonl_report(
    tmp_path: Path,
) -> None:
    cell = b"Jos\xe9".decode("utf-8", "surrogateescape")  # as the input reader keeps it
    row = Result(2, "T1", "r", Outcome.CANCELED, 201, extra=(("customer", cell),))
    path = tmp_path / "r.jsonl"
    writer = ReportWriter(path, input_columns=["customer"])
    writer.open()
    writer.write([row])  # raised TypeError (str is not valid UTF-8): the run aborted
    writer.close()
    (got,) = list(read_records(path))
    assert got["customer"] == "Jos\ufffd" and got["outcome"] == "canceled"


def test_an_answered_record_closes_the_intents_before_it(tmp_path: Path) -> None:
    """A reference whose cancels all got clear answers (a 422) before a stop: the
    journal says none landed, so the rerun sends it as new; a later intent opens it
    again. An older version reads past the record (it queries first: the safe side)."""
    journal = IntentJournal(tmp_path / "r.csv.journal")
    journal.record([("T1", "a"), ("T1", "b")])
    journal.append([("T1", "a")], answered=True)
    journal.record([("T1", "c")])
    journal.append([("T1", "c")], answered=True)
    journal.record([("T1", "c")])  # a later run's cancel of it
    journal.close()
    entries = list(IntentJournal.entries(journal.path))
    assert entries == [
        (key_of("T1", "a"), True),
        (key_of("T1", "b"), True),
        (key_of("T1", "a"), False),
        (key_of("T1", "c"), True),
        (key_of("T1", "c"), False),
        (key_of("T1", "c"), True),
    ]
    open_keys: set[bytes] = set()
    for key, intent in entries:
        (open_keys.add if intent else open_keys.discard)(key)
    assert open_keys == {key_of("T1", "b"), key_of("T1", "c")}
    assert set(IntentJournal.keys(journal.path)) == {key_of("T1", k) for k in "abc"}
