"""Resume at scale: by line for the same file, by reference (spilled past the budget)
otherwise; every shape decides every row as the plain in-memory one does."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from tests.support import write_csv
from worker.input.admission import Admitted, Reported, Send
from worker.input.source import open_input
from worker.model import EXTRA_COLUMNS, REPORT_COLUMNS, Mode, Outcome, Result
from worker.report.index import ENTRY_BYTES, SpillStore
from worker.report.resume import RUN, ByKey, ByLine, TornRow, load_report, torn_pair, torn_rows
from worker.run.prepare import prepare
from worker.settings import Settings

HEADER = ",".join(REPORT_COLUMNS + EXTRA_COLUMNS) + "\n"


def report_row(line: int, ref: str, outcome: str, merchant: str = "T1") -> str:
    return f"{line},{merchant},{ref},{outcome},201,,,1,,2026-12-01T21:00:00.000Z,,,r1\n"


def write_report(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def night(tmp_path: Path) -> tuple[Path, Path]:
    """400 rows (a repeat, an invalid row); a report of a night killed part-way."""
    rows = [(f"r{n}", "T1") for n in range(400)]
    rows[10] = ("r3", "T1")  # line 12 repeats line 5
    rows[20] = ("", "T1")  # line 22 is invalid
    src = write_csv(tmp_path / "night.csv", rows)
    done = [report_row(n + 2, f"r{n}", "canceled") for n in range(300) if n not in (10, 20, 50)]
    done += [
        report_row(12, "r3", "duplicate"),
        report_row(22, "", "invalid"),
        report_row(52, "r50", "failed"),  # retried
        report_row(60, "r58", "failed"),  # canceled earlier, then failed: latest wins
        report_row(61, "r59", "rejected"),
    ]
    return src, write_report(tmp_path / "night.report.csv", done)


def settings(src: Path, report: Path, **kw: object) -> Settings:
    return Settings(mode=Mode.RUN, input=str(src), report=report, yes=True, **kw)  # type: ignore[arg-type]


def decisions(s: Settings) -> tuple[type, bool, list[Admitted]]:
    prepared = prepare(s)
    try:
        admit = prepared.admission()
        source = open_input(s.input)
        out = [a for batch in source.batches() for a in admit.chunk(batch)]
        source.close()
        return type(prepared.prior), prepared.store.spilled, out
    finally:
        prepared.source.close()
        prepared.store.close()
        prepared.lock.release()


@pytest.mark.parametrize(("budget", "shape"), [(32_000_000, ByLine), (0, ByLine)])
def test_a_rerun_of_the_same_file_resumes_by_line_and_sends_exactly_what_is_left(
    tmp_path: Path, budget: int, shape: type
) -> None:
    src, report = night(tmp_path)
    kind, _, got = decisions(settings(src, report, memory_budget=budget))
    assert kind is shape
    sent = [a.row.reference for a in got if isinstance(a, Send)]
    assert sent == ["r50", "r58"] + [f"r{n}" for n in range(300, 400)]
    reported = [a.outcome for a in got if isinstance(a, Reported)]
    assert reported.count(Outcome.CANCELED) == 295 and Outcome.REJECTED in reported
    assert Outcome.DUPLICATE in reported and Outcome.INVALID in reported  # not reported twice
    assert not [a for a in got if isinstance(a, Result)]


def test_by_reference_spilled_decides_as_by_line(tmp_path: Path) -> None:
    """The same night resumed by reference with a zero budget (everything in the
    on-disk index): row for row the same decisions as the by-line shape."""
    src, report = night(tmp_path)
    _, _, by_line = decisions(settings(src, report))
    prepared = prepare(settings(src, report, memory_budget=0))
    try:
        prepared.prior = load_report(report, RUN, prepared.store, by_line=False)
        assert isinstance(prepared.prior, ByKey) and prepared.prior.done.spilled
        admit = prepared.admission()
        source = open_input(str(src))
        keyed = [a for batch in source.batches() for a in admit.chunk(batch)]
        source.close()
    finally:
        prepared.source.close()
        prepared.store.close()
        prepared.lock.release()
    assert keyed == by_line


def test_a_changed_input_past_the_budget_resumes_by_reference(tmp_path: Path) -> None:
    """Line 3 (bad) deleted and its fixed row appended: the moved rows are reported on
    their new lines, nothing final is sent again, the fixed row is sent."""
    src = write_csv(tmp_path / "in.csv", [("F-1", "T1"), ("F-2", ""), ("F-3", "T1"), ("F-4", "T1")])
    report = write_report(
        tmp_path / "in.report.csv",
        [
            report_row(2, "F-1", "canceled"),
            report_row(3, "F-2", "invalid", merchant=""),
            report_row(4, "F-3", "canceled"),
            report_row(5, "F-4", "canceled"),
        ],
    )
    write_csv(src, [("F-1", "T1"), ("F-3", "T1"), ("F-4", "T1"), ("F-2", "T1")])
    kind, spilled, got = decisions(settings(src, report, memory_budget=0, allow_changed_input=True))
    assert kind is ByKey and spilled
    assert got[0] == Reported(Outcome.CANCELED)
    moved = [(r.line, r.reference, r.outcome) for r in got[1:3] if isinstance(r, Result)]
    assert moved == [(3, "F-3", Outcome.CANCELED), (4, "F-4", Outcome.CANCELED)]
    assert isinstance(got[3], Send) and got[3].row.reference == "F-2"


def test_a_report_that_does_not_fit_the_lines_is_read_again_by_reference(
    tmp_path: Path,
) -> None:
    """Rows without a merchant took --merchant A; the rerun says --merchant B: line 2
    is another payment now. The by-line proof fails, and B's payment is sent."""
    src = write_csv(tmp_path / "in.csv", [("a", ""), ("b", "")])
    report = write_report(
        tmp_path / "in.report.csv",
        [report_row(2, "a", "canceled", merchant="A"), report_row(3, "b", "failed", "A")],
    )
    kind, _, got = decisions(settings(src, report, merchant="B"))
    assert kind is ByKey
    assert [a.row.merchant for a in got if isinstance(a, Send)] == ["B", "B"]
    kind, _, got = decisions(settings(src, report, merchant="A"))
    assert kind is ByLine and got[0] == Reported(Outcome.CANCELED) and isinstance(got[1], Send)


