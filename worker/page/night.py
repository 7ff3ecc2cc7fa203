"""Night: what one report and its run records hold, gathered in one pass over the report.

The page shows the latest-row view, as resume and merge-reports read a report: a
reference's last row wins; rows never sent (`invalid`, `duplicate`) are known by
their line. `canceled`, `already_canceled` and `checked` rows are never replaced
(no rerun sends them again), so they are only counted; every other row is kept by
its identity until the end, because a rerun may replace it. Memory therefore grows
with the rows a rerun can replace (failed ones and follow-ups), not with the night.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.model import UNSENT, Outcome
from worker.page.runs import Run, as_int, as_text, runs_of
from worker.report.records import read_records
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
#: Never followed by another row of the same reference (see the module docstring).
_SETTLED = frozenset({Outcome.CANCELED, Outcome.ALREADY_CANCELED, Outcome.CHECKED})

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


def _identity(outcome: Outcome, line: int, merchant: str, reference: str) -> Identity:
    """As merge-reports and resume know a row: unsent ones and empty references by line."""
    if outcome in UNSENT or not reference:
        return ("line", line)
    return (merchant, reference)


class _Gatherer:
    """Folds report rows into a `Night`, one row at a time."""

    def __init__(self, night: Night, shard_of: Mapping[str, str]) -> None:
        self.night = night
        self._shard_of = shard_of
        self._open: dict[Identity, _Open] = {}
        self._listed: dict[str, dict[Identity, Listed]] = {o.value: {} for o in LISTED}

    def add(self, rec: Mapping[str, Any]) -> None:
        night = self.night
        night.rows_read += 1
        outcome = Outcome(rec["outcome"])
        line = as_int(rec.get("line")) or 0
        merchant = as_text(rec.get("merchant_number"))
        reference = as_text(rec.get("payment_reference"))
        amount = as_int(rec.get("amount"))
        currency = as_text(rec.get("currency")).strip().upper()
        shard = self._shard_of.get(as_text(rec.get("run_id")), "")
        ident = _identity(outcome, line, merchant, reference)
        earlier = self._open.pop(ident, None)
        if earlier is not None:
            self._take_back(ident, earlier)
        value = outcome.value
        night.outcomes[value] += 1
        by_merchant = night.merchants.setdefault(merchant, Breakdown())
        by_merchant.outcomes[value] += 1
        by_shard = night.shards.setdefault(shard, Breakdown()) if shard else None
        if by_shard is not None:
            by_shard.outcomes[value] += 1
        minute = as_text(rec.get("finished_at"))[:16]
        night.finished[minute] += 1
        if outcome is Outcome.CANCELED:
            night.minutes[minute] += 1
            if amount is not None and currency:
                night.released[currency] += amount
                by_merchant.released[currency] += amount
                if by_shard is not None:
                    by_shard.released[currency] += amount
        if outcome in _SETTLED:
            return
        self._open[ident] = _Open(value, merchant, shard, amount, currency)
        listed = self._listed.get(value)
        if listed is not None and len(listed) < LIST_LIMIT:
            listed[ident] = Listed(
                line,
                reference,
                merchant,
                amount,
                currency,
                as_text(rec.get("payment_state")),
                as_text(rec.get("detail")),
            )

    def _take_back(self, ident: Identity, row: _Open) -> None:
        """A later row replaces this one: it no longer counts anywhere."""
        night = self.night
        night.outcomes[row.outcome] -= 1
        night.merchants[row.merchant].outcomes[row.outcome] -= 1
        if row.shard:
            night.shards[row.shard].outcomes[row.outcome] -= 1
        listed = self._listed.get(row.outcome)
        if listed is not None:
            listed.pop(ident, None)

    def finish(self) -> Night:
        night = self.night
        for row in self._open.values():
            if row.outcome == Outcome.NOT_CANCELABLE:
                if row.amount is not None and row.currency:
                    night.held[row.currency] += row.amount
                else:
                    night.held_unknown += 1
        night.lists = {o: list(rows.values()) for o, rows in self._listed.items()}
        breakdowns = [*night.merchants.values(), *night.shards.values()]
        for counter in (night.outcomes, *(b.outcomes for b in breakdowns)):
            counter += Counter()  # in place: drops the zeros left by replaced rows
        return night


def _shard_labels(runs: list[Run], merged: bool) -> dict[str, str]:
    """run_id -> the shard that wrote its rows; only a merged report has several."""
    if not merged:
        return {}
    return {r.run_id: r.shard for r in runs}


def gather(report: Path, records: list[dict[str, Any]] | None = None) -> Night:
    """Read `report` once, and its run records; raises ReportError, OSError."""
    runs, merged = runs_of(read_runs(report) if records is None else records)
    night = Night(report=report, runs=runs, merged=merged)
    gatherer = _Gatherer(night, _shard_labels(runs, merged is not None))
    for rec in _rows(report):
        gatherer.add(rec)
    return gatherer.finish()


def _rows(report: Path) -> Iterator[dict[str, Any]]:
    torn: list[int] = []  # a torn last line is what a resume would redo: not shown
    yield from read_records(report, torn)
