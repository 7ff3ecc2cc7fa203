"""The sandbox's settings: credentials, token lifetime, stalls and fault injection."""

from __future__ import annotations

from dataclasses import dataclass

from worker.sandbox.faults import FAULT_KINDS
from worker.sandbox.model import PAYMENT_STATES

DEFAULT_FAULT_KINDS: tuple[str, ...] = (
    "503",
    "500_after_apply",
    "429",
    "409",
    "reset_before",
    "reset_after",
    "slow_after",
)


@dataclass
class SandboxConfig:
    """How one sandbox behaves. Same config + same requests -> same answers."""

    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    #: Seconds a token lives; also `expires_in` in the token answer.
    token_ttl: float = 3600.0
    #: Seconds a `slow-` reference (or a `slow_after` fault) stalls before answering.
    slow_delay: float = 20.0
    #: Seeds every random draw.
    seed: int = 0
    #: Probability that a cancel or GET gets a random fault from `fault_kinds`.
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    #: Retry-After sent with 429s: seconds or an HTTP date.
    retry_after: str = "1"
    #: JSON seed file (format in `worker.sandbox.seedfile`).
    seed_file: str | None = None
    #: State of a reference with no prefix and no seed entry.
    default_state: str = "Authorized"
    #: Keep a `RequestRecord` per request; turn off for very long benchmark runs,
    #: the per-kind/status counts are kept either way.
    record_requests: bool = True

    def __post_init__(self) -> None:
        # Fail at construction, not on the first request, so a typo in a test or on
        # the command line is reported where it was made.
        self.fault_kinds = tuple(self.fault_kinds)
        unknown = [k for k in self.fault_kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {list(FAULT_KINDS)}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        if self.token_ttl <= 0 or self.slow_delay < 0:
            raise ValueError("token_ttl must be positive and slow_delay not negative")
        if self.default_state not in PAYMENT_STATES:
            raise ValueError(f"default_state must be one of {list(PAYMENT_STATES)}")
