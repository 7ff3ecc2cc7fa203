"""Canceller: how long it waits between tries, when it gives up, and its call ceiling.

The API is a script of replies; time is a fake clock that only a patched
`asyncio.sleep` moves, so the waits the canceller asks for are read, not timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import tenacity.wait

from tests.fakes import FakeTime, run_on
from worker.control.outage import OutageGate
from worker.control.stop import StopGate, Stopped, Unfinished
from worker.control.throttle import Throttle
from worker.errors import ApiUnreachable, StorageError
from worker.model import NO_PAYMENT_STATE, Op, Outcome, Reply, Result, Row
from worker.run.canceller import CALLS_PER_TRY, NO_STATE, SPARE_CALLS, Canceller

ROW = Row(line=2, merchant="T1", reference="order-1")


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTime]:
    fake = FakeTime()
    run_on(monkeypatch, fake)
    # The jitter draws its bound's top, so a jittered wait is known exactly.
    monkeypatch.setattr(tenacity.wait.random, "uniform", lambda low, high: high)
    yield fake


@dataclass
class ScriptedApi:
    """Answers each call with the next scripted reply; the last one repeats."""

    replies: list[Reply]
    calls: list[Op] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    async def call(
        self, op: Op, merchant: str, reference: str, token: str, comment: str | None = None
    ) -> Reply:
        self.calls.append(op)
        self.tokens.append(token)
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


class OneToken:
    refreshes = 0

    async def get(self) -> str:
        return "jwt"

    def sendable(self, token: str) -> str | None:
        return token

    def invalidate(self, token: str) -> None:
        pass


def canceller(api: ScriptedApi, clock: FakeTime, max_attempts: int = 3) -> Canceller:
    health = OutageGate(threshold=max_attempts, give_up_after=10_000, clock=clock)
    throttle = Throttle(None, clock=clock)
    return Canceller(api, OneToken(), throttle, health, max_attempts=max_attempts)


async def test_a_429s_retry_after_is_the_wait_before_the_next_try(fake_time: FakeTime) -> None:
    api = ScriptedApi([Reply(429, retry_after=2.5), Reply(201)])
    c = canceller(api, fake_time)
    result = await c.process(ROW)
    assert result.outcome is Outcome.CANCELED and result.attempts == 2
    # exactly Retry-After, not the jitter (whose bound would be 0.5 at this try);
    # the throttle's shared pause ends at the same moment, so it adds no wait
    assert fake_time.sleeps == [2.5]
    assert c.calls.retries == 1 and c.calls.throttled == 1 and c.calls.requests == 2


async def test_without_retry_after_the_wait_is_the_jittered_backoff(fake_time: FakeTime) -> None:
    # 503 on a cancel: it may have landed, so a query; Authorized, so the cancel again
    api = ScriptedApi([Reply(503), Reply(200, payment_state="Authorized"), Reply(201)])
    result = await canceller(api, fake_time).process(ROW)
    assert result.outcome is Outcome.CANCELED
    assert api.calls == [Op.CANCEL, Op.QUERY, Op.CANCEL]
    assert fake_time.sleeps == [0.5]  # full jitter's bound after the first try


@pytest.mark.parametrize(
    ("unclear", "after"),
    [
        (Reply(503, error_type="about:blank", title="Service Unavailable"), "HTTP 503"),
        (Reply(500, error_type="https://api.bambora.com/definitions/x"), "HTTP 500"),
        (Reply(None, error_type="timeout"), "timeout"),
    ],
)
async def test_a_cancel_confirmed_by_query_says_after_what(
    fake_time: FakeTime, unclear: Reply, after: str
) -> None:
    # the cancel may have landed; the query finds it Canceled: this run's doing
    api = ScriptedApi([unclear, Reply(200, payment_state="Canceled")])
    result = await canceller(api, fake_time).process(ROW)
    assert result.outcome is Outcome.CANCELED
    assert result.detail == f"confirmed by query after {after}"


async def test_a_refusal_after_a_408_is_confirmed_as_ours_after_the_408(
    fake_time: FakeTime,
) -> None:
    """408, then 422, then Canceled: ours (the 408 may have landed); the detail named
    the 422, which is no unclear answer."""
    api = ScriptedApi([Reply(408), Reply(422), Reply(200, payment_state="Canceled")])
    result = await canceller(api, fake_time).process(ROW)
    assert result.outcome is Outcome.CANCELED
    assert result.detail == "confirmed by query after HTTP 408"


async def test_trouble_outlasting_max_attempts_is_failed_with_the_last_error(
    fake_time: FakeTime,
) -> None:
    api = ScriptedApi([Reply(409, title="Conflict", detail="payment is blocked")])
    result = await canceller(api, fake_time, max_attempts=4).process(ROW)
    assert result.outcome is Outcome.FAILED
    assert result.attempts == 4 and result.http_status == 409
    assert result.detail == "gave up after 4 tries; last: HTTP 409 (payment is blocked)"
    assert fake_time.sleeps == [0.5, 1.0, 2.0]  # three waits between four tries


async def test_a_failed_row_keeps_the_last_http_status_seen_when_the_last_try_timed_out(
    fake_time: FakeTime,
) -> None:
    """The contract's http_status is the last status *seen*: a 503, then timeouts, left
    the cell empty."""
    api = ScriptedApi([Reply(503), Reply(None, "timeout"), Reply(None, "timeout")] * 3)
    result = await canceller(api, fake_time, max_attempts=3).process(ROW)
    assert result.outcome is Outcome.FAILED
    assert result.http_status == 503 and result.error_type == "timeout"


async def test_a_2xx_cancel_the_payment_contradicts_is_a_failed_try(
    fake_time: FakeTime,
) -> None:
    """200 (not the documented 201) to every cancel, yet the query says Authorized: each
    round is a try, so --max-attempts 3 sends 3 cancels (it sent 10, to the call cap)."""
    api = ScriptedApi([Reply(200), Reply(200, payment_state="Authorized")] * 500)
    result = await canceller(api, fake_time, max_attempts=3).process(ROW)
    assert result.outcome is Outcome.FAILED
    assert result.detail is not None and result.detail.startswith("gave up after 3 tries")
    assert api.calls == [Op.CANCEL, Op.QUERY] * 3
    assert len(fake_time.sleeps) == 2  # the backoff between the three tries


async def test_a_query_answering_200_without_a_state_is_asked_again(
    fake_time: FakeTime,
) -> None:
    """A 500 after the cancel applied, then a garbled 200 to the query: the payment
    was final `rejected` (and never reported canceled); the next query tells."""
    empty = Reply(200, error_type=NO_PAYMENT_STATE)  # as api.py reads it
    api = ScriptedApi([Reply(500), empty, Reply(200, payment_state="Canceled")])
    result = await canceller(api, fake_time).process(ROW)
    assert result.outcome is Outcome.CANCELED and result.error_type is None
    assert api.calls == [Op.CANCEL, Op.QUERY, Op.QUERY]
    # a 2xx to the cancel (it may have gone through), then an empty 200: not `rejected`
    disputed = ScriptedApi([Reply(200), empty, Reply(200, payment_state="Canceled")])
    result = await canceller(disputed, fake_time).process(ROW)
    assert result.outcome is Outcome.CANCELED
    garbled = ScriptedApi([Reply(500), empty])
    result = await canceller(garbled, fake_time, max_attempts=3).process(ROW)
    assert result.outcome is Outcome.FAILED  # a rerun asks again
    assert result.error_type == NO_PAYMENT_STATE  # which the guard rail counts
    assert result.detail == "gave up after 3 tries; last: HTTP 200 (" + NO_STATE + ")"


async def test_a_stateless_200_is_no_sign_of_a_working_api(fake_time: FakeTime) -> None:
    """A maintenance page answering 200 to everything refreshed the outage gate's last
    success, so no hold and no give-up came: it counts neither way."""
    api = ScriptedApi([Reply(503), Reply(200, error_type=NO_PAYMENT_STATE)])
    c = canceller(api, fake_time, max_attempts=2)
    await c.process(ROW)
    assert c._health.successes == 0


async def test_the_ceiling_leaves_room_for_a_401_before_every_call(fake_time: FakeTime) -> None:
    # every try: 401, the cancel's 422, 401, the query's Authorized; then success
    tries = [Reply(401), Reply(422), Reply(401), Reply(200, payment_state="Authorized")]
    api = ScriptedApi([*tries * 5, Reply(401), Reply(201)])
    result = await canceller(api, fake_time, max_attempts=6).process(ROW)
    assert result.outcome is Outcome.CANCELED
    assert result.attempts == 22 <= CALLS_PER_TRY * 6 + SPARE_CALLS


async def test_backoff_is_cut_to_give_up_after_so_the_abort_comes_on_time(
    fake_time: FakeTime,
) -> None:
    api = ScriptedApi([Reply(None, error_type="connection_error", maybe_sent=False)])
    health = OutageGate(threshold=10, give_up_after=2.0, clock=fake_time)
    c = Canceller(api, OneToken(), Throttle(None, clock=fake_time), health, max_attempts=10)
    with pytest.raises(Unfinished, match=r"for 2s \(--give-up-after 2\)") as caught:
        await c.process(ROW)
    assert fake_time.sleeps == [0.5, 1.0, 0.5]  # the third backoff (2.0) ends at the deadline
    assert fake_time.now == 2.0
    # the abort stops the run; the reference it caught between two requests keeps a row
    assert isinstance(caught.value.cause, ApiUnreachable)
    assert caught.value.result.outcome is Outcome.FAILED and caught.value.result.attempts == 3
    assert caught.value.result.detail.startswith("the run stopped before its next request")


async def test_a_request_a_hard_stop_abandons_on_the_wire_counts_as_sent(
    fake_time: FakeTime,
) -> None:
    on_wire = asyncio.Event()

    class Hanging(ScriptedApi):
        async def call(self, *args: object, **kwargs: object) -> Reply:
            on_wire.set()
            await asyncio.Event().wait()  # no answer, ever
            raise AssertionError

    c = canceller(Hanging([]), fake_time)
    task = asyncio.create_task(c.process(ROW))
    await on_wire.wait()
    task.cancel()  # what a second signal does to a worker
    with pytest.raises(asyncio.CancelledError):
        await task
    assert c.calls.requests == 1  # the summary's count: it went out


@dataclass
class SlowSlots:
    """A throttle whose slots take the next of `waits` seconds of fake time each."""

    clock: FakeTime
    waits: list[float]
    taken: int = 0

    async def acquire(self) -> None:
        self.clock.now += self.waits[min(self.taken, len(self.waits) - 1)]
        self.taken += 1

    def on_success(self) -> None:
        pass

    def on_throttled(self, retry_after: float | None) -> None:
        pass


@dataclass
class ShortTokens:
    """Each `get` fetches a new token, sendable for `life` seconds of fake time."""

    clock: FakeTime
    life: float
    issued: dict[str, float] = field(default_factory=dict)
    refreshes: int = 0

    async def get(self) -> str:
        token = f"t{len(self.issued) + 1}"
        self.issued[token] = self.clock.now
        return token

    def sendable(self, token: str) -> str | None:
        return token if self.clock.now < self.issued[token] + self.life else None

    def invalidate(self, token: str) -> None:
        pass


@pytest.mark.parametrize(
    ("waits", "life", "sent", "slots"),
    [
        ([5.0, 1.0], 4.0, "t2", 2),  # t1 went stale in the first wait: t2 in the next slot
        ([5.0], 2.0, "t3", 3),  # every token goes stale in the wait: the third is sent
        ([1.0], 4.0, "t1", 1),
    ],
)
async def test_a_token_that_expires_while_waiting_for_a_slot_is_not_sent(
    fake_time: FakeTime, waits: list[float], life: float, sent: str, slots: int
) -> None:
    api = ScriptedApi([Reply(201)])
    throttle = SlowSlots(fake_time, waits)
    health = OutageGate(threshold=3, give_up_after=10_000, clock=fake_time)
    tokens = ShortTokens(fake_time, life)
    c = Canceller(api, tokens, throttle, health, max_attempts=3)  # type: ignore[arg-type]
    result = await c.process(ROW)
    assert result.outcome is Outcome.CANCELED
    assert api.tokens == [sent] and throttle.taken == slots == len(tokens.issued)


@dataclass
class RoutedApi:
    """Answers by (op, reference) through `answer`; records every call."""

    answer: object
    calls: list[tuple[Op, str]] = field(default_factory=list)

    async def call(
        self, op: Op, merchant: str, reference: str, token: str, comment: str | None = None
    ) -> Reply:
        self.calls.append((op, reference))
        return self.answer(op, reference)  # type: ignore[operator,no-any-return]


async def test_a_timeout_on_a_cancel_is_settled_by_a_query(fake_time: FakeTime) -> None:
    api = ScriptedApi([Reply(None, "timeout"), Reply(200, payment_state="Canceled")])
    result = await canceller(api, fake_time).process(ROW)
    # unknown is not failed: the cancel may have landed, and the query says it did
    assert api.calls == [Op.CANCEL, Op.QUERY]
    assert result.outcome is Outcome.CANCELED and result.payment_state == "Canceled"


async def test_a_429_pauses_every_worker_until_retry_after(fake_time: FakeTime) -> None:
    api = ScriptedApi([Reply(429, retry_after=3.0), Reply(201)])
    c = canceller(api, fake_time)
    await c.process(ROW)
    start = fake_time.now
    c._throttle.on_throttled(4.0)  # another worker's 429, as the shared pause sees it
    other = Row(line=3, merchant="T1", reference="order-2")
    api.replies[:] = [Reply(201)]
    await c.process(other)
    assert fake_time.now - start >= 4.0  # the next reference waited for the pause


async def test_an_outage_at_concurrency_one_holds_the_reference(fake_time: FakeTime) -> None:
    down = {"until": 0.0}

    def answer(op: Op, reference: str) -> Reply:
        if fake_time.now < down["until"]:
            return Reply(503)
        return Reply(201) if op is Op.CANCEL else Reply(200, payment_state="Canceled")

    api = RoutedApi(answer)
    c = canceller(api, fake_time, max_attempts=3)  # type: ignore[arg-type]
    first = await c.process(ROW)  # a payment that answered cleanly
    down["until"] = fake_time.now + 60.0  # then the API goes down for a minute
    held = await c.process(Row(line=3, merchant="T1", reference="order-2"))
    assert first.outcome is held.outcome is Outcome.CANCELED
    # the known-good payment was asked about to tell an outage from bad luck
    assert (Op.QUERY, "order-1") in api.calls
    assert fake_time.now >= down["until"]


async def test_a_reference_failing_alone_ends_failed(fake_time: FakeTime) -> None:
    def answer(op: Op, reference: str) -> Reply:
        if reference == "broken":
            return Reply(503)
        return Reply(201) if op is Op.CANCEL else Reply(200, payment_state="Authorized")

    api = RoutedApi(answer)
    c = canceller(api, fake_time, max_attempts=3)  # type: ignore[arg-type]
    await c.process(ROW)
    result = await c.process(Row(line=3, merchant="T1", reference="broken"))
    assert result.outcome is Outcome.FAILED
    assert (Op.QUERY, "order-1") in api.calls  # the API answered for another payment


class FullJournal:
    async def journaled(self, merchant: str, reference: str) -> None:
        raise StorageError("r.csv.journal: No space left on device")

    def answered(self, merchant: str, reference: str) -> None:
        raise AssertionError("no intent was journaled: none to close")


async def test_a_cancel_whose_intent_cannot_be_journaled_is_not_sent(fake_time: FakeTime) -> None:
    health = OutageGate(threshold=3, give_up_after=10_000, clock=fake_time)

    def full_journal(api: ScriptedApi) -> Canceller:
        throttle = Throttle(None, clock=fake_time)
        return Canceller(api, OneToken(), throttle, health, max_attempts=3, journal=FullJournal())

    api = ScriptedApi([Reply(201)])
    with pytest.raises(StorageError):
        await full_journal(api).process(ROW)
    assert api.calls == []
    # after a query first (a journaled reference): the writer's failure stays its own
    # stop, not an abort carrying a row the failed report cannot take
    api = ScriptedApi([Reply(200, payment_state="Authorized")])
    with pytest.raises(StorageError):
        await full_journal(api).process(ROW, maybe_landed=True)
    assert api.calls == [Op.QUERY]


class CountingJournal:
    def __init__(self) -> None:
        self.records: list[str] = []

    async def journaled(self, merchant: str, reference: str) -> None:
        self.records.append(reference)

    def answered(self, merchant: str, reference: str) -> None:
        pass


async def test_one_intent_per_reference_however_many_tries(fake_time: FakeTime) -> None:
    # 503 (a query settles it: still Authorized), 409 twice, then 201: four cancels
    api = ScriptedApi(
        [Reply(503), Reply(200, payment_state="Authorized"), Reply(409), Reply(409), Reply(201)]
    )
    journal = CountingJournal()
    health = OutageGate(threshold=10, give_up_after=10_000, clock=fake_time)
    c = Canceller(
        api, OneToken(), Throttle(None, clock=fake_time), health, max_attempts=5, journal=journal
    )
    result = await c.process(ROW)
    assert result.outcome is Outcome.CANCELED and api.calls.count(Op.CANCEL) == 4
    assert journal.records == ["order-1"]  # the journal's cost does not grow with retries


INVALID_STATE = "https://api.bambora.com/errors/invalid_payment_state_transition"


@pytest.mark.parametrize(
    ("refusal", "state", "detail"),
    [
        (422, "Captured", "payment is Captured: refund it instead"),
        (402, "Settled", "payment is Settled: refund it instead"),
        (422, "Authorization Expired", "payment is Authorization Expired: the authorization"),
    ],
)
async def test_not_cancelable_keeps_the_cancels_answer_and_says_why(
    fake_time: FakeTime, refusal: int, state: str, detail: str
) -> None:
    """The query after a refusal only explains it: the row shows the refusal's status and
    error type, the state the query found, and what to do instead."""
    api = ScriptedApi(
        [
            Reply(refusal, INVALID_STATE, detail="wrong state"),
            Reply(200, payment_state=state, amount=1250, currency="EUR"),
        ]
    )
    result = await canceller(api, fake_time).process(ROW)
    assert result.outcome is Outcome.NOT_CANCELABLE and api.calls == [Op.CANCEL, Op.QUERY]
    assert (result.http_status, result.error_type) == (refusal, INVALID_STATE)
    assert result.payment_state == state and result.detail is not None
    assert result.detail.startswith(detail)
    assert (result.amount, result.currency, result.attempts) == (1250, "EUR", 2)


async def test_a_captured_payment_found_by_a_query_after_doubt_keeps_the_query(
    fake_time: FakeTime,
) -> None:
    """No refusal to show (the cancel timed out): the query's own answer stays."""
    api = ScriptedApi([Reply(None, "timeout"), Reply(200, payment_state="Captured")])
    result = await canceller(api, fake_time).process(ROW)
    assert result.outcome is Outcome.NOT_CANCELABLE
    assert (result.http_status, result.error_type) == (200, None)
    assert result.detail == "payment is Captured: refund it instead"


