"""Night: what one report and its run records hold, gathered in one pass over the report.

The page shows the latest-row view, as resume and merge-reports read a report: a
reference's last row wins; rows never sent (`invalid`, `duplicate`) are known by
their line. `canceled`, `already_canceled` and `checked` rows are never replaced
(no rerun sends them again), so they are only counted; every other row is kept by
its identity until the end, because a rerun may replace it. Memory therefore grows
with the rows a rerun can replace (failed ones and follow-ups), not with the night.
A report written by one run (its run record names one run, and every row says so)
has no row that replaces another, so then nothing is kept per row at all: a dry run
of ten million references is read in flat memory. A row of another run found on the
way starts the pass again, keeping identities.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from worker.model import RESTATED, UNSENT, Outcome
from worker.page.rows import Cells, read_rows
from worker.page.runs import Run, as_int, as_text, runs_of
from worker.report.runs import read_runs

#: The follow-up lists show this many rows of each outcome (with the total count).
LIST_LIMIT = 1000
#: Outcome groups, in the order the page shows them; each outcome in exactly one.
GROUPS: dict[str, tuple[Outcome, ...]] = {
    "done": (
        Outcome.CANCELED,
        Outcome.ALREADY_CANCELED,
        Outcome.CHECKED,
        Outcome.WOULD_CANCEL,
        Outcome.DUPLICATE,
    ),
    "follow-up": (Outcome.NOT_CANCELABLE, Outcome.NOT_FOUND),
    "needs a person": (Outcome.INVALID, Outcome.REJECTED),
    "left to retry": (Outcome.FAILED,),
}
GROUP_OF: dict[str, str] = {o.value: g for g, outcomes in GROUPS.items() for o in outcomes}
#: The outcomes listed row by row, in the page's order.
LISTED: tuple[Outcome, ...] = (
    Outcome.NOT_CANCELABLE,
    Outcome.NOT_FOUND,
    Outcome.INVALID,
    Outcome.REJECTED,
    Outcome.FAILED,
)
#: Rows folded together (`_Gatherer.add_many`).
CHUNK_ROWS = 4096
#: Never followed by another row of the same reference (see the module docstring).
_SETTLED = frozenset(o.value for o in (Outcome.CANCELED, Outcome.ALREADY_CANCELED, Outcome.CHECKED))
_UNSENT = frozenset(o.value for o in UNSENT)

Identity = tuple[str, str] | tuple[str, int]


@dataclass(slots=True)
class Listed:
    """One row of a follow-up list, as the report has it."""

    line: int
    reference: str
    merchant: str
    amount: int | None
    currency: str
    payment_state: str
    detail: str


@dataclass(slots=True)
class _Open:
    """A latest row that a later row may still replace: enough to take it back."""

    outcome: str
    merchant: str
    shard: str
    amount: int | None
    currency: str


@dataclass
class Breakdown:
    """Rows per outcome, and money released, for one merchant or one shard."""

    outcomes: Counter[str] = field(default_factory=Counter)
    released: Counter[str] = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return sum(self.outcomes.values())

    def group(self, name: str) -> int:
        return sum(self.outcomes[o.value] for o in GROUPS[name])


@dataclass
class Night:
    """Everything the page shows, all of it read from the report and its run records."""

    report: Path
    outcomes: Counter[str] = field(default_factory=Counter)
    released: Counter[str] = field(default_factory=Counter)  # currency -> minor units
    held: Counter[str] = field(default_factory=Counter)  # not_cancelable, per currency
    held_unknown: int = 0  # not_cancelable rows that state no amount
    lists: dict[str, list[Listed]] = field(default_factory=dict)
    minutes: Counter[str] = field(default_factory=Counter)  # "YYYY-MM-DDTHH:MM" -> canceled
    finished: Counter[str] = field(default_factory=Counter)  # same, every row
    merchants: dict[str, Breakdown] = field(default_factory=dict)
    shards: dict[str, Breakdown] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    merged: Mapping[str, Any] | None = None  # merge-reports' totals record
    rows_read: int = 0  # report rows, replaced ones included

    @property
    def rows(self) -> int:
        return sum(self.outcomes.values())

    def group(self, name: str) -> int:
        return sum(self.outcomes[o.value] for o in GROUPS[name])

    @property
    def mode(self) -> str:
        for run in reversed(self.runs):
            if run.mode:
                return run.mode
        return "run"


class _Gatherer:
    """Folds report rows into a `Night`, one row at a time.

    Rows are counted in one Counter keyed by (merchant, shard, outcome) and folded into
    the night's totals at the end: one count per row, as this runs a million times.
    """

    def __init__(
        self, night: Night, shard_of: Mapping[str, str], one_run: str | None = None
    ) -> None:
        self.night = night
        self._shard_of = shard_of
        self._one_run = one_run  # the run_id of every row, when no row can replace another
        self.other_run = False  # a row of another run came: this pass is void
        self._cells: Counter[tuple[str, str, str]] = Counter()
        self._money: Counter[tuple[str, str, str]] = Counter()  # (merchant, shard, currency)
        self._open: dict[Identity, _Open] = {}
        self._listed: dict[str, dict[Identity, Listed]] = {o.value: {} for o in LISTED}
        #: restated rows stand beside their earlier rows (a report of several runs, not
        #: merged: merge-reports keeps one row per reference, the restated one)
        self._restated = one_run is None and night.merged is None

    def add(self, cells: Cells) -> None:
        """One row's cells, in `rows.FIELDS` order."""
        outcome, merchant, reference, run_id, finished_at, amount, currency = cells[:7]
        one_run = self._one_run
        if one_run is not None and run_id != one_run:
            self.other_run = True  # the caller reads the report again, keeping identities
            return
        merchant = merchant or ""
        shard = self._shard_of.get(run_id or "", "") if self._shard_of else ""
        minute = (finished_at or "")[:16]
        night = self.night
        night.finished[minute] += 1
        on_line: Identity = ("line", as_int(cells[7]) or 0)
        ident: Identity = on_line if outcome in _UNSENT or not reference else (merchant, reference)
        # A final row restated on the line a changed input holds it on now: its earlier
        # row stands for the reference (counted, listed, with its money), and the line
        # is taken. A merged report keeps one row per reference: that row, counted.
        restated = self._restated and RESTATED in (cells[9] or "")
        if self._open:
            if not restated and (earlier := self._open.pop(ident, None)) is not None:
                self._take_back(ident, earlier)
            if ident != on_line and (unsent := self._open.pop(on_line, None)) is not None:
                self._take_back(on_line, unsent)  # an unsent row's line holds another row now
        if restated:
            return
        self._cells[(merchant, shard, outcome)] += 1
        amount = _units(amount)
        currency = currency or ""
        if outcome == "canceled":
            night.minutes[minute] += 1
            if amount is not None and currency:
                self._money[(merchant, shard, currency)] += amount
            return
        if outcome in _SETTLED:
            return
        if one_run is None:
            self._open[ident] = _Open(outcome, merchant, shard, amount, currency)
        elif outcome == Outcome.NOT_CANCELABLE:  # final already: no later row replaces it
            _hold(night, amount, currency)
        listed = self._listed.get(outcome)
        if listed is not None and len(listed) < LIST_LIMIT:
            line, state, detail = cells[7:10]
            listed[ident] = Listed(
                as_int(line) or 0,
                as_text(reference),
                as_text(merchant),
                amount,
                currency,
                as_text(state),
                as_text(detail),
            )

    def add_many(self, rows: list[Cells]) -> None:
        """Rows in report order. In a report of one run (nothing kept per row), its
        `canceled` rows, nearly all of a night, are only counted, so they are counted
        together (C-level Counter updates): the card's pass over a night of a million
        rows is mostly this. Every other row goes through `add`."""
        one_run = self._one_run
        if one_run is None:
            for cells in rows:
                self.add(cells)
            return
        canceled = [c for c in rows if c[0] == "canceled" and c[3] == one_run]
        if len(canceled) < len(rows):
            for cells in rows:
                if cells[0] != "canceled" or cells[3] != one_run:
                    self.add(cells)  # none of these touch what canceled rows count
                    if self.other_run:
                        return
        night = self.night
        minutes = [(c[4] or "")[:16] for c in canceled]
        night.finished.update(minutes)
        night.minutes.update(minutes)
        for merchant, n in Counter([c[1] for c in canceled]).items():
            self._cells[(merchant or "", "", "canceled")] += n
        money = self._money
        for c in canceled:
            currency = c[6]
            if currency and (amount := _units(c[5])) is not None:
                money[(c[1] or "", "", currency)] += amount

    def _take_back(self, ident: Identity, row: _Open) -> None:
        """A later row replaces this one: it no longer counts anywhere."""
        self._cells[(row.merchant, row.shard, row.outcome)] -= 1
        listed = self._listed.get(row.outcome)
        if listed is not None:
            listed.pop(ident, None)

    def finish(self) -> Night:
        night = self.night
        night.rows_read = sum(night.finished.values())
        for (merchant, shard, outcome), n in self._cells.items():
            if n <= 0:
                continue
            night.outcomes[outcome] += n
            night.merchants.setdefault(as_text(merchant), Breakdown()).outcomes[outcome] += n
            if shard:
                night.shards.setdefault(shard, Breakdown()).outcomes[outcome] += n
        for (merchant, shard, currency), units in self._money.items():
            night.released[currency] += units
            night.merchants.setdefault(as_text(merchant), Breakdown()).released[currency] += units
            if shard:
                night.shards.setdefault(shard, Breakdown()).released[currency] += units
        for row in self._open.values():
            if row.outcome == Outcome.NOT_CANCELABLE:
                _hold(night, row.amount, row.currency)
        night.lists = {o: list(rows.values()) for o, rows in self._listed.items()}
        return night


