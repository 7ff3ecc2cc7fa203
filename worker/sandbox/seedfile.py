"""The JSON seed file (`SandboxConfig.seed_file`, `--seed FILE`): payments set up ahead.

A JSON list of objects:

    [{"merchant": "T123456", "payment": "order-1", "state": "Captured"},
     {"merchant": "T123456", "payment": "order-2", "faults": ["503", "reset_after"]},
     {"merchant": "T123456", "payment": "order-3", "cancel_faults": ["409", "409"]},
     {"merchant": "T123456", "payment": "order-4", "exists": false}]

Keys: `merchant`, `payment` (required strings); `state` (a PaymentResponse state,
default `SandboxConfig.default_state`); `faults` (fault kinds consumed one per request,
cancel or GET, in order); `cancel_faults` (consumed one per cancel, after `faults` are
used up); `exists` (false: 404 for everything); `amount` (int), `currency` (ISO 4217).
A seeded payment ignores the reference-prefix scenarios. Unknown keys, states or fault
kinds are errors, so a typo cannot silently turn into a plain authorized payment.
Every problem, including an unreadable file, is a ValueError naming the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from worker.sandbox.faults import FAULT_KINDS, FAULTS
from worker.sandbox.model import PAYMENT_STATES, Payment, amount_for

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


def parse_seed(
    data: object, default_state: str = "Authorized", source: str = "seed file"
) -> dict[tuple[str, str], Payment]:
    """Payments from an already decoded seed document; ValueError says what is wrong."""
    if not isinstance(data, list):
        raise ValueError(f"{source}: the top level must be a JSON list of objects")
    payments: dict[tuple[str, str], Payment] = {}
    for i, entry in enumerate(data):
        where = f"{source} entry {i}"
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
        payment = Payment(merchant, reference, state, amount, currency=currency, origin="seed file")
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
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"seed file {path}: cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"seed file {path}: not UTF-8 text: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"seed file {path}: not valid JSON: {exc}") from exc
    return parse_seed(data, default_state, f"seed file {path}")
