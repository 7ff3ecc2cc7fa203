"""A Bambora Payments API sandbox (aiohttp.web) for tests, demos and `--sandbox` runs;
`cancel-worker sandbox` (`worker.sandbox.cli`) runs it alone.

It answers the way `payments-api.swagger.json` says (statuses, problem+json bodies,
PaymentResponse), issues real HS256 JWTs, and plays scripted or seeded-random trouble:
reference prefixes are the table in `worker.sandbox.scenarios`, the seed file is
described in `worker.sandbox.seedfile`, fault kinds in `worker.sandbox.faults`.
It imports nothing from the rest of `worker`, so the worker cannot pass its tests by
sharing a mistake with the sandbox.
"""

from worker.sandbox.config import DEFAULT_FAULT_KINDS, SandboxConfig
from worker.sandbox.faults import FAULT_KINDS
from worker.sandbox.model import PAYMENT_STATES, Payment
from worker.sandbox.scenarios import SCENARIOS, Scenario, scenarios_markdown
from worker.sandbox.seedfile import load_seed_file
from worker.sandbox.server import SandboxServer
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
    "scenarios_markdown",
]
