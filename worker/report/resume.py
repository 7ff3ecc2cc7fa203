"""Resume: what an existing report says a rerun may skip, per mode.

The latest row of a reference wins. A `ResumePolicy` names the outcomes a mode takes
as done and the ones that reopen a reference; rows never sent (`invalid`,
`duplicate`) are remembered by line so that a rerun does not report them twice.
Reading changes nothing on disk: `repair_torn_tail` is applied by the run once it is
sure to start.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.input.dedup import key_of
from worker.model import CHECK_FINAL, RUN_FINAL, UNSENT, Mode, Outcome
from worker.report.records import ReportError, read_records


@dataclass(frozen=True)
class ResumePolicy:
    """Which latest rows mean "done" (never sent again) and which mean "do it again"."""

    final: frozenset[Outcome]
    reopen: frozenset[Outcome] = frozenset({Outcome.FAILED})


RUN = ResumePolicy(RUN_FINAL)
CHECK = ResumePolicy(CHECK_FINAL)


def policy_for(mode: Mode, retry: frozenset[Outcome] = frozenset()) -> ResumePolicy:
    """The mode's policy; `retry` (`--retry-outcomes`) final outcomes are done again."""
    base = CHECK if mode is Mode.CHECK else RUN
    if not retry:
        return base
    return ResumePolicy(base.final - retry, base.reopen | retry)


#: An unsent row as reported: matched by its line *and* what it said, so that a line
#: that changed since (a fixed row) is reported afresh instead of taken as done.
Unsent = tuple[Outcome, str, str]


@dataclass
class PriorRows:
    """What an existing report says, in the latest-row view, for one mode."""

    done: dict[bytes, Outcome] = field(default_factory=dict)  # key -> final outcome
    #: line -> (outcome, merchant, reference) of rows never sent (invalid, duplicate)
    unsent_lines: dict[int, Unsent] = field(default_factory=dict)
    rows: int = 0
    torn_bytes: int = 0  # a last line without its newline, to cut off before appending
    #: currency -> minor units of the references whose latest row is `canceled`
    released: Counter[str] = field(default_factory=Counter)
    #: payment_state -> references whose latest row is `checked`
    states: Counter[str] = field(default_factory=Counter)

    def final(self, merchant: str, reference: str) -> Outcome | None:
        return self.done.get(key_of(merchant, reference))


def load_report(path: Path, policy: ResumePolicy) -> PriorRows:
    """Read an existing report (latest row per reference wins); changes nothing on disk."""
    prior = PriorRows()
    if not path.exists():
        return prior
    if not path.is_file():
        raise ReportError(f"report {path} is not a regular file")
    torn: list[int] = []
    try:
        for rec in read_records(path, torn):
            _apply(prior, rec, policy)
    except OSError as exc:
        raise ReportError(f"cannot read report {path}: {exc.strerror}") from None
    prior.torn_bytes = sum(torn)
    return prior


def repair_torn_tail(path: Path, torn_bytes: int) -> None:
    """Cut off a last line left without its newline (by a power cut mid-write)."""
    if torn_bytes:
        with open(path, "rb+") as f:
            f.truncate(f.seek(0, os.SEEK_END) - torn_bytes)


def _apply(prior: PriorRows, rec: dict[str, Any], policy: ResumePolicy) -> None:
    outcome = Outcome(rec["outcome"])
    prior.rows += 1
    merchant = str(rec.get("merchant_number") or "")
    reference = str(rec.get("payment_reference") or "")
    if outcome in UNSENT:
        prior.unsent_lines[int(rec["line"])] = (outcome, merchant, reference)
        return
    key = key_of(merchant, reference)
    if outcome in policy.final:
        # `canceled` and `checked` are final, so a reference has at most one such row
        # (a rerun never sends it again); the check only guards a hand-copied row.
        if prior.done.get(key) is not outcome:
            _sum(prior, outcome, rec)
        prior.done[key] = outcome
    elif outcome in policy.reopen:
        prior.done.pop(key, None)


def _sum(prior: PriorRows, outcome: Outcome, rec: dict[str, Any]) -> None:
    """The report-wide totals: amounts released, payments per state."""
    if outcome is Outcome.CANCELED:
        amount, currency = _whole(rec.get("amount")), rec.get("currency")
        if amount is not None and currency:
            prior.released[str(currency)] += amount
    elif outcome is Outcome.CHECKED and rec.get("payment_state"):
        prior.states[str(rec["payment_state"])] += 1


def _whole(value: object) -> int | None:
    """An amount as written (an int in JSON Lines, text in CSV; empty: none)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None
