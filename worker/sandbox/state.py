"""The sandbox's in-memory store: payments, applied cancels, a record of every request,
and the outage deadline.

Tests read it directly (`SandboxServer.state`) or, from another process, through
`GET /_sandbox/state` (see `SandboxState.summary`). A request's record is final once
`finish` sets its status, which is also when its line goes to the request log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worker.sandbox.model import Payment
from worker.sandbox.scenarios import payment_for

#: One line per finished request at INFO. Nothing configures it in-process, so tests and
#: `run --sandbox` stay quiet; the standalone CLI sends it to stderr unless --quiet.
request_log = logging.getLogger("worker.sandbox.requests")


def log_request(method: str, raw_path: str, status: int | str, note: str = "") -> None:
    if request_log.isEnabledFor(logging.INFO):
        request_log.info("%s %s %s%s", method, raw_path, status, f" {note}" if note else "")


@dataclass(slots=True)
class RequestRecord:
    """One request as the sandbox saw it."""

    time: float  # time.monotonic() when it arrived
    method: str
    merchant: str  # "" for token requests and unroutable paths
    reference: str
    #: HTTP status answered; "reset" (connection dropped), "slow" (stalled, then
    #: answered or dropped at shutdown) or "pending" (still being handled).
    status: int | str
    kind: str  # "cancel", "get", "token", or "other" (no such route)
    raw_path: str = ""
    #: What happened, in words, for the request log ("canceled", "fault 503 [flaky-]").
    note: str = ""


@dataclass
class SandboxState:
    """Everything the sandbox knows; single event loop, so no locks are needed."""

    payments: dict[tuple[str, str], Payment] = field(default_factory=dict)
    #: Cancels that really changed a payment's state; more than 1 would be a bug.
    cancels_applied: Counter[tuple[str, str]] = field(default_factory=Counter)
    requests: list[RequestRecord] = field(default_factory=list)
    tokens_issued: int = 0
    #: (kind, status) -> count, kept even when records are turned off.
    status_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    record_requests: bool = True
    default_state: str = "Authorized"
    #: Requests received but not answered yet (stalls count as answered).
    in_flight: int = 0
    #: time.monotonic() until which every request meets the outage; see `start_outage`.
    outage_until: float = 0.0
    #: Requests met by the current outages, so 503s and drops can alternate.
    outage_hits: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def payment(self, merchant: str, reference: str) -> Payment:
        """The payment, created on first touch from the reference's prefix."""
        key = (merchant, reference)
        found = self.payments.get(key)
        if found is None:
            found = self.payments[key] = payment_for(merchant, reference, self.default_state)
        return found

    def start_outage(self, seconds: float) -> None:
        """Every request gets 503 or a dropped connection for `seconds` from now."""
        self.outage_until = time.monotonic() + max(0.0, seconds)

    def outage_remaining(self) -> float:
        return max(0.0, self.outage_until - time.monotonic())

    def record(
        self, method: str, merchant: str, reference: str, kind: str, raw_path: str
    ) -> RequestRecord:
        rec = RequestRecord(
            time.monotonic(), method, merchant, reference, "pending", kind, raw_path
        )
        if self.record_requests:
            self.requests.append(rec)
        self.in_flight += 1
        self.notify()
        return rec

    def finish(self, rec: RequestRecord, status: int | str) -> None:
        """Set a request's final status ("slow" is final: it is set when the stall starts)."""
        if rec.status != "pending":
            return
        rec.status = status
        self.in_flight -= 1
        self.status_counts[(rec.kind, str(status))] += 1
        log_request(rec.method, rec.raw_path, status, rec.note)
        self.notify()

    def notify(self) -> None:
        # Wake every `wait_for` caller; a fresh Event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(
        self, predicate: Callable[[SandboxState], bool], within: float = 5.0
    ) -> None:
        """Wait until `predicate(state)` holds, checked after every change.

        Raises TimeoutError after `within` seconds. Lets a test wait for "the sandbox
        has seen the stalled request" without sleeping.
        """
        async with asyncio.timeout(within):
            while not predicate(self):
                await self._changed.wait()

    def summary(self) -> dict[str, Any]:
        """Counts for `GET /_sandbox/state`."""
        by_kind: dict[str, dict[str, int]] = {}
        for (kind, status), count in sorted(self.status_counts.items()):
            by_kind.setdefault(kind, {})[status] = count
        by_state = Counter(p.state for p in self.payments.values() if p.exists)
        doubles = [
            {"merchant": m, "payment": r, "count": n}
            for (m, r), n in self.cancels_applied.items()
            if n > 1
        ]
        return {
            "requests": {
                "total": sum(self.status_counts.values()),
                "in_flight": self.in_flight,
                "by_kind": by_kind,
            },
            "cancels_applied": sum(self.cancels_applied.values()),
            "double_applies": doubles,
            "tokens_issued": self.tokens_issued,
            "payments": {"total": len(self.payments), "by_state": dict(sorted(by_state.items()))},
        }
