"""Injected faults: what each fault kind does to an answer, and the seeded random draw.

Fault kinds (seed files, `SandboxConfig.fault_kinds`, `--fault-kinds`): `503`, `500`,
`429` (with Retry-After), `409` and `reset_before` answer without applying anything;
`500_after_apply`, `reset_after` and `slow_after` first do the normal work (a cancel of
an Authorized payment is applied) and then answer 500, drop the connection, or stall
`slow_delay` seconds before the normal answer. A GET applies nothing, so for a GET the
`_after` kinds behave like their plain forms, and `409` (which Bambora does not send for
a query) is ignored.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


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
