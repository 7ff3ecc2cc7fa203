"""Outcome decision: what one API reply means for one reference. Pure; no I/O.

Everything about Bambora's status codes and payment states lives in `decide`:

- a final outcome (`Final`),
- the next request to make (`Next`): query the payment to learn the truth, send the
  cancel (again), or retry the same call after transient trouble,
- or `Reauth`: the token was refused, get a new one and repeat the call.

The caller carries a little memory between calls in `Step`: which call it makes,
whether an earlier cancel of ours may have landed (then `Canceled` means we did
it: `canceled`, not `already_canceled`) and which refusal (402/422) led to a query.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.model import Op, Outcome, Reply

CANCELED_STATE = "Canceled"
AUTHORIZED_STATE = "Authorized"


# Not frozen, for speed (see worker/model.py); never changed after they are made.
@dataclass(slots=True)
class Step:
    """The memory a reference carries from one call to the next."""

    op: Op
    maybe_landed: bool = False  # an earlier cancel (this run or a killed one) may have applied
    refusal: int | None = None  # 402/422 that made us query, if any
    check_only: bool = False  # `check`: query, never cancel
    disputed: bool = False  # the cancel answered 2xx (not 201): a query must confirm it


@dataclass(slots=True)
class Final:
    outcome: Outcome
    detail: str | None = None


@dataclass(slots=True)
class Next:
    """Make another call.

    `transient` marks trouble that counts as a failed try (backoff, `--max-attempts`);
    `throttled` is a 429 (slow everyone down); `after` is the server's Retry-After;
    `unclear`: the cancel's answer may hide a cancel that landed (a timeout, a dropped
    connection, a 5xx, a 408, a 2xx other than 201), so the journal keeps its intent.
    """

    step: Step
    transient: bool = False
    throttled: bool = False
    after: float | None = None
    unclear: bool = False


@dataclass(slots=True)
class Reauth:
    pass


Decision = Final | Next | Reauth

_REJECTED_STATUSES = frozenset({400, 403})
_RETRY_STATUSES = frozenset({408, 409, 425, 429})


def decide(step: Step, reply: Reply) -> Decision:
    """Map (what we sent, what came back) to what happens next."""
    if reply.status is None:
        return _transport_trouble(step, reply)
    status = reply.status
    if status == 401:
        return Reauth()
    if step.op is Op.CANCEL:
        return _after_cancel(step, reply, status)
    return _after_query(step, reply, status)


def _transport_trouble(step: Step, reply: Reply) -> Decision:
    if step.op is Op.CANCEL and reply.maybe_sent:
        # Unknown is not failed: the cancel may have landed, and a GET tells.
        return Next(
            Step(Op.QUERY, maybe_landed=True, check_only=step.check_only),
            transient=True,
            unclear=True,
        )
    return Next(step, transient=True)


def _after_cancel(step: Step, reply: Reply, status: int) -> Decision:
    if status == 201:
        return Final(Outcome.CANCELED)
    if 200 <= status < 300:
        # Not the documented answer: believe the payment's state, not the status.
        return Next(Step(Op.QUERY, maybe_landed=True, disputed=True), unclear=True)
    if status in (402, 422):
        return Next(Step(Op.QUERY, maybe_landed=step.maybe_landed, refusal=status))
    if status == 404:
        return Final(Outcome.NOT_FOUND)
    if status == 408:
        # A gateway's timeout: sent again, yet the first may have landed, so a later
        # refusal's query reports `Canceled` as ours (not someone else's).
        return Next(
            Step(Op.CANCEL, maybe_landed=True, check_only=step.check_only),
            transient=True,
            after=reply.retry_after,
            unclear=True,
        )
    if status in _RETRY_STATUSES:
        return Next(step, transient=True, throttled=status == 429, after=reply.retry_after)
    if status >= 500:
        # A 5xx may come from a gateway after the backend applied the cancel.
        return Next(
            Step(Op.QUERY, maybe_landed=True),
            transient=True,
            after=reply.retry_after,
            unclear=True,
        )
    return Final(
        Outcome.REJECTED, _unexpected(status) if status not in _REJECTED_STATUSES else None
    )


def _after_query(step: Step, reply: Reply, status: int) -> Decision:
    if status == 200:
        return _from_state(step, reply.payment_state)
    if status == 404:
        return Final(Outcome.NOT_FOUND)
    if status in _RETRY_STATUSES or status >= 500:
        return Next(step, transient=True, throttled=status == 429, after=reply.retry_after)
    return Final(
        Outcome.REJECTED, _unexpected(status) if status not in _REJECTED_STATUSES else None
    )


def _from_state(step: Step, state: str | None) -> Decision:
    if not state:
        # A garbled, empty or HTML 200 settles nothing: asked again, a try each time (a
        # final `rejected` hid a cancel that landed). A wrong endpoint answering web
        # pages ends each reference `failed`, which the guard rail counts.
        return Next(step, transient=True)
    if step.check_only:
        return Final(Outcome.CHECKED)
    if state == CANCELED_STATE:
        return Final(Outcome.CANCELED if step.maybe_landed else Outcome.ALREADY_CANCELED)
    if state != AUTHORIZED_STATE or step.refusal == 402:
        return Final(Outcome.NOT_CANCELABLE, not_cancelable_detail(state, step.refusal))
    # Authorized: nothing landed yet (or a 422 raced another change). Send the cancel;
    # after a refusal, or a 2xx the payment contradicts, that counts as a failed try,
    # so a disagreeing API cannot loop us past --max-attempts.
    return Next(
        Step(Op.CANCEL, maybe_landed=step.maybe_landed),
        transient=step.refusal is not None or step.disputed,
    )


#: What the operator does about a payment in a state that cannot be canceled.
_WHAT_NOW = {
    "Captured": "refund it instead",
    "Settled": "refund it instead",
    "Refunded": "already refunded, nothing to cancel",
    "Authorization Expired": "the authorization lapsed, nothing to cancel",
    "Declined": "it was declined, nothing to cancel",
    "Voided": "already voided, nothing to cancel",
}


def not_cancelable_detail(state: str, refusal: int | None) -> str:
    """The report's `detail` for `not_cancelable`: the state, and what to do instead."""
    if state == AUTHORIZED_STATE:
        # 402 cannot_cancel for a payment the API itself calls Authorized: only the
        # acquirer can say why (a hold, a dispute).
        return (
            f"the API answered {refusal} cannot_cancel although the payment is Authorized: "
            "ask Bambora support why"
        )
    what_now = _WHAT_NOW.get(state, "only Authorized payments can be canceled")
    return f"payment is {state}: {what_now}"


def is_api_trouble(reply: Reply) -> bool:
    """Trouble that says something about the API as a whole, not about this payment.

    These feed the run-wide outage detector (`health`): no answer, 5xx, 408, 429.
    A 409 or a 422 is about one payment; any such answer proves the API is up.
    """
    status = reply.status
    return status is None or status >= 500 or status in (408, 429)


def _unexpected(status: int) -> str:
    return f"unexpected HTTP status {status}"