@dataclass
class StoppingApi:
    """Answers `reply`; the `stop_at`-th call stops the run while it is on the wire, as a
    SIGTERM arriving then would."""

    gate: StopGate
    reply: Reply
    stop_at: int
    calls: list[tuple[Op, str]] = field(default_factory=list)

    async def call(
        self, op: Op, merchant: str, reference: str, token: str, comment: str | None = None
    ) -> Reply:
        self.calls.append((op, reference))
        if len(self.calls) == self.stop_at:
            self.gate.stop()
        return self.reply


def stoppable(api: StoppingApi, clock: FakeTime, rate: float | None) -> Canceller:
    health = OutageGate(threshold=3, give_up_after=10_000, clock=clock)
    throttle = Throttle(rate, clock=clock, stop=api.gate)
    return Canceller(api, OneToken(), throttle, health, max_attempts=3, stop=api.gate)


async def test_after_a_stop_workers_waiting_for_a_rate_slot_send_nothing(
    fake_time: FakeTime,
) -> None:
    gate = StopGate()
    api = StoppingApi(gate, Reply(201), stop_at=3)
    c = stoppable(api, fake_time, rate=2)  # 16 workers, 2 slots a second: most of them wait
    rows = [Row(i, "T1", f"r{i}") for i in range(16)]
    done = await asyncio.gather(*(c.process(row) for row in rows), return_exceptions=True)
    assert [ref for _, ref in api.calls] == ["r0", "r1", "r2"]  # the third was on the wire
    assert [d.outcome for d in done if isinstance(d, Result)] == [Outcome.CANCELED] * 3
    assert sum(isinstance(d, Stopped) for d in done) == 13  # no row: their rerun sends them
    assert (gate.in_flight_at_stop, gate.finished_after_stop, gate.sent) == (1, 1, 3)


