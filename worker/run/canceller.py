"""Canceller: drives one reference from its first request to its final outcome.

For each row it loops: wait for the health gate and the throttle, get a token, make
the call `decide` asked for, and feed the reply back into `decide`. Transient trouble
is retried by tenacity (`backoff.BACKOFF`: `Retry-After` honoured, else full-jitter
exponential backoff; `--max-attempts` counted tries); trouble during an API-wide
outage is held by `health` and not counted. It owns no I/O but the HTTP call and the
wait for its intent to be journaled (by the outbox, one write per loop turn).

After a stop no request is written (`control.stop`: checked after every wait, which
a stop ends). A reference not sent yet raises `Stopped` (no row: its rerun sends it);
one with requests sent ends `failed` (its journal line makes the rerun query it before
any cancel). Not even a query settles an unclear answer after a stop: the rerun does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base

from worker.bambora.api import ApiClient
from worker.bambora.auth import CredentialsRefused, TokenProvider
from worker.bambora.backoff import BACKOFF, RetryLater
from worker.control.health import Health
from worker.control.stop import StopGate, Stopped
from worker.control.throttle import Throttle
from worker.decide import Final, Next, Reauth, Step, decide, is_api_trouble
from worker.model import Op, Outcome, Reply, Result, Row

#: Outcomes whose report row carries the payment's amount and currency: the API
#: answered about the payment itself.
PRICED = frozenset(
    {Outcome.CANCELED, Outcome.ALREADY_CANCELED, Outcome.NOT_CANCELABLE, Outcome.CHECKED}
)
#: 401s in a row for one reference before we call the credentials refused.
MAX_REAUTH = 2
#: Calls per reference are capped at CALLS_PER_TRY * --max-attempts + SPARE_CALLS,
#: for an API whose answers never agree (a 2xx to the cancel, yet the query says
#: Authorized, forever): that loop counts no try, so nothing else would end it. A
#: counted try takes one or two calls (the cancel, and the query that explains its
#: answer); twice that leaves room for a 401 and a fresh token before each. The spare
#: is for calls that count no try, such as the query of a journaled reference before
#: its first cancel. Generous on purpose: the cap must never cut a sane exchange short.
CALLS_PER_TRY = 4
SPARE_CALLS = 8


@dataclass
class Stats:
    """Counters for the summary and metrics."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0


@dataclass(slots=True)
class _Progress:
    step: Step
    attempts: int = 0
    counted_calls: int = 0  # calls made outside an outage: what the call cap limits
    last: Reply | None = None
    state: str | None = None
    journaled: bool = False
    trouble_since: int | None = None  # the run's count of good answers at its first failure
    unclear: str | None = None  # the unclear answer to a cancel that a query must settle
    refusal: Reply | None = None  # the cancel's 402/422 that a query explained
    amount: int | None = None  # the payment's, from the last answer that carried it
    currency: str | None = None


class Journal(Protocol):
    """Records a cancel's intent, returning once it is on disk (`run.outbox.Outbox`).

    Raises StorageError when it cannot: that cancel must not be sent.
    """

    async def record(self, merchant: str, reference: str) -> None: ...


def _what(reply: Reply) -> str:
    """What went wrong, as people say it: `HTTP 503`, `timeout`, `connection_error`."""
    return f"HTTP {reply.status}" if reply.status is not None else (reply.error_type or "no answer")


