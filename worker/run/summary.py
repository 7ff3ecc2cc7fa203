"""Summary: what a run counted, and the one frozen value its end is told from.

The writer owns the counts (`Tally`), the reader how the input was read (`Reading`),
the job's ledger why the run stopped, the canceller its calls (`Calls`). When the run
is over they are folded into one `RunReport`; the exit code is a pure function of it
(`RunReport.exit_code`), and the summary event, the run record, the metrics, the
human card and the termination message are all read from it, so they cannot disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.exits import Exit
from worker.model import FOLLOW_UP_OUTCOMES, NEEDS_PERSON_OUTCOMES, Mode, Outcome
from worker.observe import logs, words
from worker.settings import Settings, run_kind


@dataclass
class Calls:
    """The API calls of a run, counted by the canceller that makes them."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0


_DUPLICATE = Outcome.DUPLICATE.value


@dataclass
class Tally:
    """The report's rows as the writer wrote them: counts in the latest-row view."""

    rows_written: int = 0
    rows_already_reported: int = 0  # rows an earlier run reported, settled here
    outcomes: Counter[str] = field(default_factory=Counter)
    decisive: Counter[str] = field(default_factory=Counter)  # without duplicates
    released: Counter[str] = field(default_factory=Counter)  # currency -> minor units
    #: what earlier runs released, from the report's latest `canceled` rows
    released_earlier: Counter[str] = field(default_factory=Counter)
    #: payment_state -> `checked` references, the report's earlier rows included
    states: Counter[str] = field(default_factory=Counter)

    def count(self, outcome: Outcome, rows: int = 1) -> None:
        self.outcomes[outcome.value] += rows
        if outcome is not Outcome.DUPLICATE:
            self.decisive[outcome.value] += rows

    def count_many(self, outcomes: list[str]) -> None:
        """`count` for a batch of outcome values, in Counter's C loop (every row)."""
        self.outcomes.update(outcomes)
        self.decisive.update([o for o in outcomes if o != _DUPLICATE])


@dataclass(frozen=True)
class Reading:
    """How the input was read, as the reader tells it at its end."""

    done: bool = False  # read to its end (or to what the pre-pass counted)
    error: str | None = None  # the input became unreadable part-way
    fix: str | None = None  # what to do first when a rerun alone cannot finish it
    rows: int = 0  # rows taken: sent, reported unsent, or settled earlier
    lines: int = 0  # physical lines read
    lines_lost: int = 0  # lines that became neither header, row nor blank
    blank_rows: int = 0
    rows_seen: int = 0  # rows parsed, of any shard: 0 after a whole read is a header alone


@dataclass(frozen=True)
class RunReport:
    """A finished run, all of it: what every ending of a run is told from."""

    mode: Mode
    strict: bool
    reading: Reading
    rows_written: int
    rows_already_reported: int
    rows_unwritten: int  # finished rows the report could not take
    outcomes: Mapping[str, int]
    decisive: Mapping[str, int]  # without duplicates
    released: Mapping[str, int]  # this run's, currency -> minor units
    released_total: Mapping[str, int]  # the report's, earlier runs' included
    states: Mapping[str, int]  # payment_state -> `checked` references
    calls: Calls
    token_refreshes: int
    held_seconds: float
    elapsed: float
    abort_reason: str | None = None
    fix: str | None = None  # what a person must change before a rerun can succeed
    guard_reason: str | None = None
    signal_code: int | None = None  # 130 / 143

    @property
    def complete(self) -> bool:
        """The input was read to its end and nothing stopped the run."""
        stopped = self.abort_reason or self.guard_reason or self.signal_code is not None
        return self.reading.done and not stopped

    @property
    def rows_reported(self) -> int:
        return self.rows_written + self.rows_already_reported

    @property
    def follow_ups(self) -> int:
        return sum(self.outcomes.get(o.value, 0) for o in FOLLOW_UP_OUTCOMES)

    @property
    def exit_code(self) -> int:
        """The exit table (`worker/exits.py`), in order of precedence.

        `failed` rows (a rerun retries them) win over rows that need a person, since
        the rerun is what operations must do first. `strict` counts the follow-ups
        (`not_cancelable`, `not_found`) as needing a person.
        """
        if self.abort_reason is not None:
            return int(Exit.ABORTED)
        if self.guard_reason is not None:
            return int(Exit.GUARD_RAIL)
        if self.signal_code is not None:
            return self.signal_code
        if self.decisive.get(Outcome.FAILED.value):
            return int(Exit.FAILED_ROWS)
        needs_person = NEEDS_PERSON_OUTCOMES | (FOLLOW_UP_OUTCOMES if self.strict else frozenset())
        if (
            self.reading.error is not None
            or not self.reading.done  # read short without a stop: nothing must pass as done
            or self.rows_reported != self.reading.rows
            or self.reading.lines_lost
            or any(self.decisive.get(o.value) for o in needs_person)
        ):
            return int(Exit.NEEDS_PERSON)
        return int(Exit.OK)

    @property
    def why_stopped(self) -> str | None:
        return self.abort_reason or self.guard_reason or self.reading.error


