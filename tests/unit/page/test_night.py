"""Night: the card's one pass over a report. Its chunked fold (`add_many`, canceled
rows of one run counted together) must give exactly what row-by-row `add` gives."""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tests.unit.page.reports import end_record, row, write_report
from worker.input.admission import moved_detail
from worker.model import Outcome
from worker.page import night as night_mod
from worker.page.night import Night, _Gatherer, gather
from worker.page.rows import read_rows
from worker.page.runs import runs_of
from worker.report.merge import merge
from worker.report.runs import read_runs

OUTCOMES = ["canceled"] * 12 + [
    "already_canceled",
    "not_cancelable",
    "not_found",
    "failed",
    "invalid",
    "duplicate",
    "rejected",
]


def _rows(rng: random.Random, n: int, run_ids: list[str]) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        outcome = rng.choice(OUTCOMES)
        out.append(
            row(
                i + 2,
                f"ref-{rng.randrange(n)}",  # some references repeat: later rows replace
                outcome,
                merchant=rng.choice(["T1", "T2", ""]),
                amount=rng.choice([None, rng.randrange(1, 10_000)]),
                currency=rng.choice(["EUR", "EUR", "SEK", ""]),
                detail=rng.choice(["", "a detail, with a comma", 'a "quoted" one']),
                at=f"2026-11-27T01:{rng.randrange(60):02d}:10.000Z",
                run_id=rng.choice(run_ids),
            )
        )
    return out


def _row_by_row(report: Path) -> Night:
    """The reference: `gather`, with every row through `add`."""
    runs, merged = runs_of(read_runs(report))
    one_run = runs[0].run_id if merged is None and len(runs) == 1 else None
    for keep in (one_run, None):
        gatherer = _Gatherer(Night(report=report, runs=runs, merged=merged), {}, keep)
        for cells in read_rows(report):
            gatherer.add(cells)
            if gatherer.other_run:
                break
        else:
            return gatherer.finish()
    raise AssertionError("unreachable")


def _view(night: Night) -> dict[str, Any]:
    return {k: v for k, v in asdict(night).items() if k != "report"}


@pytest.mark.parametrize("seed", range(8))
def test_the_chunked_fold_gives_what_the_row_by_row_fold_gives(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(night_mod, "CHUNK_ROWS", rng.choice([1, 7, 4096]))
    run_ids = ["r1"] if seed % 2 == 0 else ["r1"] * 30 + ["r2"]  # odd: a second run's row
    report = write_report(
        tmp_path / "n.report.csv",
        _rows(rng, 3_000, run_ids),
        [end_record("r1")],
    )
    assert _view(gather(report)) == _view(_row_by_row(report))


def test_a_night_of_one_run_counts_its_canceled_money_per_merchant_and_minute(
    tmp_path: Path,
) -> None:
    rows = [
        row(2, "a", "canceled", amount=100, currency="EUR", at="2026-11-27T01:05:00.000Z"),
        row(3, "b", "canceled", merchant="T2", amount=250, currency="EUR"),
        row(4, "c", "canceled", amount=None, currency="EUR"),
        row(5, "d", "not_cancelable", amount=70, currency="SEK"),
    ]
    report = write_report(tmp_path / "m.report.csv", rows, [end_record("r1")])
    got = gather(report)
    assert got.released == {"EUR": 350}
    assert got.merchants["T1"].released == {"EUR": 100}
    assert got.merchants["T2"].released == {"EUR": 250}
    assert got.minutes == {"2026-11-27T01:05": 1, "2026-11-27T01:00": 2}
    assert got.outcomes == {"canceled": 3, "not_cancelable": 1}
    assert got.held == {"SEK": 70}


def test_a_changed_inputs_moved_rows_count_once_and_keep_their_money(tmp_path: Path) -> None:
    """--allow-changed-input: R-3 canceled on line 4 moved to line 3, where an invalid
    row had been; the rerun restated it there (no amount) and canceled R-2 anew."""
    moved = moved_detail(Outcome.CANCELED, 4)
    rows = [
        row(2, "R-1", "canceled", amount=100, currency="EUR", run_id="a"),
        row(3, "R-2", "invalid", merchant="", run_id="a"),
        row(4, "R-3", "canceled", amount=250, currency="EUR", run_id="a"),
        row(5, "N-1", "not_found", run_id="a"),
        row(6, "H-1", "not_cancelable", amount=70, currency="EUR", run_id="a"),
        row(3, "R-3", "canceled", detail=moved, run_id="b"),
        row(4, "R-2", "canceled", amount=40, currency="EUR", run_id="b"),
        # the input moved N-1 and H-1 up by one line as well
        row(6, "N-1", "not_found", detail=moved_detail(Outcome.NOT_FOUND, 5), run_id="b"),
        row(7, "H-1", "not_cancelable", detail=moved_detail(Outcome.NOT_CANCELABLE, 6), run_id="b"),
    ]
    records = [end_record("a"), end_record("b")]
    night = gather(write_report(tmp_path / "r.csv", rows, records))
    # was canceled 4 and invalid 1: the restated rows twice, a replaced invalid row kept
    assert night.outcomes == {"canceled": 3, "not_found": 1, "not_cancelable": 1}
    assert night.released == {"EUR": 390} and night.held == {"EUR": 70}
    assert [r.reference for r in night.lists["not_found"]] == ["N-1"]
    # merge-reports keeps one row per reference (the restated ones, with their money):
    # its card counts the same night
    merge(tmp_path / "all.csv", [tmp_path / "r.csv"])
    merged = gather(tmp_path / "all.csv")
    assert (merged.outcomes, merged.released, merged.held) == (
        night.outcomes,
        night.released,
        night.held,
    )
