"""A Bambora Payments API sandbox (aiohttp.web) for tests, demos and `--sandbox` runs.

It answers the way `payments-api.swagger.json` says (statuses, problem+json bodies,
PaymentResponse), issues real HS256 JWTs, and plays scripted or seeded-random trouble:
reference prefixes and the seed file are described in `worker.sandbox.scenarios`.
It imports nothing from the rest of `worker`, so the worker cannot pass its tests by
sharing a mistake with the sandbox.
"""

from worker.sandbox.config import DEFAULT_FAULT_KINDS, SandboxConfig
from worker.sandbox.scenarios import (
    FAULT_KINDS,
    PAYMENT_STATES,
    SCENARIOS,
    Payment,
    Scenario,
    load_seed_file,
    scenarios_markdown,
)
from worker.sandbox.server import SandboxServer, main, run_sandbox
from worker.sandbox.state import RequestRecord, SandboxState

__all__ = [
    "DEFAULT_FAULT_KINDS",
    "FAULT_KINDS",
    "PAYMENT_STATES",
    "SCENARIOS",
    "Payment",
    "RequestRecord",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "Scenario",
    "load_seed_file",
    "main",
    "run_sandbox",
    "scenarios_markdown",
]
