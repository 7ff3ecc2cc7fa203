"""The aiohttp application: one catch-all route, the outage gate, the request records.

`SandboxApp.dispatch` sees every request first. Admin paths go to `admin`; everything
else is recorded in `SandboxState` (so tests can see exactly what arrived), then meets
an outage if one is on, then is routed on its raw path (404/405 here) to the token
endpoint (`oauth`) or the payment calls (`payments`). A handler that fails unexpectedly
becomes a logged 500 problem, never a bare aiohttp error page.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from worker.sandbox.admin import AdminCalls
from worker.sandbox.config import SandboxConfig
from worker.sandbox.http import ADMIN_PREFIX, NOTE, Route, drop, problem, route
from worker.sandbox.oauth import TokenEndpoint
from worker.sandbox.payments import PaymentCalls
from worker.sandbox.seedfile import load_seed_file
from worker.sandbox.state import RequestRecord, SandboxState, log_request
from worker.sandbox.tokens import TokenIssuer

log = logging.getLogger(__name__)


class SandboxApp:
    """The endpoints and what they share: config, state and the token issuer."""

    def __init__(self, config: SandboxConfig, state: SandboxState) -> None:
        self.config = config
        self.state = state
        state.record_requests = config.record_requests
        state.default_state = config.default_state
        if config.seed_file:
            state.payments.update(load_seed_file(config.seed_file, config.default_state))
        self.tokens = TokenIssuer(config.token_ttl)
        self.oauth = TokenEndpoint(config, state, self.tokens)
        self.payments = PaymentCalls(config, state, self.tokens)
        self.admin = AdminCalls(config, state, self.tokens)

    def make_app(self) -> web.Application:
        """A fresh application; call it inside the event loop that will serve it."""
        self.payments.stopping = asyncio.Event()
        app = web.Application()
        # One catch-all route: aiohttp's router works on the decoded path, which is
        # exactly what must not decide where a reference goes.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.dispatch)
        return app

    def release_stalls(self) -> None:
        """Stalled requests drop their connections now (the server is stopping)."""
        self.payments.stopping.set()

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.partition("?")[0]
        if path.startswith(ADMIN_PREFIX):
            response = await self.admin.handle(request, path)
            log_request(request.method, request.raw_path, response.status, "admin")
            return response
        where = route(request.raw_path)
        kind = where.kind if request.method == where.method else "other"
        rec = self.state.record(
            request.method, where.merchant, where.reference, kind, request.raw_path
        )
        try:
            response = await self._answer(request, where, rec)
        except asyncio.CancelledError:
            rec.note = "server stopping"
            self.state.finish(rec, "reset")  # server shutdown cut the request off
            raise
        except Exception:
            log.exception("sandbox handler failed for %s %s", request.method, request.raw_path)
            response = problem(500, "The sandbox itself failed; see its log.")
        rec.note = rec.note or response.get(NOTE, "")
        self.state.finish(rec, response.status)
        return response

    async def _answer(
        self, request: web.Request, where: Route, rec: RequestRecord
    ) -> web.StreamResponse:
        if self.state.outage_remaining() > 0:
            return await self._outage_answer(request, rec)
        if where.kind == "other":
            return problem(404, f"No API resource at {request.raw_path.partition('?')[0]}")
        if request.method != where.method:
            return problem(
                405, f"{request.method} is not allowed here.", headers={"Allow": where.method}
            )
        if where.kind == "token":
            return await self.oauth.handle(request)
        return await self.payments.handle(request, where, rec)

    async def _outage_answer(self, request: web.Request, rec: RequestRecord) -> web.StreamResponse:
        # Alternate 503 and a dropped connection, so a client meets both during one outage.
        self.state.outage_hits += 1
        if self.state.outage_hits % 2 == 1:
            return problem(503, "The sandbox is in a simulated outage.")
        await request.read()  # take the whole request first, like a backend dying mid-call
        rec.note = "simulated outage: connection dropped"
        self.state.finish(rec, "reset")
        return drop(request)