def _units(amount: Any) -> Any:
    """A row's amount: CSV text ("" when none) as an int; JSON Lines' value as it is."""
    if amount.__class__ is str:
        try:
            return int(amount)
        except ValueError:
            return None
    return amount


def _hold(night: Night, amount: int | None, currency: str) -> None:
    """A `not_cancelable` payment's money: still held by the card holder's bank."""
    if amount is not None and currency:
        night.held[currency] += amount
    else:
        night.held_unknown += 1


def _shard_labels(runs: list[Run], merged: bool) -> dict[str, str]:
    """run_id -> the shard that wrote its rows; only a merged report has several."""
    if not merged:
        return {}
    return {r.run_id: r.shard for r in runs}


def gather(report: Path, records: list[dict[str, Any]] | None = None) -> Night:
    """Read `report` once, and its run records; raises ReportError, OSError."""
    runs, merged = runs_of(read_runs(report) if records is None else records)
    labels = _shard_labels(runs, merged is not None)
    one_run = runs[0].run_id if merged is None and len(runs) == 1 else None
    night = _gather(report, Night(report=report, runs=runs, merged=merged), labels, one_run)
    if night is None:  # a row of another run: rows may replace others after all
        night = _gather(report, Night(report=report, runs=runs, merged=merged), labels, None)
        assert night is not None
    return night


def _gather(
    report: Path, night: Night, labels: Mapping[str, str], one_run: str | None
) -> Night | None:
    """One pass; None when `one_run` was wrong (a row of another run came)."""
    gatherer = _Gatherer(night, labels, one_run)
    for chunk in _chunks(read_rows(report)):
        gatherer.add_many(chunk)
        if gatherer.other_run:
            return None
    return gatherer.finish()


def _chunks(rows: Iterator[Cells]) -> Iterator[list[Cells]]:
    while chunk := list(islice(rows, CHUNK_ROWS)):
        yield chunk
