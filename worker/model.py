"""The value types every stage shares: rows, outcomes, results, API calls and replies.

Plain data only: this module imports nothing that does I/O, so `decide` (which reads
only these) stays a pure function.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Mode(StrEnum):
    RUN = "run"
    CHECK = "check"


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


#: Settled, but someone should look the next morning (refund a captured payment, ask
#: about an unknown one): counted and shown, yet not a failure (exit 0; 1 with --strict).
FOLLOW_UP_OUTCOMES = frozenset({Outcome.NOT_CANCELABLE, Outcome.NOT_FOUND})
#: No rerun changes these: a person must fix the row or the access (exit 1).
NEEDS_PERSON_OUTCOMES = frozenset({Outcome.INVALID, Outcome.REJECTED})

#: Outcomes after which `run` never sends a reference again (README, "Resume").
RUN_FINAL = frozenset(
    {
        Outcome.CANCELED,
        Outcome.ALREADY_CANCELED,
        Outcome.NOT_CANCELABLE,
        Outcome.NOT_FOUND,
        Outcome.REJECTED,
    }
)
#: What `check` treats as done on resume.
CHECK_FINAL = frozenset({Outcome.CHECKED, Outcome.NOT_FOUND, Outcome.REJECTED})
#: Rows never sent; remembered by line so that a rerun does not report them twice.
UNSENT = frozenset({Outcome.INVALID, Outcome.DUPLICATE})
#: In the `detail` of a row that restates, on the line a changed input holds it on
#: now, a final row an earlier run reported on another line (`admission.moved_detail`):
#: the same reference, so readers count it once, and its money from the earlier row.
RESTATED = " by an earlier run, reported on line "

#: How much of an error message a report row's `detail` keeps.
DETAIL_LIMIT = 300

#: After the contract's columns, every report row says what the payment was worth and
#: which run wrote it; the input row's own other columns follow these.
EXTRA_COLUMNS: tuple[str, ...] = ("amount", "currency", "run_id")

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


# The values below are made once or more per reference and never changed after. They
# are not `frozen`: that makes building one ~6 times dearer (1.8 against 0.3 us for 12
# fields, measured), which showed per reference. Treat them as immutable all the same.


@dataclass(slots=True)
class Row:
    """One input row that passed validation: what a worker needs to cancel it."""

    line: int
    merchant: str
    reference: str
    comment: str | None = None
    extra: tuple[tuple[str, object], ...] = ()  # other input columns, for the report


@dataclass(slots=True)
class Rejected:
    """An input row that is never sent: `invalid` or `duplicate`, with the reason."""

    line: int
    merchant: str
    reference: str
    outcome: Outcome
    detail: str
    extra: tuple[tuple[str, object], ...] = ()


@dataclass(slots=True)
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
    amount: int | None = None  # the payment's, in minor units, from the API's last answer
    currency: str | None = None
    extra: tuple[tuple[str, object], ...] = ()  # the input row's other columns


class Op(StrEnum):
    CANCEL = "cancel"
    QUERY = "query"


#: `error_type` of a payment query answered 200 without a payment state (a web page, an
#: empty or garbled body): asked again (`decide`), and counted by the guard rail when a
#: reference ends `failed` on it.
NO_PAYMENT_STATE = "no_payment_state"


@dataclass(slots=True)
class Reply:
    """What one HTTP exchange produced.

    `status` is None when no answer came back; then `error_type` is a local name
    (`timeout`, `connection_error`, `disconnected`) and `maybe_sent` says whether the
    server may have received, and acted on, the request.
    """

    status: int | None
    error_type: str | None = None
    title: str | None = None
    detail: str | None = None
    payment_state: str | None = None
    retry_after: float | None = None
    maybe_sent: bool = True
    amount: int | None = None
    currency: str | None = None
