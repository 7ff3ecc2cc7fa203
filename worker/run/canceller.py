"""Canceller: drives one reference from its first request to its final outcome.

For each row it loops: wait for the health gate and the throttle, get a token, make
the call `decide` asked for, and feed the reply back into `decide`. Transient trouble
(`RetryLater`) is retried in one plain loop: `--max-attempts` counted tries, each
after the wait the backoff policy gives (`backoff.BACKOFF`, a tenacity wait:
`Retry-After` honoured, else full-jitter exponential); trouble during an API-wide
outage is held by `health` and not counted. The loop is ours, not tenacity's
`AsyncRetrying`, which costs ~28 µs of CPU per reference even when the first try
succeeds (`benchmarks/retry_loop.py`), paid by every reference of the night.
Both the wait policy and the sleep are injectable, so tests run on a fake clock.
It owns no I/O but the HTTP call and the wait for its intent to be journaled (by
the writer, one sync per batch).

After a stop no request is written (`control.stop`: checked after every wait, which
a stop ends). A reference not sent yet raises `Stopped` (no row: its rerun sends it);
one with requests sent ends `failed` (its journal line makes the rerun query it before
any cancel), also when an abort stops it (`Unfinished` carries its row). Not even a
query settles an unclear answer after a stop: the rerun does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from tenacity import RetryCallState
from tenacity.wait import WaitBaseT

from worker.bambora.api import ApiClient
from worker.bambora.auth import TokenProvider
from worker.bambora.backoff import BACKOFF, RetryLater
from worker.control.outage import OutageGate
from worker.control.stop import StopGate, Stopped, Unfinished
from worker.control.throttle import Throttle
from worker.decide import Final, Next, Reauth, Step, decide, is_api_trouble
from worker.errors import AbortError, CredentialsRefused, StorageError
from worker.model import NO_PAYMENT_STATE, Op, Outcome, Reply, Result, Row
from worker.run.summary import Calls

#: Outcomes whose report row carries the payment's amount and currency: the API
#: answered about the payment itself.
PRICED = frozenset(
    {Outcome.CANCELED, Outcome.ALREADY_CANCELED, Outcome.NOT_CANCELABLE, Outcome.CHECKED}
)
#: 401s in a row for one reference before we call the credentials refused.
MAX_REAUTH = 2
#: Rate slots a request may let go because its token expired during the wait for one.
STALE_TOKENS = 2
#: Calls per reference are capped at CALLS_PER_TRY * --max-attempts + SPARE_CALLS, a
#: last guard for an API whose answers never agree in a way no rule counts as a try
#: (a 2xx to the cancel that the query contradicts is one: `decide`'s `disputed`). A
#: counted try takes one or two calls (the cancel, and the query that explains its
#: answer); twice that leaves room for a 401 and a fresh token before each. The spare
#: is for calls that count no try, such as the query of a journaled reference before
#: its first cancel. Generous on purpose: the cap must never cut a sane exchange short.
CALLS_PER_TRY = 4
SPARE_CALLS = 8


@dataclass(slots=True)
class _Exchange:
    """One reference's calls so far: what the next call is, and what the answers said."""

    step: Step
    attempts: int = 0
    counted_calls: int = 0  # calls made outside an outage: what the call cap limits
    last: Reply | None = None
    status: int | None = None  # the last HTTP status seen (a timeout after it keeps it)
    state: str | None = None
    journaled: bool = False
    trouble_since: int | None = None  # the run's count of good answers at its first failure
    unclear: str | None = None  # the unclear answer to a cancel that a query must settle
    refusal: Reply | None = None  # the cancel's 402/422 that a query explained
    amount: int | None = None  # the payment's, from the last answer that carried it
    currency: str | None = None


class Journal(Protocol):
    """Records a cancel's intent, returning once it is on disk (`run.writer.Writer`).

    Raises StorageError when it cannot: that cancel must not be sent.
    """

    async def journaled(self, merchant: str, reference: str) -> None: ...

    def answered(self, merchant: str, reference: str) -> None:
        """Its cancels all got clear answers: none landed (best effort, no wait)."""


