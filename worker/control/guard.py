"""Guard rail: stop a run that is plainly aimed at the wrong place.

A wrong merchant number, credentials without the cancel scope or the wrong file all
look the same from here: every reference answers 403 or 404. Sending the rest of the
file would only repeat that at full speed, so when the first K references that got an
answer all ended `not_found` or `rejected`, the run stops sending (exit 4). One other
outcome among them disarms the rail for good: then the file is mostly right, and a few
unknown payments are just that. Transient trouble (`failed`) neither counts nor
disarms: an outage is the health gate's business. But a reference that failed on
payment queries answered 200 without a state (`no_payment_state`) counts: that is a
wrong `BAMBORA_API_URL` answering a web page to everything.
"""

from __future__ import annotations

from collections import Counter

from worker.model import NO_PAYMENT_STATE, Outcome, Result

WRONG_PLACE = frozenset({Outcome.NOT_FOUND, Outcome.REJECTED})
#: How the rail counts a reference that failed on 200s without a payment state.
_PAGE = "HTTP 200 without a payment state"


class RejectionGuard:
    """`observe` every result in completion order; a reason to stop, or None."""

    def __init__(self, first: int, *, check: bool = False) -> None:
        """`check`: the run only queries (`check`), which has no --retry-outcomes."""
        self._first = first
        self._check = check
        self._armed = first > 0
        self._seen = 0
        self._statuses: Counter[str] = Counter()

    def observe(self, result: Result) -> str | None:
        if not self._armed or result.attempts == 0:
            return None
        if result.outcome is Outcome.FAILED and (
            result.error_type != NO_PAYMENT_STATE or result.payment_state is not None
        ):
            return None  # trouble, or a payment that did answer with its state once
        if result.outcome not in WRONG_PLACE and result.outcome is not Outcome.FAILED:
            self._armed = False
            return None
        self._seen += 1
        if result.error_type == NO_PAYMENT_STATE:
            label = _PAGE
        elif result.http_status:
            label = f"HTTP {result.http_status}"
        else:
            label = result.error_type or "?"
        self._statuses[label] += 1
        if self._seen < self._first:
            return None
        self._armed = False
        seen = ", ".join(f"{what} x{n}" for what, n in self._statuses.most_common())
        page = _PAGE in self._statuses
        scope, then = (
            ("read_payment", "run check again with a new --report (its rows are final)")
            if self._check
            else ("cancel_payment", "rerun with --retry-outcomes rejected,not_found")
        )
        if page:  # the report is bound to the URL it was written against
            then += "; after a wrong BAMBORA_API_URL, with a new --report"
        ended = "not_found or rejected" + (", or failed with no payment state" if page else "")
        causes = f"a wrong merchant number, credentials without the {scope} scope" + (
            ", the wrong input file, or a BAMBORA_API_URL that is not the API (a web page)"
            if page
            else ", or the wrong input file"
        )
        return (
            f"stopped by a guard rail: the first {self._first} references answered all ended "
            f"{ended} ({seen}). Likely causes: {causes}. No request is sent after this (the "
            "`stopped` event counts those in flight). Fix the cause, then "
            f"{then} (--stop-on-rejections 0 turns this check off)"
        )
