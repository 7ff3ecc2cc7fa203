"""Reference-prefix scenarios: what a payment nobody seeded starts as, and its trouble.

`SCENARIOS` is the one place this knowledge lives: the prefix parser, the payment a
prefix builds and the Markdown table in docs/sandbox.md are all read off it, so they cannot
drift apart. Prefixes are case-sensitive. Where a row has a default N, a count may
follow the keyword (`flaky3-x`: 3 bad answers instead of 2); a count on a row without
one (`captured3-x`) makes a plain reference. Counters are per (merchant, reference),
so answers do not depend on how requests to different references interleave.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from worker.sandbox.model import Payment, amount_for


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How a scenario's payment answers, on top of the state rules."""

    #: Every request (cancel or GET) is answered with this status.
    status: int | None = None
    #: Every cancel is answered with this status instead of the state rules.
    cancel_status: int | None = None
    #: The first N requests (cancel or GET) get this fault kind.
    fault: str | None = None
    #: The first N cancels get this fault kind.
    cancel_fault: str | None = None


STATE_RULES = Behaviour()


class Scenario(NamedTuple):
    """One row of the table: a reference prefix and what it means."""

    prefix: str  # "" for a reference without a known prefix
    state: str | None  # first state; None: the payment does not exist
    behaviour: Behaviour
    default_n: int | None  # bad answers when no count is given; None: takes no count
    outcome: str  # what a careful worker should end with
    description: str  # the behaviour in words, for docs/sandbox.md


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("", "Authorized", STATE_RULES, None, "canceled", "cancel 201, then 422; GET 200"),
    Scenario(
        "captured-",
        "Captured",
        STATE_RULES,
        None,
        "not_cancelable",
        "cancel 422 invalid_payment_state_transition",
    ),
    Scenario("settled-", "Settled", STATE_RULES, None, "not_cancelable", "cancel 422"),
    Scenario("refunded-", "Refunded", STATE_RULES, None, "not_cancelable", "cancel 422"),
    Scenario(
        "expired-", "Authorization Expired", STATE_RULES, None, "not_cancelable", "cancel 422"
    ),
    Scenario(
        "nocancel-",
        "Captured",
        Behaviour(cancel_status=402),
        None,
        "not_cancelable",
        "cancel 402 cannot_cancel",
    ),
    Scenario(
        "canceled-",
        "Canceled",
        STATE_RULES,
        None,
        "already_canceled",
        "cancel 422; GET 200 Canceled",
    ),
    Scenario(
        "unknown-",
        None,
        Behaviour(status=404),
        None,
        "not_found",
        "404 payment_not_found to cancel and GET",
    ),
    Scenario(
        "forbidden-", "Authorized", Behaviour(status=403), None, "rejected", "403 to cancel and GET"
    ),
    Scenario(
        "blocked-",
        "Authorized",
        Behaviour(cancel_fault="409"),
        2,
        "canceled",
        "cancel 409 payment_operation_blocked N times, then 201",
    ),
    Scenario(
        "flaky-",
        "Authorized",
        Behaviour(fault="503"),
        2,
        "canceled",
        "503 to the first N requests (cancel or GET)",
    ),
    Scenario(
        "throttled-",
        "Authorized",
        Behaviour(fault="429"),
        2,
        "canceled",
        "429 + Retry-After to the first N requests (cancel or GET)",
    ),
    Scenario(
        "reset-",
        "Authorized",
        Behaviour(cancel_fault="reset_before"),
        1,
        "canceled",
        "first N cancels: connection dropped, nothing applied",
    ),
    Scenario(
        "dropped-",
        "Authorized",
        Behaviour(cancel_fault="reset_after"),
        1,
        "canceled",
        "first N cancels: applied, then connection dropped",
    ),
    Scenario(
        "slow-",
        "Authorized",
        Behaviour(cancel_fault="slow_after"),
        1,
        "canceled",
        "first N cancels: applied, then a stall of `--slow-delay` s, then the answer",
    ),
    Scenario(
        "broken-", "Authorized", Behaviour(status=503), None, "failed", "503 to every request"
    ),
)

_BY_KEYWORD = {s.prefix[:-1]: s for s in SCENARIOS if s.prefix}
_PREFIX_RE = re.compile(r"([a-z]+)([0-9]{0,4})-")


def scenario_of(reference: str) -> tuple[Scenario, int] | None:
    """The prefix scenario of `reference` and its count, or None for a plain reference."""
    match = _PREFIX_RE.match(reference)
    if match is None:
        return None
    scenario = _BY_KEYWORD.get(match.group(1))
    if scenario is None:
        return None
    digits = match.group(2)
    if scenario.default_n is None:
        return None if digits else (scenario, 0)
    return scenario, int(digits) if digits else scenario.default_n


def payment_for(merchant: str, reference: str, default_state: str = "Authorized") -> Payment:
    """The payment a reference nobody seeded starts as."""
    payment = Payment(merchant, reference, default_state, amount_for(reference))
    found = scenario_of(reference)
    if found is None:
        return payment
    scenario, n = found
    how = scenario.behaviour
    payment.state = scenario.state or "None"
    payment.origin = scenario.prefix
    payment.fixed_status = how.status
    payment.cancel_refusal = how.cancel_status
    if how.fault is not None:
        payment.faults.extend([how.fault] * n)
    if how.cancel_fault is not None:
        payment.cancel_faults.extend([how.cancel_fault] * n)
    return payment


def scenarios_markdown() -> str:
    """The table as Markdown, as docs/sandbox.md shows it."""
    lines = [
        "| prefix | first state | behaviour | default N | expected outcome |",
        "|---|---|---|---|---|",
    ]
    for s in SCENARIOS:
        if not s.prefix:
            prefix = "(none)"
        elif s.default_n is None:
            prefix = f"`{s.prefix}`"
        else:
            prefix = f"`{s.prefix[:-1]}[N]-`"
        state = s.state or "(does not exist)"
        n = "–" if s.default_n is None else str(s.default_n)
        lines.append(f"| {prefix} | {state} | {s.description} | {n} | {s.outcome} |")
    return "\n".join(lines)
