"""Unauthenticated `/_sandbox/` controls, for a test driving a sandbox in another process.

    GET  /_sandbox/state                counts of requests, cancels, tokens, payments
    POST /_sandbox/outage?seconds=S     503 or dropped connection to everything for S s
    POST /_sandbox/expire_tokens        every token issued so far is refused from now on

They are not Bambora's, so they are kept out of the request records and counts.
"""

from __future__ import annotations

from aiohttp import web

from worker.sandbox.config import SandboxConfig
from worker.sandbox.http import json_response, problem
from worker.sandbox.state import SandboxState
from worker.sandbox.tokens import TokenIssuer

MAX_OUTAGE = 86400.0


class AdminCalls:
    """Answers the `/_sandbox/` paths."""

    def __init__(self, config: SandboxConfig, state: SandboxState, tokens: TokenIssuer) -> None:
        self.config = config
        self.state = state
        self.tokens = tokens

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        if path == "/_sandbox/state":
            if request.method != "GET":
                return problem(405, headers={"Allow": "GET"})
            summary = self.state.summary()
            summary["outage_remaining"] = round(self.state.outage_remaining(), 3)
            summary["fault_rate"] = self.config.fault_rate
            return json_response(200, summary)
        if path == "/_sandbox/outage":
            if request.method != "POST":
                return problem(405, headers={"Allow": "POST"})
            try:
                seconds = float(request.query.get("seconds", ""))
            except ValueError:
                seconds = -1.0
            if not 0.0 <= seconds <= MAX_OUTAGE:  # also refuses nan
                return problem(400, "Give ?seconds=S with 0 <= S <= 86400 (0 ends an outage).")
            self.state.start_outage(seconds)
            return json_response(200, {"outage_seconds": seconds})
        if path == "/_sandbox/expire_tokens":
            if request.method != "POST":
                return problem(405, headers={"Allow": "POST"})
            self.tokens.expire_all()
            return json_response(200, {"expired": True})
        return problem(404, f"No admin resource at {path}")