async def test_a_reference_whose_answer_was_unclear_is_not_queried_after_a_stop(
    fake_time: FakeTime,
) -> None:
    gate = StopGate()
    api = StoppingApi(gate, Reply(None, "timeout"), stop_at=1)  # the cancel: maybe landed
    result = await stoppable(api, fake_time, rate=None).process(ROW)
    assert api.calls == [(Op.CANCEL, "order-1")]  # no query, no second cancel
    assert result.outcome is Outcome.FAILED and result.attempts == 1
    assert result.detail == "the run stopped before its next request (last: timeout)"


class AnsweringJournal(CountingJournal):
    def __init__(self) -> None:
        super().__init__()
        self.answered_refs: list[str] = []

    def answered(self, merchant: str, reference: str) -> None:
        self.answered_refs.append(reference)


@pytest.mark.parametrize(
    ("reply", "maybe_landed", "closed"),
    [
        (Reply(422, error_type="invalid_payment_state_transition"), False, True),
        (Reply(429), False, True),  # not applied either
        (Reply(408), False, False),  # a gateway's timeout: it may have landed
        (Reply(None, "timeout"), False, False),  # may have landed: the rerun queries first
        (Reply(503), False, False),
        (Reply(422), True, False),  # a killed run's intent, never settled here
    ],
)
async def test_a_stop_after_clear_answers_only_closes_the_references_intent(
    fake_time: FakeTime, reply: Reply, maybe_landed: bool, closed: bool
) -> None:
    """A 422 (the payment already Canceled), then a SIGTERM before the query: the rerun
    queried the journaled reference and reported it `canceled`, its amount released."""
    gate = StopGate()
    api = StoppingApi(gate, reply, stop_at=1)
    journal = AnsweringJournal()
    health = OutageGate(threshold=3, give_up_after=10_000, clock=fake_time)
    throttle = Throttle(None, clock=fake_time, stop=gate)
    c = Canceller(api, OneToken(), throttle, health, max_attempts=3, stop=gate, journal=journal)
    if maybe_landed:  # its query answers a refusal-shaped reply: not a state, a failed row
        api.reply = Reply(None, "timeout")
    result = await c.process(ROW, maybe_landed=maybe_landed)
    assert result.outcome is Outcome.FAILED and len(api.calls) == 1
    assert journal.answered_refs == (["order-1"] if closed else [])


