"""The few value types every stage shares: an input row, an outcome, a report row."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """Final outcome of one reference (README, "Outcomes")."""

    CANCELED = "canceled"
    ALREADY_CANCELED = "already_canceled"
    NOT_CANCELABLE = "not_cancelable"
    NOT_FOUND = "not_found"
    REJECTED = "rejected"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    WOULD_CANCEL = "would_cancel"
    CHECKED = "checked"


#: Outcomes that make the exit code 0 (duplicates never decide it).
SUCCESS_OUTCOMES = frozenset(
    {Outcome.CANCELED, Outcome.ALREADY_CANCELED, Outcome.WOULD_CANCEL, Outcome.CHECKED}
)

REPORT_COLUMNS: tuple[str, ...] = (
    "line",
    "merchant_number",
    "payment_reference",
    "outcome",
    "http_status",
    "error_type",
    "payment_state",
    "attempts",
    "detail",
    "finished_at",
)


@dataclass(frozen=True, slots=True)
class Row:
    """One input row that passed validation: what a worker needs to cancel it."""

    line: int
    merchant: str
    reference: str
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input row that is never sent: `invalid` or `duplicate`, with the reason."""

    line: int
    merchant: str
    reference: str
    outcome: Outcome
    detail: str


@dataclass(frozen=True, slots=True)
class Result:
    """What a worker concluded for one row: becomes exactly one report row."""

    line: int
    merchant: str
    reference: str
    outcome: Outcome
    http_status: int | None = None
    error_type: str | None = None
    payment_state: str | None = None
    attempts: int = 0
    detail: str | None = None
