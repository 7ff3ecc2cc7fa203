"""The decision table: every status of the spec, plus transport trouble, for each call."""

from __future__ import annotations

import pytest

from worker.decide import Final, Next, Reauth, Step, decide, is_api_trouble
from worker.model import NO_PAYMENT_STATE, Op, Outcome, Reply

CANCEL = Step(Op.CANCEL)
CANCEL_AFTER_DOUBT = Step(Op.CANCEL, maybe_landed=True)
QUERY = Step(Op.QUERY)
QUERY_AFTER_DOUBT = Step(Op.QUERY, maybe_landed=True)
QUERY_AFTER_402 = Step(Op.QUERY, refusal=402)
QUERY_AFTER_422 = Step(Op.QUERY, refusal=422)
CHECK = Step(Op.QUERY, check_only=True)

TIMEOUT = Reply(None, "timeout")
RESET_AFTER_SEND = Reply(None, "disconnected")
NO_STATE_REPLY = Reply(200, error_type=NO_PAYMENT_STATE)  # as api.py reads one
REFUSED_CONNECT = Reply(None, "connection_error", maybe_sent=False)


def state(name: str) -> Reply:
    return Reply(200, payment_state=name)


CASES = [
    # cancel answers
    (CANCEL, Reply(201, payment_state="Canceled"), Final(Outcome.CANCELED)),
    (CANCEL, Reply(200), Next(Step(Op.QUERY, maybe_landed=True, disputed=True), unclear=True)),
    (CANCEL, Reply(400), Final(Outcome.REJECTED)),
    (CANCEL, Reply(401), Reauth()),
    (CANCEL, Reply(402), Next(QUERY_AFTER_402)),
    (CANCEL, Reply(403), Final(Outcome.REJECTED)),
    (CANCEL, Reply(404), Final(Outcome.NOT_FOUND)),
    (CANCEL, Reply(405), Final(Outcome.REJECTED, "unexpected HTTP status 405")),
    (CANCEL, Reply(409, retry_after=2.0), Next(CANCEL, transient=True, after=2.0)),
    # a gateway's 408 may hide a landed cancel: sent again, but the doubt is carried
    (CANCEL, Reply(408), Next(Step(Op.CANCEL, maybe_landed=True), transient=True, unclear=True)),
    (CANCEL, Reply(415), Final(Outcome.REJECTED, "unexpected HTTP status 415")),
    (CANCEL, Reply(422), Next(QUERY_AFTER_422)),
    (CANCEL_AFTER_DOUBT, Reply(422), Next(Step(Op.QUERY, maybe_landed=True, refusal=422))),
    (CANCEL, Reply(429, retry_after=3.0), Next(CANCEL, transient=True, throttled=True, after=3.0)),
    (CANCEL, Reply(500), Next(QUERY_AFTER_DOUBT, transient=True, unclear=True)),
    (CANCEL, Reply(502), Next(QUERY_AFTER_DOUBT, transient=True, unclear=True)),
    (
        CANCEL,
        Reply(503, retry_after=1.0),
        Next(QUERY_AFTER_DOUBT, transient=True, after=1.0, unclear=True),
    ),
    (CANCEL, Reply(504), Next(QUERY_AFTER_DOUBT, transient=True, unclear=True)),
    (CANCEL, Reply(302), Final(Outcome.REJECTED, "unexpected HTTP status 302")),
    (CANCEL, TIMEOUT, Next(QUERY_AFTER_DOUBT, transient=True, unclear=True)),
    (CANCEL, RESET_AFTER_SEND, Next(QUERY_AFTER_DOUBT, transient=True, unclear=True)),
    (CANCEL, REFUSED_CONNECT, Next(CANCEL, transient=True)),
    # query answers after a doubtful cancel
    (QUERY_AFTER_DOUBT, state("Canceled"), Final(Outcome.CANCELED)),
    (QUERY_AFTER_DOUBT, state("Authorized"), Next(CANCEL_AFTER_DOUBT)),
    (
        QUERY_AFTER_DOUBT,
        state("Captured"),
        Final(Outcome.NOT_CANCELABLE, "payment is Captured: refund it instead"),
    ),
    (QUERY_AFTER_DOUBT, TIMEOUT, Next(QUERY_AFTER_DOUBT, transient=True)),
    (QUERY_AFTER_DOUBT, Reply(503), Next(QUERY_AFTER_DOUBT, transient=True)),
    # query answers after a refusal
    (QUERY_AFTER_422, state("Canceled"), Final(Outcome.ALREADY_CANCELED)),
    (QUERY_AFTER_402, state("Canceled"), Final(Outcome.ALREADY_CANCELED)),
    (
        QUERY_AFTER_422,
        state("Settled"),
        Final(Outcome.NOT_CANCELABLE, "payment is Settled: refund it instead"),
    ),
    (
        QUERY_AFTER_402,
        state("Authorized"),
        Final(
            Outcome.NOT_CANCELABLE,
            "the API answered 402 cannot_cancel although the payment is Authorized: "
            "ask Bambora support why",
        ),
    ),
    (QUERY_AFTER_422, state("Authorized"), Next(CANCEL, transient=True)),
    # a 2xx to the cancel that the payment contradicts: a failed try, not a free loop
    (
        Step(Op.QUERY, maybe_landed=True, disputed=True),
        state("Authorized"),
        Next(Step(Op.CANCEL, maybe_landed=True), transient=True),
    ),
    (Step(Op.QUERY, maybe_landed=True, disputed=True), state("Canceled"), Final(Outcome.CANCELED)),
    # a 200 without a state (garbled, empty, a web page) settles nothing: asked again, a
    # try each time (final `rejected` hid a cancel that landed; the guard rail counts
    # references that fail on it, see control/guard.py)
    (QUERY, NO_STATE_REPLY, Next(QUERY, transient=True)),
    (QUERY_AFTER_422, NO_STATE_REPLY, Next(QUERY_AFTER_422, transient=True)),
    (
        Step(Op.QUERY, maybe_landed=True, disputed=True),
        NO_STATE_REPLY,
        Next(Step(Op.QUERY, maybe_landed=True, disputed=True), transient=True),
    ),
    (CHECK, NO_STATE_REPLY, Next(CHECK, transient=True)),
    (QUERY, Reply(400), Final(Outcome.REJECTED)),
    (QUERY, Reply(401), Reauth()),
    (QUERY, Reply(403), Final(Outcome.REJECTED)),
    (QUERY, Reply(404), Final(Outcome.NOT_FOUND)),
    (QUERY, Reply(409), Next(QUERY, transient=True)),
    (QUERY, Reply(429, retry_after=5.0), Next(QUERY, transient=True, throttled=True, after=5.0)),
    (QUERY, Reply(500), Next(QUERY, transient=True)),
    (QUERY, REFUSED_CONNECT, Next(QUERY, transient=True)),
    (QUERY, RESET_AFTER_SEND, Next(QUERY, transient=True)),
    # check never cancels
    (CHECK, state("Authorized"), Final(Outcome.CHECKED)),
    (CHECK, state("Canceled"), Final(Outcome.CHECKED)),
    (CHECK, Reply(404), Final(Outcome.NOT_FOUND)),
    (CHECK, TIMEOUT, Next(CHECK, transient=True)),
]