def log_losses(r: RunReport) -> None:
    """Say loudly when rows or lines went missing (exit 1): nothing else would show it."""
    if r.abort_reason or r.guard_reason or r.signal_code or r.reading.error:
        return
    if r.rows_reported != r.reading.rows:
        logs.log.error(
            "rows_lost",
            rows_read=r.reading.rows,
            rows_reported=r.rows_reported,
            hint="some input rows have no report row; rerun the same command to finish them",
        )
    if r.reading.lines_lost:
        # Every physical line is the header, a row, part of one, or blank: a gap here
        # means the reader itself lost count, which no rerun can mend.
        logs.log.error(
            "lines_lost", lines_read=r.reading.lines, lines_unaccounted=r.reading.lines_lost
        )


def push_metrics(s: Settings, r: RunReport) -> None:
    if not s.pushgateway:
        return
    from worker.observe.metrics import push

    push(
        s.pushgateway,
        job=s.job_name,
        shard=f"{s.shard.index}-of-{s.shard.count}",
        mode=run_kind(s.mode, s.dry_run),
        outcomes=r.outcomes,
        released_total=r.released_total,
        duration=r.elapsed,
        exit_code=r.exit_code,
        retries=r.calls.retries,
        throttled=r.calls.throttled,
        token_refreshes=r.token_refreshes,
        requests=r.calls.requests,
        held_seconds=r.held_seconds,
        guard_rail=r.exit_code == Exit.GUARD_RAIL,
    )


def summary_fields(s: Settings, r: RunReport) -> dict[str, Any]:
    """The `summary` event."""
    elapsed, requests = r.elapsed, r.calls.requests
    return {
        "outcomes": dict(sorted(r.outcomes.items())),
        "follow_ups": r.follow_ups,
        "released": dict(sorted(r.released.items())),
        "released_total": dict(sorted(r.released_total.items())),
        **({"states": dict(sorted(r.states.items()))} if r.mode is Mode.CHECK else {}),
        "rows_read": r.reading.rows,
        "rows_reported": r.rows_reported,
        "rows_written": r.rows_written,
        "rows_already_reported": r.rows_already_reported,
        "rows_unwritten": r.rows_unwritten,
        "lines_read": r.reading.lines,
        "blank_rows": r.reading.blank_rows,
        "requests": requests,
        "retries": r.calls.retries,
        "throttled": r.calls.throttled,
        "token_refreshes": r.token_refreshes,
        "elapsed_seconds": round(elapsed, 3),
        "requests_per_second": round(words.per_second(requests, elapsed), 1),
        "report": str(s.report),
        "exit_code": r.exit_code,
        "complete": r.complete,
    }
