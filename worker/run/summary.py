"""Summary: the tally of a run, its exit code, and the one `summary` event.

The exit code is a pure function of how the run ended (`Ending`) and what it
counted (`Tally`), so every rule of the README's exit table is tested without a run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from worker.exits import Exit
from worker.model import FOLLOW_UP_OUTCOMES, NEEDS_PERSON_OUTCOMES, Mode, Outcome
from worker.observe import logs
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.run.canceller import Stats

# The names the rest of the worker uses; the codes and their meanings are `exits.Exit`.
# (plain ints: they end up in JSON and in sys.exit).
EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = int(Exit.OK), int(Exit.NEEDS_PERSON), int(Exit.USAGE)
EXIT_ABORTED, EXIT_GUARD = int(Exit.ABORTED), int(Exit.GUARD_RAIL)
EXIT_FAILED = int(Exit.FAILED_ROWS)
EXIT_SIGINT, EXIT_SIGTERM = int(Exit.SIGINT), int(Exit.SIGTERM)


@dataclass
class Tally:
    """Rows in, rows out and outcomes in the latest-row view."""

    rows_read: int = 0
    rows_written: int = 0
    rows_already_reported: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    decisive: Counter[str] = field(default_factory=Counter)  # without duplicates
    released: Counter[str] = field(default_factory=Counter)  # currency -> minor units
    #: what earlier runs released, from the report's latest `canceled` rows
    released_earlier: Counter[str] = field(default_factory=Counter)
    #: payment_state -> `checked` references, the report's earlier rows included
    states: Counter[str] = field(default_factory=Counter)

    @property
    def released_total(self) -> Counter[str]:
        """Per currency, over the whole report: earlier runs' and this run's."""
        return self.released_earlier + self.released

    @property
    def follow_ups(self) -> int:
        return sum(self.outcomes.get(o.value, 0) for o in FOLLOW_UP_OUTCOMES)

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome.value] += 1
        if outcome is not Outcome.DUPLICATE:
            self.decisive[outcome.value] += 1

    @property
    def rows_reported(self) -> int:
        return self.rows_written + self.rows_already_reported


@dataclass
class Ending:
    """How a run ended, as the job saw it."""

    abort_reason: str | None = None
    fix: str | None = None  # what a person must change before a rerun can succeed
    guard_reason: str | None = None  # a guard rail stopped the run (exit 4)
    signal_code: int | None = None  # 130 / 143
    input_done: bool = False
    input_error: str | None = None
    lines_read: int = 0
    lines_lost: int = 0
    blank_rows: int = 0
    unwritten: int = 0  # finished rows the report could not take

    @property
    def complete(self) -> bool:
        return (
            self.abort_reason is None
            and self.guard_reason is None
            and self.signal_code is None
            and self.input_done
        )


def exit_code(end: Ending, tally: Tally, *, strict: bool = False) -> int:
    """The README's exit table, in order of precedence: a pure function of the final state.

    `failed` rows (a rerun retries them) win over rows that need a person, since
    the rerun is what operations must do first. `strict` counts the follow-ups
    (`not_cancelable`, `not_found`) as needing a person, as before they were.
    """
    if end.abort_reason is not None:
        return EXIT_ABORTED
    if end.guard_reason is not None:
        return EXIT_GUARD
    if end.signal_code is not None:
        return end.signal_code
    if tally.decisive.get(Outcome.FAILED.value):
        return EXIT_FAILED
    needs_person = NEEDS_PERSON_OUTCOMES | (FOLLOW_UP_OUTCOMES if strict else frozenset())
    if (
        end.input_error is not None
        or tally.rows_reported != tally.rows_read
        or end.lines_lost
        or any(tally.decisive.get(o.value) for o in needs_person)
    ):
        return EXIT_INCOMPLETE
    return EXIT_OK


def log_losses(end: Ending, tally: Tally) -> None:
    """Say loudly when rows or lines went missing (exit 1): nothing else would show it."""
    if end.abort_reason or end.guard_reason or end.signal_code or end.input_error:
        return
    if tally.rows_reported != tally.rows_read:
        logs.log.error(
            "rows_lost",
            rows_read=tally.rows_read,
            rows_reported=tally.rows_reported,
            hint="some input rows have no report row; rerun the same command to finish them",
        )
    if end.lines_lost:
        # Every physical line is the header, a row, part of one, or blank: a gap here
        # means the reader itself lost count, which no rerun can mend.
        logs.log.error("lines_lost", lines_read=end.lines_read, lines_unaccounted=end.lines_lost)


def push_metrics(
    s: Settings,
    tally: Tally,
    stats: Stats,
    refreshes: int,
    elapsed: float,
    code: int,
    held_seconds: float,
) -> None:
    if not s.pushgateway:
        return
    from worker.observe.metrics import push

    push(
        s.pushgateway,
        job=s.job_name,
        shard=f"{s.shard.index}-of-{s.shard.count}",
        outcomes=tally.outcomes,
        released_total=tally.released_total,
        duration=elapsed,
        exit_code=code,
        retries=stats.retries,
        throttled=stats.throttled,
        token_refreshes=refreshes,
        requests=stats.requests,
        held_seconds=held_seconds,
        guard_rail=code == EXIT_GUARD,
    )


def summary_fields(
    s: Settings, end: Ending, t: Tally, stats: Stats, refreshes: int, elapsed: float, code: int
) -> dict[str, Any]:
    return {
        "outcomes": dict(sorted(t.outcomes.items())),
        "follow_ups": t.follow_ups,
        "released": dict(sorted(t.released.items())),
        "released_total": dict(sorted(t.released_total.items())),
        **({"states": dict(sorted(t.states.items()))} if s.mode is Mode.CHECK else {}),
        "rows_read": t.rows_read,
        "rows_reported": t.rows_reported,
        "rows_written": t.rows_written,
        "rows_already_reported": t.rows_already_reported,
        "rows_unwritten": end.unwritten,
        "lines_read": end.lines_read,
        "blank_rows": end.blank_rows,
        "requests": stats.requests,
        "retries": stats.retries,
        "throttled": stats.throttled,
        "token_refreshes": refreshes,
        "elapsed_seconds": round(elapsed, 3),
        "requests_per_second": round(stats.requests / elapsed, 1) if elapsed > 0 else 0.0,
        "report": str(s.report),
        "exit_code": code,
        "complete": end.complete,
    }