STATES = ["None", "Authorization Expired", "Declined", "Voided", "Captured", "Refunded", "Settled"]


@pytest.mark.parametrize(("step", "reply", "expected"), CASES)
def test_decide(step: Step, reply: Reply, expected: object) -> None:
    assert decide(step, reply) == expected


WHAT_NOW = {
    "None": "only Authorized payments can be canceled",
    "Authorization Expired": "the authorization lapsed, nothing to cancel",
    "Declined": "it was declined, nothing to cancel",
    "Voided": "already voided, nothing to cancel",
    "Captured": "refund it instead",
    "Refunded": "already refunded, nothing to cancel",
    "Settled": "refund it instead",
}


@pytest.mark.parametrize("name", STATES)
def test_every_other_state_is_not_cancelable_and_says_why(name: str) -> None:
    for step in (QUERY_AFTER_422, QUERY_AFTER_DOUBT, QUERY_AFTER_402):
        assert decide(step, state(name)) == Final(
            Outcome.NOT_CANCELABLE, f"payment is {name}: {WHAT_NOW[name]}"
        )


def test_a_disagreeing_api_counts_tries_instead_of_looping() -> None:
    step = CANCEL
    transient = 0
    for _ in range(10):
        decision = decide(step, Reply(422))
        assert isinstance(decision, Next)
        decision = decide(decision.step, state("Authorized"))
        assert isinstance(decision, Next)
        transient += decision.transient
        step = decision.step
    assert transient == 10


@pytest.mark.parametrize(
    ("reply", "trouble"),
    [
        (TIMEOUT, True),
        (Reply(503), True),
        (Reply(429), True),
        (Reply(408), True),
        (Reply(409), False),
        (Reply(422), False),
        (Reply(404), False),
        (Reply(201), False),
    ],
)
def test_api_trouble_is_about_the_api_not_the_payment(reply: Reply, trouble: bool) -> None:
    assert is_api_trouble(reply) is trouble