class Canceller:
    """Turns a `Row` into a `Result`, making as many API calls as that takes."""

    def __init__(
        self,
        api: ApiClient,
        tokens: TokenProvider,
        throttle: Throttle,
        health: Health,
        *,
        max_attempts: int,
        comment: str | None = None,
        check_only: bool = False,
        journal: Journal | None = None,
        stats: Stats | None = None,
        stop: StopGate | None = None,
        wait: wait_base = BACKOFF,
    ) -> None:
        self._api = api
        self._tokens = tokens
        self._throttle = throttle
        self._health = health
        self._comment = comment
        self._check_only = check_only
        self._journal = journal
        self.stats = stats or Stats()
        self._gate = stop or StopGate()
        self._retrying = AsyncRetrying(
            sleep=self._gate.sleep,  # a backoff ends at a stop (Stopped)
            stop=stop_after_attempt(max_attempts),
            wait=wait,
            retry=retry_if_exception_type(RetryLater),
            reraise=True,
        )
        self._call_cap = CALLS_PER_TRY * max_attempts + SPARE_CALLS
        self._max_attempts = max_attempts
        # A payment that answered cleanly in this run: asking about it again tells an
        # outage from one reference's own trouble when nobody else is sending.
        self._known_good: tuple[str, str] | None = None

    async def process(self, row: Row, *, maybe_landed: bool = False) -> Result:
        """`maybe_landed`: a killed earlier run may have sent this cancel; query first."""
        if self._check_only:
            first = Step(Op.QUERY, check_only=True)
        elif maybe_landed:
            first = Step(Op.QUERY, maybe_landed=True)
        else:
            first = Step(Op.CANCEL)
        progress = _Progress(first)
        if maybe_landed:
            progress.unclear = "an interrupted earlier run"
        try:
            return await self._settle(row, progress)
        except Stopped:
            if progress.attempts == 0:
                raise  # never sent: no row, the rerun sends it
            last = _what(progress.last or Reply(None))
            detail = f"the run stopped before its next request (last: {last})"
            return self._result(row, progress, Outcome.FAILED, detail)

    async def _settle(self, row: Row, progress: _Progress) -> Result:
        first_trouble: RetryLater | None
        try:
            # Most references end on their first try: tenacity is set up only for the
            # ones that need a retry (it showed in the profile of a 50k-reference run).
            return await self._drive(row, progress)
        except RetryLater as trouble:
            first_trouble = trouble
        try:
            retrying = self._retrying.copy()
            async for attempt in retrying:
                with attempt:
                    if first_trouble is not None:
                        # Replay the first try's failure so tenacity counts it and waits.
                        failed, first_trouble = first_trouble, None
                        raise failed
                    return await self._drive(row, progress)
        except RetryLater:
            pass
        while await self._everyone_failing(row, progress):
            # An outage, not this payment: hold it behind the gate, uncounted, until the
            # API answers again (or --give-up-after ends the run).
            self._health.declare_outage()
            try:
                return await self._drive(row, progress)
            except RetryLater:
                continue
        last = progress.last
        why = (last.detail or last.title or last.error_type) if last else None
        status = (
            f"HTTP {last.status}" if last and last.status else (last.error_type if last else "")
        )
        detail = f"gave up after {self._max_attempts} tries; last: {status}"
        if why and why != status:
            detail += f" ({why})"
        return self._result(row, progress, Outcome.FAILED, detail)

    async def _everyone_failing(self, row: Row, progress: _Progress) -> bool:
        """After this reference used up its tries: was that the API failing for everyone?

        Only asked when nobody's request has succeeded since this reference's trouble
        began (with one or two workers, an outage looks like one bad reference). Then
        one query about a payment that answered cleanly earlier decides: trouble there
        too means an outage. With no such payment yet there is nothing to compare with,
        and the reference ends `failed` (a rerun retries it).
        """
        since, good = progress.trouble_since, self._known_good
        if since is None or good is None or not self._health.quiet_since(since):
            return False
        if good == (row.merchant, row.reference):
            return False
        await self._admit()
        token = await self._tokens.get()
        await self._throttle.acquire()
        with self._gate:  # Stopped after a stop; nothing awaits between it and the write
            reply = await self._api.call(Op.QUERY, good[0], good[1], token)
        self.stats.requests += 1
        if is_api_trouble(reply):
            self._health.record_trouble(
                -1, timeout=reply.error_type == "timeout", what=_what(reply)
            )
            return True
        self._health.record_ok()
        return False

    async def _drive(self, row: Row, progress: _Progress) -> Result:
        reauths = 0
        while True:
            if progress.counted_calls >= self._call_cap:
                return self._result(
                    row, progress, Outcome.FAILED, "gave up: the API's answers do not agree"
                )
            await self._admit()
            # Token first, then the rate slot: a slot taken before waiting on a token
            # fetch would be spent late, bunching requests past the rate at the API.
            token = await self._tokens.get()
            await self._throttle.acquire()
            step = progress.step
            if step.op is Op.CANCEL and not progress.journaled and self._journal is not None:
                await self._journal.record(row.merchant, row.reference)
                progress.journaled = True
            comment = row.comment or self._comment  # a row's own comment goes first
            with self._gate:  # Stopped after a stop; nothing awaits between it and the write
                reply = await self._api.call(step.op, row.merchant, row.reference, token, comment)
            self.stats.requests += 1
            progress.attempts += 1
            progress.last = reply
            if reply.payment_state:
                progress.state = reply.payment_state
            if reply.amount is not None:
                progress.amount, progress.currency = reply.amount, reply.currency
            decision = decide(step, reply)

            if isinstance(decision, Reauth):
                self._health.record_ok()
                reauths += 1
                if reauths > MAX_REAUTH:
                    raise CredentialsRefused(
                        "the API refused freshly issued tokens (401)",
                        fix="check that BAMBORA_AUTH_URL issues tokens for BAMBORA_API_URL "
                        "(the same environment) and that the client may cancel_payment and "
                        "read_payment",
                    )
                self._tokens.invalidate(token)
                continue
            reauths = 0

            if is_api_trouble(reply):
                if progress.trouble_since is None:
                    progress.trouble_since = self._health.successes
                counted = self._health.record_trouble(
                    row.line, timeout=reply.error_type == "timeout", what=_what(reply)
                )
            else:
                self._health.record_ok()
                self._throttle.on_success()
                self._known_good = (row.merchant, row.reference)
                counted = True
            if counted:
                progress.counted_calls += 1

            if isinstance(decision, Final):
                return self._result(row, progress, decision.outcome, decision.detail)
            assert isinstance(decision, Next)
            if step.op is Op.CANCEL and decision.step.op is Op.QUERY and decision.step.maybe_landed:
                progress.unclear = reply.error_type or f"HTTP {reply.status}"
            if step.op is Op.CANCEL and decision.step.refusal is not None:
                progress.refusal = reply
            progress.step = decision.step
            if decision.throttled:
                self.stats.throttled += 1
                self._throttle.on_throttled(decision.after)
            if decision.transient and counted:
                self.stats.retries += 1
                raise RetryLater(decision.after)

    async def _admit(self) -> None:
        admit = self._health.admit()  # at once, unless an outage holds us: then raced
        await (self._gate.wait(admit) if self._health.is_open else admit)

    @staticmethod
    def _result(row: Row, progress: _Progress, outcome: Outcome, detail: str | None) -> Result:
        last = progress.last
        if detail is None and last is not None and last.status is not None and last.status >= 400:
            detail = last.detail or last.title
        if outcome is Outcome.CANCELED and progress.step.op is Op.QUERY and progress.unclear:
            detail = f"confirmed by query after {progress.unclear}"
        priced = outcome in PRICED
        if outcome is Outcome.NOT_CANCELABLE and progress.refusal is not None:
            # The answer that matters is the cancel's refusal; the query only said why.
            last = progress.refusal
        return Result(
            line=row.line,
            merchant=row.merchant,
            reference=row.reference,
            outcome=outcome,
            http_status=last.status if last else None,
            error_type=last.error_type if last else None,
            payment_state=progress.state,
            attempts=progress.attempts,
            detail=detail or None,
            amount=progress.amount if priced else None,
            currency=progress.currency if priced else None,
            extra=row.extra,
        )