def test_the_by_line_shape_keeps_about_one_byte_per_line(tmp_path: Path) -> None:
    """Regression guard (no timing): what resuming a 20,000-row report keeps, and the
    most it holds while reading, stay within its stated bytes per line (a dict by
    reference would keep over 100 bytes a line: 2 MB here)."""
    n = 20_000
    report = write_report(
        tmp_path / "r.csv", [report_row(i + 2, f"BENCH{i:012d}", "canceled") for i in range(n)]
    )
    tracemalloc.start()
    try:
        prior = load_report(report, RUN, SpillStore(report, 0), by_line=True)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(prior, ByLine) and prior.rows == n
    assert kept <= n * ByLine.BYTES_PER_LINE * 1.5 + 70_000  # a bytearray grows by half
    assert peak <= kept + 1_000_000  # one 64 KiB read and its lines at a time


def test_the_by_reference_shape_stays_within_its_budget(tmp_path: Path) -> None:
    n, budget = 10_000, 200_000
    report = write_report(
        tmp_path / "r.csv", [report_row(i + 2, f"BENCH{i:012d}", "canceled") for i in range(n)]
    )
    store = SpillStore(report, budget)
    tracemalloc.start()
    try:
        prior = load_report(report, RUN, store, by_line=False)
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        store.close()
    assert isinstance(prior, ByKey) and prior.done.spilled
    assert store.in_memory * ENTRY_BYTES <= budget
    assert kept <= budget  # what stays after reading: the index is on disk


def test_reading_a_big_report_says_how_far_it_is(tmp_path: Path) -> None:
    n = 70_000
    report = write_report(
        tmp_path / "r.csv", [report_row(i + 2, f"x{i}", "canceled") for i in range(n)]
    )
    ticks: list[tuple[int, int, int]] = []
    load_report(
        report, RUN, SpillStore(report, 0), by_line=True, progress=lambda *t: ticks.append(t)
    )
    size = report.stat().st_size
    assert [t[0] for t in ticks] == [65_536] and 0 < ticks[0][1] <= size == ticks[0][2]


def test_a_line_number_beyond_the_file_is_read_by_reference_not_allocated(
    tmp_path: Path,
) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1"), ("b", "T1")])
    report = write_report(
        tmp_path / "in.report.csv",
        [report_row(2, "a", "canceled"), report_row(10**12, "b", "canceled")],  # hand-edited
    )
    kind, _, got = decisions(settings(src, report))
    assert kind is ByKey  # the proof failed: no bytearray of a terabyte was asked for
    assert got == [
        Reported(Outcome.CANCELED),
        Result(3, "T1", "b", Outcome.CANCELED, detail=got[1].detail),
    ]  # type: ignore[union-attr]


