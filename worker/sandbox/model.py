"""A payment as the sandbox holds it: the swagger's PaymentResponse plus what it will
answer next. Kept apart from the scenario table and the seed file, which both build
payments, so neither has to import the other."""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: Every state the swagger's PaymentResponse.state enum allows.
PAYMENT_STATES: tuple[str, ...] = (
    "None",
    "Authorized",
    "Authorization Expired",
    "Declined",
    "Voided",
    "Captured",
    "Refunded",
    "Settled",
    "Canceled",
)


@dataclass
class Payment:
    """One payment as the sandbox holds it: its data plus what it will answer next."""

    merchant: str
    payment: str
    state: str
    amount: int
    currency: str = "EUR"
    region: str = "emea_0"
    comment: str | None = None
    #: Answer every request with this status (403, 404 or 503), whatever the state.
    fixed_status: int | None = None
    #: Answer cancels with this status (402 cannot_cancel) instead of the state rules.
    cancel_refusal: int | None = None
    #: Fault kinds consumed one per request (cancel or GET), in order.
    faults: deque[str] = field(default_factory=deque)
    #: Fault kinds consumed one per cancel, once `faults` is empty.
    cancel_faults: deque[str] = field(default_factory=deque)
    #: Requests (cancel and GET) that got past auth and validation; indexes random draws.
    requests: int = 0
    #: What set it up, for the request log: a prefix such as `flaky-`, or "seed file".
    origin: str = ""

    @property
    def exists(self) -> bool:
        return self.fixed_status != 404

    def to_json(self) -> dict[str, Any]:
        """The swagger's PaymentResponse for this payment."""
        body: dict[str, Any] = {
            "region": self.region,
            "merchant": self.merchant,
            "payment": self.payment,
            "state": self.state,
            "currency": self.currency,
            "amount": self.amount,
        }
        if self.comment is not None:
            body["comment"] = self.comment
        return body


def amount_for(reference: str) -> int:
    """A stable amount in cents (1.00 to 999.99) so repeated runs show the same numbers."""
    digest = hashlib.sha256(reference.encode("utf-8", "surrogatepass")).digest()
    return 100 + int.from_bytes(digest[:4], "big") % 99_900
