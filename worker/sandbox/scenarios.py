"""What a payment reference is in the sandbox: its first state and the faults it will see.

Owns the `Payment` record, the reference-prefix scenarios (`SCENARIOS`), the JSON seed
file format and the seeded random fault draw. Nothing here speaks HTTP.

Every reference exists, for any merchant, as an `Authorized` payment (created on first
touch), unless its reference starts with one of these case-sensitive prefixes. Where a
count `N` is allowed, `flaky3-x` means "3 bad answers" instead of the default (2 for
`blocked-`, `flaky-`, `throttled-`; 1 for `reset-`, `dropped-`, `slow-`).

| prefix | first state | answers | worker ends with |
|---|---|---|---|
| (none) | Authorized | cancel 201 (then 422); GET 200 | canceled |
| `captured-` | Captured | cancel 422 invalid_payment_state_transition | not_cancelable |
| `settled-` | Settled | cancel 422 | not_cancelable |
| `refunded-` | Refunded | cancel 422 | not_cancelable |
| `expired-` | Authorization Expired | cancel 422 | not_cancelable |
| `nocancel-` | Captured | cancel 402 cannot_cancel | not_cancelable |
| `canceled-` | Canceled | cancel 422; GET 200 Canceled | already_canceled |
| `unknown-` | (none) | 404 payment_not_found, cancel and GET | not_found |
| `forbidden-` | Authorized | 403, cancel and GET | rejected |
| `blocked[N]-` | Authorized | cancel 409 operation_blocked N (2) times, then 201 | canceled |
| `flaky[N]-` | Authorized | 503 to the first N (2) requests (cancel or GET) | canceled |
| `throttled[N]-` | Authorized | 429 + Retry-After to the first N (2) requests (any) | canceled |
| `reset[N]-` | Authorized | first N (1) cancels: connection dropped, nothing applied | canceled |
| `dropped[N]-` | Authorized | first N (1) cancels: applied, then connection dropped | canceled |
| `slow[N]-` | Authorized | first N (1) cancels: applied, stall `slow_delay` s, answer | canceled |
| `broken-` | Authorized | always 503, cancel and GET | failed |

GETs answer 200 with the current state unless the table says otherwise.
Counters are per (merchant, reference), so answers do not depend on how requests to
different references interleave.

Seed file (`SandboxConfig.seed_file`, CLI `--seed FILE`): a JSON list of objects

    [{"merchant": "T123456", "payment": "order-1", "state": "Captured"},
     {"merchant": "T123456", "payment": "order-2", "faults": ["503", "reset_after"]},
     {"merchant": "T123456", "payment": "order-3", "cancel_faults": ["409", "409"]},
     {"merchant": "T123456", "payment": "order-4", "exists": false}]

Keys: `merchant`, `payment` (required strings); `state` (a PaymentResponse state,
default `SandboxConfig.default_state`); `faults` (fault kinds consumed one per request,
cancel or GET, in order); `cancel_faults` (consumed one per cancel, after `faults` are
used up); `exists` (false: 404 for everything); `amount` (int), `currency` (ISO 4217).
A seeded payment ignores the prefix rules. Unknown keys, states or fault kinds are
errors, so a typo cannot silently turn into a plain authorized payment.

Fault kinds (seed files, `SandboxConfig.fault_kinds`): `503`, `500`, `429` (with
Retry-After), `409` and `reset_before` answer without applying anything;
`500_after_apply`, `reset_after` and `slow_after` first do the normal work (a cancel of
an Authorized payment is applied) and then answer 500, drop the connection, or stall
`slow_delay` seconds before the normal answer. A GET applies nothing, so for a GET the
`_after` kinds behave like their plain forms, and `409` (which Bambora does not send for
a query) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

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


@dataclass(frozen=True, slots=True)
class Fault:
    """How one injected fault changes an answer."""

    kind: str
    before: bool  # answered instead of doing the work (nothing applied)
    status: int | None = None  # answer this status (problem+json) instead of the normal one
    drop: bool = False  # drop the connection instead of answering
    stall: bool = False  # stall slow_delay seconds, then give the normal answer


FAULTS: dict[str, Fault] = {
    f.kind: f
    for f in (
        Fault("503", before=True, status=503),
        Fault("500", before=True, status=500),
        Fault("429", before=True, status=429),
        Fault("409", before=True, status=409),
        Fault("reset_before", before=True, drop=True),
        Fault("500_after_apply", before=False, status=500),
        Fault("reset_after", before=False, drop=True),
        Fault("slow_after", before=False, stall=True),
    )
}

#: Every fault kind the sandbox knows.
FAULT_KINDS: tuple[str, ...] = tuple(FAULTS)


def fault_for(kind: str, operation: str) -> Fault | None:
    """The fault `kind` means for `operation` ("cancel" or "get"); None if it means nothing.

    Bambora documents 409 only for state-changing calls, so a GET never gets one.
    """
    if operation == "get" and kind == "409":
        return None
    return FAULTS[kind]


class Scenario(NamedTuple):
    """One reference prefix: what the payment starts as and how it answers."""

    prefix: str
    state: str  # first state ("" for a payment that does not exist)
    bad_answers: int | None  # bad answers by default; None: takes no count (`flaky3-` takes one)
    behaviour: str
    outcome: str  # what a careful worker should end with


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "captured-",
        "Captured",
        None,
        "cancel 422 invalid_payment_state_transition",
        "not_cancelable (Captured)",
    ),
    Scenario("settled-", "Settled", None, "cancel 422", "not_cancelable (Settled)"),
    Scenario("refunded-", "Refunded", None, "cancel 422", "not_cancelable (Refunded)"),
    Scenario(
        "expired-",
        "Authorization Expired",
        None,
        "cancel 422",
        "not_cancelable (Authorization Expired)",
    ),
    Scenario(
        "nocancel-", "Captured", None, "cancel 402 cannot_cancel", "not_cancelable (Captured)"
    ),
    Scenario("canceled-", "Canceled", None, "cancel 422; GET 200 Canceled", "already_canceled"),
    Scenario("unknown-", "", None, "404 payment_not_found to cancel and GET", "not_found"),
    Scenario("forbidden-", "Authorized", None, "403 to cancel and GET", "rejected"),
    Scenario(
        "blocked-",
        "Authorized",
        2,
        "cancel 409 payment_operation_blocked N times, then 201",
        "canceled",
    ),
    Scenario("flaky-", "Authorized", 2, "503 to the first N requests (cancel or GET)", "canceled"),
    Scenario(
        "throttled-",
        "Authorized",
        2,
        "429 + Retry-After to the first N requests (cancel or GET)",
        "canceled",
    ),
    Scenario(
        "reset-",
        "Authorized",
        1,
        "first N cancels: connection dropped, nothing applied",
        "canceled",
    ),
    Scenario(
        "dropped-",
        "Authorized",
        1,
        "first N cancels: applied, then connection dropped",
        "canceled",
    ),
    Scenario(
        "slow-",
        "Authorized",
        1,
        "first N cancels: applied, then `slow_delay` s stall, then the answer",
        "canceled",
    ),
    Scenario("broken-", "Authorized", None, "503 to every request", "failed"),
)

_BY_KEYWORD = {s.prefix[:-1]: s for s in SCENARIOS}
_PREFIX_RE = re.compile(r"([a-z]+)([0-9]{0,4})-")


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
    cancels: int = 0

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


def scenario_of(reference: str) -> tuple[Scenario, int] | None:
    """The prefix scenario of `reference` and its count, or None for a plain reference."""
    match = _PREFIX_RE.match(reference)
    if match is None:
        return None
    scenario = _BY_KEYWORD.get(match.group(1))
    if scenario is None:
        return None
    digits = match.group(2)
    if scenario.bad_answers is None:
        # `captured3-x` is just a reference, not a scenario.
        return None if digits else (scenario, 0)
    return scenario, int(digits) if digits else scenario.bad_answers


def payment_for(merchant: str, reference: str, default_state: str = "Authorized") -> Payment:
    """The payment a reference nobody seeded starts as (see the module docstring)."""
    payment = Payment(merchant, reference, default_state, amount_for(reference))
    found = scenario_of(reference)
    if found is None:
        return payment
    scenario, count = found
    keyword = scenario.prefix[:-1]
    payment.state = scenario.state or "None"
    if keyword == "unknown":
        payment.fixed_status = 404
    elif keyword == "forbidden":
        payment.fixed_status = 403
    elif keyword == "broken":
        payment.fixed_status = 503
    elif keyword == "nocancel":
        payment.cancel_refusal = 402
    elif keyword == "flaky":
        payment.faults.extend(["503"] * count)
    elif keyword == "throttled":
        payment.faults.extend(["429"] * count)
    elif keyword == "blocked":
        payment.cancel_faults.extend(["409"] * count)
    elif keyword == "reset":
        payment.cancel_faults.extend(["reset_before"] * count)
    elif keyword == "dropped":
        payment.cancel_faults.extend(["reset_after"] * count)
    elif keyword == "slow":
        payment.cancel_faults.extend(["slow_after"] * count)
    return payment


_SEED_KEYS = frozenset(
    {"merchant", "payment", "state", "faults", "cancel_faults", "exists", "amount", "currency"}
)


def _fault_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{where}: must be a list of fault kinds")
    unknown = [k for k in value if k not in FAULTS]
    if unknown:
        raise ValueError(f"{where}: unknown fault kinds {unknown}; known: {list(FAULT_KINDS)}")
    return list(value)


def parse_seed(data: object, default_state: str = "Authorized") -> dict[tuple[str, str], Payment]:
    """Payments from an already decoded seed document; ValueError says what is wrong."""
    if not isinstance(data, list):
        raise ValueError("seed file: the top level must be a JSON list of objects")
    payments: dict[tuple[str, str], Payment] = {}
    for i, entry in enumerate(data):
        where = f"seed file entry {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be an object")
        extra = set(entry) - _SEED_KEYS
        if extra:
            raise ValueError(f"{where}: unknown keys {sorted(extra)}")
        merchant, reference = entry.get("merchant"), entry.get("payment")
        if not isinstance(merchant, str) or not merchant:
            raise ValueError(f"{where}: 'merchant' must be a non-empty string")
        if not isinstance(reference, str) or not reference:
            raise ValueError(f"{where}: 'payment' must be a non-empty string")
        state = entry.get("state", default_state)
        if state not in PAYMENT_STATES:
            raise ValueError(f"{where}: state {state!r} is not one of {list(PAYMENT_STATES)}")
        amount = entry.get("amount", amount_for(reference))
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise ValueError(f"{where}: 'amount' must be a non-negative integer")
        currency = entry.get("currency", "EUR")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            raise ValueError(f"{where}: 'currency' must be three capital letters")
        exists = entry.get("exists", True)
        if not isinstance(exists, bool):
            raise ValueError(f"{where}: 'exists' must be true or false")
        payment = Payment(merchant, reference, state, amount, currency=currency)
        if not exists:
            payment.fixed_status = 404
        payment.faults.extend(_fault_list(entry.get("faults", []), f"{where} faults"))
        payment.cancel_faults.extend(
            _fault_list(entry.get("cancel_faults", []), f"{where} cancel_faults")
        )
        key = (merchant, reference)
        if key in payments:
            raise ValueError(f"{where}: ({merchant!r}, {reference!r}) is seeded twice")
        payments[key] = payment
    return payments


def load_seed_file(
    path: str | Path, default_state: str = "Authorized"
) -> dict[tuple[str, str], Payment]:
    """Read and check a seed file (format in the module docstring)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"seed file {path}: not valid JSON: {exc}") from exc
    return parse_seed(data, default_state)


def draw_fault(
    seed: int, merchant: str, reference: str, n: int, rate: float, kinds: tuple[str, ...]
) -> str | None:
    """The random fault for request number `n` of one payment, or None.

    The generator is seeded from the payment and its own request count, never from a
    shared stream, so the answer a reference gets does not depend on how the client
    interleaves its requests to other references.
    """
    if rate <= 0.0 or not kinds:
        return None
    rng = random.Random(f"{seed}:{merchant}:{reference}:{n}")
    if rng.random() >= rate:
        return None
    return rng.choice(kinds)


def scenarios_markdown() -> str:
    """The prefix table as Markdown, ready for a README."""
    lines = [
        "| prefix | first state | behaviour | expected outcome |",
        "|---|---|---|---|",
        "| (none) | Authorized | cancel 201, then 422; GET 200 | canceled |",
    ]
    for s in SCENARIOS:
        prefix = (
            f"`{s.prefix}`"
            if s.bad_answers is None
            else f"`{s.prefix[:-1]}[N]-` (N={s.bad_answers})"
        )
        lines.append(f"| {prefix} | {s.state or '(not found)'} | {s.behaviour} | {s.outcome} |")
    return "\n".join(lines)