async def test_a_worker_held_behind_an_outage_leaves_at_the_stop() -> None:
    gate = StopGate()
    api = StoppingApi(gate, Reply(201), stop_at=0)
    health = OutageGate(threshold=3, give_up_after=10_000)
    c = Canceller(api, OneToken(), Throttle(None), health, max_attempts=3, stop=gate)
    health.declare_outage()  # every worker waits for its probe turn (0.5 s, 1 s, ...)
    held = asyncio.create_task(c.process(ROW))
    await asyncio.sleep(0)
    gate.stop()
    with pytest.raises(Stopped):
        await asyncio.wait_for(held, 10)  # a hang guard: it returns at the stop
    assert api.calls == []


class StoppingJournal:
    """The signal arrives while the intent is being journaled."""

    def __init__(self, gate: StopGate) -> None:
        self.gate = gate
        self.closed: list[str] = []

    async def journaled(self, merchant: str, reference: str) -> None:
        self.gate.stop()
        await asyncio.sleep(0)

    def answered(self, merchant: str, reference: str) -> None:
        self.closed.append(reference)


async def test_the_gate_is_checked_after_the_last_wait_before_the_send(
    fake_time: FakeTime,
) -> None:
    gate = StopGate()
    api = StoppingApi(gate, Reply(201), stop_at=0)
    health = OutageGate(threshold=3, give_up_after=10_000, clock=fake_time)
    c = Canceller(
        api,
        OneToken(),
        Throttle(None),
        health,
        max_attempts=3,
        journal=(journal := StoppingJournal(gate)),
        stop=gate,
    )
    with pytest.raises(Stopped):
        await c.process(ROW)
    assert api.calls == [] and gate.sent == 0
    # journaled, then caught before the send: the rerun sends it as new, not query-first
    assert journal.closed == ["order-1"]


class Steps:
    """Records the waits before a send, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def journaled(self, merchant: str, reference: str) -> None:
        self.seen.append("journal")
        await asyncio.sleep(0)

    def answered(self, merchant: str, reference: str) -> None:
        self.seen.append("answered")


class RecordingThrottle(Throttle):
    def __init__(self, steps: Steps) -> None:
        super().__init__(None)
        self._steps = steps

    async def acquire(self) -> None:
        self._steps.seen.append("slot")
        await super().acquire()


async def test_the_rate_slot_is_the_last_wait_before_the_send(fake_time: FakeTime) -> None:
    """A slot taken before the journal's sync would be spent late: requests would bunch
    past the rate at the API."""
    steps = Steps()
    api = ScriptedApi([Reply(201, payment_state="Canceled")])
    health = OutageGate(threshold=3, give_up_after=10_000, clock=fake_time)
    throttle = RecordingThrottle(steps)
    c = Canceller(api, OneToken(), throttle, health, max_attempts=3, journal=steps)
    result = await c.process(ROW)
    assert result.outcome is Outcome.CANCELED
    assert steps.seen == ["journal", "slot"]