def test_a_changed_file_is_resumed_by_reference_even_when_its_reported_lines_match(
    tmp_path: Path,
) -> None:
    """Line 3 was in flight at a kill (no row); the fixed file now holds there the
    reference line 4 finished: by line it would look new, by reference it is final."""
    src = write_csv(tmp_path / "in.csv", [("a", "T1"), ("x", "T1"), ("c", "T1")])
    report = write_report(
        tmp_path / "in.report.csv",
        [report_row(2, "a", "canceled"), report_row(4, "c", "canceled")],
    )
    runs = report.with_name(report.name + ".runs.jsonl")
    runs.write_text('{"mode": "run", "input_sha256": "' + "0" * 64 + '"}\n')
    write_csv(src, [("a", "T1"), ("c", "T1"), ("c", "T1")])
    kind, _, got = decisions(settings(src, report, allow_changed_input=True))
    assert kind is ByKey
    assert not [a for a in got if isinstance(a, Send)]  # c is final: never sent again


@pytest.mark.parametrize(
    ("fragment", "jsonl", "lines", "not_lines"),
    [
        (b"12,T1,ref-1,cance", False, [12], [1, 120, 121]),  # the number whole: that line
        (b"12", False, [12, 120, 129, 1200], [1, 2, 13, 21]),  # cut inside it: 12...
        (b"", False, [1, 7, 12345], []),  # nothing of it: any line
        (b'{"line": 7, "merchant_number": "T', True, [7], [70, 8]),
        (b'{"line": 7', True, [7, 70, 777], [8]),
        (b'{"li', True, [1, 99], []),
    ],
)
def test_a_torn_last_row_names_the_lines_it_may_have_been_about(
    fragment: bytes, jsonl: bool, lines: list[int], not_lines: list[int]
) -> None:
    torn = TornRow.of(fragment, jsonl)
    assert all(torn.may_be(n) for n in lines) and not any(torn.may_be(n) for n in not_lines)


def test_load_report_keeps_what_its_torn_last_row_may_have_been(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(",".join(REPORT_COLUMNS) + "\r\n2,T1,a,canceled,201,,,1,,x\r\n3,T1,b,canc")
    prior = load_report(path, RUN, SpillStore(path, 1 << 20), by_line=True)
    assert prior.torn is not None and prior.torn.may_be(3) and not prior.torn.may_be(2)
    assert (
        load_report(path.with_name("none.csv"), RUN, SpillStore(path, 0), by_line=True).torn is None
    )


@pytest.mark.parametrize(
    ("name", "tail", "pair"),
    [
        ("r.csv", b'7,T1,"a,b",canceled,20', ("T1", "a,b")),  # the reference whole
        ("r.csv", b"7,T1,ref-", None),  # cut inside the reference: unknown
        ("r.csv", b"7,T1", None),
        (
            "r.jsonl",
            b'{"line": 7, "merchant_number": "T1", "payment_reference": "r\\"1", "o',
            ("T1", 'r"1'),
        ),
        ("r.jsonl", b'{"line": 7, "merchant_number": "T1", "payment_reference": "r1', None),
    ],
)
def test_a_torn_row_names_its_payment_only_when_its_cells_are_whole(
    tmp_path: Path, name: str, tail: bytes, pair: tuple[str, str] | None
) -> None:
    path = tmp_path / name
    path.write_bytes(b"whole first line\n" + tail)
    assert torn_pair(path, len(tail)) == pair


def test_which_torn_rows_a_run_queries_first(tmp_path: Path) -> None:
    """This report's torn row, unless a killed run tore it and its journal covers it; and
    rows earlier runs cut off but did not see through (a complete run ends them)."""
    prior = ByLine(RUN)
    prior.torn = TornRow("7", True)
    start, ended = {"event": "start"}, {"event": "end", "complete": True}
    # torn after a finished run (by hand): queried, a journal kept by that run or not
    assert torn_rows(prior, [start, ended], journaled=True) == (TornRow("7", True),)
    # torn by a kill mid-run whose journal names every cancel it sent
    assert torn_rows(prior, [ended, start], journaled=True) == ()
    assert torn_rows(prior, [ended, start], journaled=False) == (TornRow("7", True),)
    # cut off by a run that stopped before that line, then not seen through: carried
    cut = {"event": "start", "torn_row": "12*"}
    stopped = {"event": "end", "complete": False}
    prior.torn = None
    assert torn_rows(prior, [ended, cut, stopped], journaled=False) == (TornRow("12", False),)
    assert torn_rows(prior, [cut, stopped, start, ended], journaled=False) == ()
    assert TornRow.parse(TornRow("12", False).text) == TornRow("12", False)


def test_under_a_resume_by_reference_a_torn_row_may_be_any_line() -> None:
    """A changed input moves lines: the torn row's line number names another row now."""
    prior = ByKey(RUN, SpillStore(Path("unused"), 1 << 20))
    prior.torn = TornRow("13", True)
    (torn,) = torn_rows(prior, [{"event": "end", "complete": True}], journaled=False)
    assert torn.may_be(13) and torn.may_be(14) and torn.may_be(2)