#: Why a reference whose last query answered 200 without a payment state failed.
NO_STATE = "the payment query answered 200 without a state"


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
        health: OutageGate,
        *,
        max_attempts: int,
        comment: str | None = None,
        check_only: bool = False,
        journal: Journal | None = None,
        calls: Calls | None = None,
        stop: StopGate | None = None,
        wait: WaitBaseT = BACKOFF,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self._api = api
        self._tokens = tokens
        self._throttle = throttle
        self._health = health
        self._comment = comment
        self._check_only = check_only
        self._journal = journal
        self.calls = calls or Calls()
        self._gate = stop or StopGate()
        self._wait = wait
        self._sleep = sleep or self._gate.sleep  # a backoff ends at a stop (Stopped)
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
        exchange = _Exchange(first)
        if maybe_landed:
            exchange.unclear = "an interrupted earlier run"
        try:
            return await self._settle(row, exchange)
        except (Stopped, AbortError) as stop:
            if isinstance(stop, StorageError):
                raise  # the writer's own failure: nothing more goes to the journal
            if exchange.attempts == 0:
                self._close_intent(row, exchange)  # journaled, then caught before the send
                raise  # never sent: no row, the rerun sends it
            last = _what(exchange.last or Reply(None))
            detail = f"the run stopped before its next request (last: {last})"
            result = self._failed(row, exchange, detail)
            if isinstance(stop, AbortError):  # the row, and the abort for the run
                raise Unfinished(stop, result) from stop
            return result

    async def _settle(self, row: Row, exchange: _Exchange) -> Result:
        """The one retry loop: a try, then (on transient trouble) the policy's wait and
        another, up to `--max-attempts`; past that, trouble that is an outage for
        everyone holds the reference behind the health gate, uncounted, until the API
        answers again (or `--give-up-after` ends the run)."""
        tries = 0
        while True:
            try:
                return await self._drive(row, exchange)
            except RetryLater as trouble:
                tries += 1
                if tries < self._max_attempts:
                    await self._sleep(
                        min(self._backoff(tries, trouble), self._health.until_give_up())
                    )
                elif await self._everyone_failing(row, exchange):
                    self._health.declare_outage()  # the gate holds the next try
                else:
                    break
        last = exchange.last
        why = (last.detail or last.title or last.error_type) if last else None
        if last and last.error_type == NO_PAYMENT_STATE:
            why = NO_STATE
        status = (
            f"HTTP {last.status}" if last and last.status else (last.error_type if last else "")
        )
        detail = f"gave up after {self._max_attempts} tries; last: {status}"
        if why and why != status:
            detail += f" ({why})"
        return self._failed(row, exchange, detail)

    def _failed(self, row: Row, exchange: _Exchange, detail: str) -> Result:
        """A `failed` row, its intent closed when no cancel of it can have landed."""
        self._close_intent(row, exchange)
        return self._result(row, exchange, Outcome.FAILED, detail)

    def _close_intent(self, row: Row, exchange: _Exchange) -> None:
        """When every cancel this reference sent got a clear answer (a refusal, a 429, a
        409: nothing unclear, a 408 included, and no killed run's intent to settle) or
        none went out, none landed, and the journal says so: the rerun then sends it as
        new, and a payment someone else canceled is reported `already_canceled`, not
        `canceled` by a query first."""
        if exchange.journaled and exchange.unclear is None and self._journal is not None:
            self._journal.answered(row.merchant, row.reference)

    async def _everyone_failing(self, row: Row, exchange: _Exchange) -> bool:
        """After this reference used up its tries: was that the API failing for everyone?

        Only asked when nobody's request has succeeded since this reference's trouble
        began (with one or two workers, an outage looks like one bad reference). Then
        one query about a payment that answered cleanly earlier decides: trouble there
        too means an outage. With no such payment yet there is nothing to compare with,
        and the reference ends `failed` (a rerun retries it).
        """
        since, good = exchange.trouble_since, self._known_good
        if since is None or good is None or not self._health.quiet_since(since):
            return False
        if good == (row.merchant, row.reference):
            return False
        await self._admit()
        token = await self._tokens.get()
        await self._throttle.acquire()
        ready = self._tokens.sendable(token)
        token = ready if ready is not None else await self._renewed()
        with self._gate:  # Stopped after a stop; nothing awaits between it and the write
            self.calls.requests += 1  # counted as sent: one a hard stop abandons was sent
            reply = await self._api.call(Op.QUERY, good[0], good[1], token)
        if is_api_trouble(reply):
            self._health.record_trouble(
                -1, timeout=reply.error_type == "timeout", what=_what(reply)
            )
            return True
        self._health.record_ok()
        return False

    async def _drive(self, row: Row, exchange: _Exchange) -> Result:
        reauths = 0
        while True:
            if exchange.counted_calls >= self._call_cap:
                return self._result(
                    row, exchange, Outcome.FAILED, "gave up: the API's answers do not agree"
                )
            await self._admit()
            # The token and the intent's journal line first, the rate slot last: a slot
            # taken before another wait (a token fetch, the journal's sync) is spent
            # late, bunching requests past the rate at the API (measured with the sync
            # after the slot: 202 requests in one second at --rate 200).
            token = await self._tokens.get()
            step = exchange.step
            if step.op is Op.CANCEL and not exchange.journaled and self._journal is not None:
                await self._journal.journaled(row.merchant, row.reference)
                exchange.journaled = True
            await self._throttle.acquire()
            # the token may have expired during that wait (short tokens at a slow rate)
            ready = self._tokens.sendable(token)
            token = ready if ready is not None else await self._renewed()
            comment = row.comment or self._comment  # a row's own comment goes first
            with self._gate:  # Stopped after a stop; nothing awaits between it and the write
                self.calls.requests += 1  # counted as sent: one a hard stop abandons was sent
                reply = await self._api.call(step.op, row.merchant, row.reference, token, comment)
            exchange.attempts += 1
            exchange.last = reply
            if reply.status is not None:
                exchange.status = reply.status
            if reply.payment_state:
                exchange.state = reply.payment_state
            if reply.amount is not None:
                exchange.amount, exchange.currency = reply.amount, reply.currency
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
                if exchange.trouble_since is None:
                    exchange.trouble_since = self._health.successes
                counted = self._health.record_trouble(
                    row.line,
                    timeout=reply.error_type == "timeout",
                    what=_what(reply),
                    retry_after=decision.after if isinstance(decision, Next) else None,
                )
            elif reply.error_type == NO_PAYMENT_STATE:
                counted = True  # a web page's 200 proves no API is there: neither up nor down
            else:
                self._health.record_ok()
                self._throttle.on_success()
                self._known_good = (row.merchant, row.reference)
                counted = True
            if counted:
                exchange.counted_calls += 1

            if isinstance(decision, Final):
                return self._result(row, exchange, decision.outcome, decision.detail)
            assert isinstance(decision, Next)
            if decision.unclear:
                # the status, not the problem's `type` (Bambora's is often about:blank)
                exchange.unclear = (
                    f"HTTP {reply.status}" if reply.status is not None else reply.error_type
                )
            if step.op is Op.CANCEL and decision.step.refusal is not None:
                exchange.refusal = reply
            exchange.step = decision.step
            if decision.throttled:
                self.calls.throttled += 1
                self._throttle.on_throttled(decision.after)
            if decision.transient and counted:
                self.calls.retries += 1
                raise RetryLater(decision.after)

    def _backoff(self, tries: int, trouble: RetryLater) -> float:
        """The wait policy's answer after `tries` failed tries, the last being `trouble`."""
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = tries
        state.set_exception((type(trouble), trouble, trouble.__traceback__))
        return self._wait(state)

    async def _renewed(self) -> str:
        """The token expired while this worker waited for the slot it just took, and
        no fresher one is at hand: the slot goes unused, a fresh token is fetched, and
        the next slot taken, at most `STALE_TOKENS` times; after that the token is sent
        as it is, and a 401 tells."""
        for _ in range(STALE_TOKENS):
            token = await self._tokens.get()
            await self._throttle.acquire()
            ready = self._tokens.sendable(token)
            if ready is not None:
                return ready
        return token

    async def _admit(self) -> None:
        """Pass the outage gate: at once unless an outage holds us (then raced against a
        stop). The usual case builds no coroutine: it runs for every request."""
        health = self._health
        if health.is_open:
            await self._gate.wait(health.admit())
        else:
            health.check_give_up()  # what `admit` does while the gate is closed

    @staticmethod
    def _result(row: Row, exchange: _Exchange, outcome: Outcome, detail: str | None) -> Result:
        last = exchange.last
        if detail is None and last is not None and last.status is not None and last.status >= 400:
            detail = last.detail or last.title
        if outcome is Outcome.CANCELED and exchange.step.op is Op.QUERY and exchange.unclear:
            detail = f"confirmed by query after {exchange.unclear}"
        priced = outcome in PRICED
        status = exchange.status  # the last seen, even if the last try got no answer
        if outcome is Outcome.NOT_CANCELABLE and exchange.refusal is not None:
            # The answer that matters is the cancel's refusal; the query only said why.
            last = exchange.refusal
            status = last.status
        return Result(
            line=row.line,
            merchant=row.merchant,
            reference=row.reference,
            outcome=outcome,
            http_status=status,
            error_type=last.error_type if last else None,
            payment_state=exchange.state,
            attempts=exchange.attempts,
            detail=detail or None,
            amount=exchange.amount if priced else None,
            currency=exchange.currency if priced else None,
            extra=row.extra,
        )
