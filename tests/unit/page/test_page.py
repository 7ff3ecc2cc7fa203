"""The page read back with an HTML parser: every figure is what the report and its run
records hold, in the latest-row view (a rerun's row replaces the one before)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.page.parse import Page, body_rows, read_page
from tests.unit.page.reports import end_record, row, write_report
from worker.page import night as night_module
from worker.page.night import Night, gather
from worker.page.render import page
from worker.page.verdict import judge


def at(minute: str) -> str:
    return f"2026-11-27T{minute}:10.000Z"


ROWS = [
    row(2, "A1", "canceled", amount=1000, currency="EUR", at=at("01:01")),
    row(3, "A2", "canceled", amount=250, currency="EUR", at=at("01:01")),
    row(4, "A3", "canceled", amount=1500, currency="JPY", at=at("01:02")),
    row(5, "A4", "canceled", merchant="T2", amount=1500, currency="KWD", at=at("01:05")),
    row(6, "A5", "failed", detail="timeout 1", at=at("01:05")),
    row(7, "A6", "failed", detail="timeout 1", at=at("01:05")),
    row(8, "A7", "not_found", detail="no such payment"),
    row(9, "A8", "not_cancelable", amount=700, currency="EUR", state="Captured"),
    row(12, "", "invalid", detail="empty payment reference"),
    row(14, "A1", "duplicate", detail="repeats an earlier row of the input (line 2)"),
    # the third run: resumes, retries the failed ones and (--retry-outcomes) not_found
    row(6, "A5", "canceled", amount=100, currency="EUR", at=at("01:31"), run_id="r3"),
    row(7, "A6", "failed", detail="timeout 2", at=at("01:31"), run_id="r3"),
    row(8, "A7", "canceled", amount=5, currency="EUR", at=at("01:31"), run_id="r3"),
    row(10, "A9", "not_cancelable", merchant="T2", amount=300, currency="EUR", state="Settled"),
    row(11, "A10", "not_cancelable", state="Settled", run_id="r3"),
    row(12, "", "invalid", detail="empty payment reference", run_id="r3"),
    row(13, "A11", "rejected", detail="forbidden", run_id="r3"),
    row(15, "A12", "already_canceled", amount=999, currency="EUR", run_id="r3"),
    row(16, "A13", "not_found", detail="no such payment", run_id="r3"),
]
RECORDS = [
    {"event": "start", "run_id": "r1", "mode": "run", "started_at": "2026-11-27T01:00:00.000Z"},
    end_record("r1", finished_at="2026-11-27T01:10:00.000Z", exit_code=143, complete=False),
    {"event": "start", "run_id": "r2", "mode": "run", "started_at": "2026-11-27T01:20:00.000Z"},
    end_record(
        "r3",
        started_at="2026-11-27T01:30:00.000Z",
        finished_at="2026-11-27T01:40:00.000Z",
        exit_code=1,
        released_total={"EUR": 1},  # a key this version does not read: ignored
        states={"Captured": 1},
    ),
]


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return write_report(tmp_path / "night.report.csv", ROWS, RECORDS)


def render(report: Path, command: str | None = None) -> Page:
    night = gather(report)
    return read_page(page(night, judge(night, command)))


def test_outcome_counts_are_the_latest_row_of_each_reference(report: Path) -> None:
    table = body_rows(render(report).tables["outcome-table"])
    counts = {r[1]: int(r[2].replace(",", "")) for r in table if len(r) == 4 and r[1]}
    assert counts == {
        "canceled": 6,
        "already_canceled": 1,
        "duplicate": 1,
        "not_cancelable": 3,
        "not_found": 1,
        "invalid": 1,
        "rejected": 1,
        "failed": 1,
    }
    groups = {r[0]: r[1] for r in table if len(r) == 3}
    assert groups == {
        "done": "8",
        "follow-up": "4",
        "needs a person": "2",
        "left to retry": "1",
        "all": "15",
    }
    shares = {r[1]: r[3] for r in table if len(r) == 4 and r[1]}
    assert shares["canceled"] == "40.0\u00a0%"


def test_money_released_and_held_per_currency_by_exponent(report: Path) -> None:
    shown = render(report)
    released = {r[0]: r[1] for r in body_rows(shown.tables["released"])}
    # canceled rows only (not already_canceled), the replaced failed/not_found ones included
    assert released == {"EUR": "13.55 EUR", "JPY": "1,500 JPY", "KWD": "1.500 KWD"}
    held = {r[0]: r[1] for r in body_rows(shown.tables["held"])}
    assert held == {"EUR": "10.00 EUR"}
    assert "1 not_cancelable row states no amount" in " ".join(shown.text.split())


def test_follow_up_lists_hold_the_latest_rows_in_report_order(report: Path) -> None:
    shown = render(report)
    assert body_rows(shown.tables["not_cancelable"]) == [
        ["9", "A8", "T1", "7.00 EUR", "Captured"],
        ["10", "A9", "T2", "3.00 EUR", "Settled"],
        ["11", "A10", "T1", "", "Settled"],
    ]
    assert body_rows(shown.tables["not_found"]) == [["16", "A13"]]  # A7 canceled since
    assert body_rows(shown.tables["failed"]) == [["7", "A6"]]
    assert body_rows(shown.tables["invalid"]) == [["12", ""]]
    assert body_rows(shown.tables["rejected"]) == [["13", "A11"]]
    text = " ".join(shown.text.split())
    # a column with one value in every row shown is said once, above its list
    assert "failed: 1 (all shown) Every row shown: merchant T1; detail timeout 2" in text
    assert "not_found: 1 (all shown) Every row shown: merchant T1; detail no such payment" in text


def test_a_list_shows_the_first_thousand_and_the_total(tmp_path: Path) -> None:
    rows = [row(i + 2, f"N{i:05d}", "not_found", detail=f"d{i % 2}") for i in range(1005)]
    shown = render(write_report(tmp_path / "r.csv", rows))
    listed = body_rows(shown.tables["not_found"])
    assert len(listed) == night_module.LIST_LIMIT == 1000
    assert listed[0] == ["2", "N00000", "d0"] and listed[-1] == ["1,001", "N00999", "d1"]
    assert "not_found: 1,005 (the first 1,000 shown)" in shown.text


def test_runs_with_their_end_exit_code_and_who_stopped_them(report: Path) -> None:
    runs = body_rows(render(report).tables["runs"])
    assert [r[0] for r in runs] == ["r1", "r2", "r3"]
    assert runs[0][3:6] == ["2026-11-27 01:00:00", "2026-11-27 01:10:00", "143"]
    assert runs[0][7] == "SIGTERM (a pod stop or kill)"
    assert runs[1][3:6] == ["2026-11-27 01:20:00", "no end record", ""]
    assert runs[1][7].startswith("killed: no end record")
    assert runs[2][3:6] == ["2026-11-27 01:30:00", "2026-11-27 01:40:00", "1"]
    assert runs[2][7] == "ran to the end of its input"
    assert runs[0][8] == "10"


def test_cancels_per_minute_as_figures(report: Path) -> None:
    minutes = render(report).texts["minutes"].split()
    assert list(zip(minutes[1::3], minutes[2::3], strict=True)) == [
        ("01:01", "2"),
        ("01:02", "1"),
        ("01:05", "1"),
        ("01:31", "2"),
    ]


def test_per_merchant_rows_groups_and_money(report: Path) -> None:
    merchants = body_rows(render(report).tables["merchant-table"])
    assert merchants == [
        ["T1", "13", "7", "3", "2", "1", "13.55 EUR, 1,500 JPY"],
        ["T2", "2", "1", "1", "0", "0", "1.500 KWD"],
    ]


def test_the_verdict_gives_the_command_that_retries(report: Path) -> None:
    shown = render(report, command="cancel-worker run payments.csv --sandbox")
    assert "Complete, 1 reference left to retry" in shown.texts["verdict"]
    assert shown.texts["command"] == "cancel-worker run payments.csv --sandbox"
    rebuilt = render(report).texts["command"]
    assert rebuilt.startswith(f"cancel-worker run payments.csv --report {report}")


def test_a_merged_report_shows_its_shards(tmp_path: Path) -> None:
    rows = [
        row(2, "S0", "canceled", amount=100, currency="EUR", run_id="a"),
        row(3, "S1", "failed", run_id="b"),
        row(4, "S2", "canceled", amount=200, currency="EUR", run_id="b"),
    ]
    records = [
        end_record("a", shard="0/2", report="in.report.shard-0-of-2.csv"),
        end_record("b", shard="1/2", report="in.report.shard-1-of-2.csv", exit_code=1),
        {"mode": "merge", "reports": ["x", "y"], "rows": 3, "outcomes": {}, "released": {}},
    ]
    shown = render(write_report(tmp_path / "merged.csv", rows, records))
    assert body_rows(shown.tables["shard-table"]) == [
        ["0/2", "1", "1", "0", "0", "0", "1.00 EUR"],
        ["1/2", "2", "1", "0", "0", "1", "2.00 EUR"],
    ]
    assert "Merged report of 2 shards, 3 references" in shown.texts["verdict"]
    assert "rerun the shards that have them (shards 1/2)" in shown.texts["verdict"]


def test_only_replaceable_rows_are_kept_while_reading(tmp_path: Path) -> None:
    """Memory stays flat: canceled rows are counted, never held."""
    rows = [row(i + 2, f"C{i}", "canceled", amount=1, currency="EUR") for i in range(5000)]
    rows.append(row(5002, "F", "failed"))
    kept: list[int] = []
    original = night_module._Gatherer.finish

    def spy(self: night_module._Gatherer) -> night_module.Night:
        kept.append(len(self._open))
        return original(self)

    night_module._Gatherer.finish = spy  # type: ignore[method-assign]
    try:
        night = gather(write_report(tmp_path / "big.csv", rows))
    finally:
        night_module._Gatherer.finish = original  # type: ignore[method-assign]
    assert kept == [1]
    assert night.released == {"EUR": 5000}


def _kept_while_reading(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], Night]:
    kept: list[int] = []
    original = night_module._Gatherer.finish

    def spy(self: night_module._Gatherer) -> night_module.Night:
        kept.append(len(self._open))
        return original(self)

    monkeypatch.setattr(night_module._Gatherer, "finish", spy)
    return kept, gather(path)


def test_a_one_run_report_keeps_nothing_per_row_even_a_dry_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run's `would_cancel` rows could be replaced by a rerun, but a report of one
    run has no later row: nothing is held per row (flat memory at ten million)."""
    rows = [row(i + 2, f"W{i}", "would_cancel", run_id="only") for i in range(5000)]
    rows.append(row(5002, "N", "not_cancelable", amount=700, currency="EUR", run_id="only"))
    records = [{"event": "start", "run_id": "only"}, {"event": "end", "run_id": "only"}]
    path = write_report(tmp_path / "dry.csv", rows, records)
    kept, night = _kept_while_reading(path, monkeypatch)
    assert kept == [0]
    assert night.outcomes == {"would_cancel": 5000, "not_cancelable": 1}
    assert night.held == {"EUR": 700}


def test_a_row_of_another_run_reads_the_report_again_keeping_identities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run record names one run, yet a row says another wrote it (an older tool,
    an edit): the latest-row view must still win, so the pass starts again."""
    rows = [
        row(2, "A", "failed", run_id="one"),
        row(2, "A", "canceled", amount=5, currency="EUR", run_id="two"),
    ]
    records = [{"event": "start", "run_id": "one"}]
    path = write_report(tmp_path / "two.csv", rows, records)
    kept, night = _kept_while_reading(path, monkeypatch)
    assert kept == [0]  # the second pass: `A` was taken back when its canceled row came
    assert night.outcomes == {"canceled": 1} and night.released == {"EUR": 5}
