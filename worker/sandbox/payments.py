"""The two payment calls of Bambora's swagger: query (`GET .../payments/{p}/`) and
cancel (`POST .../payments/{p}/cancel/`), with the one state change the sandbox makes.

Order of checks: bearer token (401), scope (403), `API-Version` (400), segment
encoding and reference length (400), cancel body (415/400); then the payment: an
injected fault, fixed answers (`unknown-` 404, ...), the state rules. A fault either
answers instead of the work (nothing applied) or after it (applied, then a 500, a
dropped connection or a stall), which is what makes a careful client reconcile.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from aiohttp import web

from worker.sandbox.config import SandboxConfig
from worker.sandbox.faults import Fault, draw_fault, fault_for
from worker.sandbox.http import PAYMENT_NOT_FOUND, Route, drop, json_response, problem
from worker.sandbox.model import Payment
from worker.sandbox.state import RequestRecord, SandboxState
from worker.sandbox.tokens import TokenIssuer

MAX_REFERENCE = 2000  # swagger: path parameter `payment`, maxLength 2000
MAX_COMMENT = 256  # swagger: Cancel.comment, maxLength 256

_BEARER_REALM = 'Bearer realm="bambora-sandbox"'


class PaymentCalls:
    """Answers cancels and queries for the payments in `state`."""

    def __init__(self, config: SandboxConfig, state: SandboxState, tokens: TokenIssuer) -> None:
        self.config = config
        self.state = state
        self.tokens = tokens
        # Set on shutdown: stalled requests stop waiting and drop their connection.
        # Replaced on every start, since an asyncio.Event belongs to one event loop.
        self.stopping = asyncio.Event()

    async def handle(
        self, request: web.Request, where: Route, rec: RequestRecord
    ) -> web.StreamResponse:
        refused = self._refusal(request, where)
        if refused is not None:
            return refused
        comment: str | None = None
        if where.kind == "cancel":
            parsed = await _cancel_body(request)
            if isinstance(parsed, web.Response):
                return parsed
            comment = parsed

        payment = self.state.payment(where.merchant, where.reference)
        n = payment.requests
        payment.requests += 1
        fault, source = self._next_fault(payment, where.kind, n)

        if fault is not None and fault.before:
            rec.note = f"fault {fault.kind} [{source}]"
            return self._fault_answer(request, rec, fault)
        response, rec.note = self._apply(payment, where.kind, comment)
        if fault is None:
            if payment.origin:
                rec.note += f" [{payment.origin}]"
            return response
        if fault.stall:
            rec.note += f", then a {self.config.slow_delay:g} s stall [{source}]"
            self.state.finish(rec, "slow")
            if not await self._stall():
                return drop(request)
            return response
        rec.note += f", then fault {fault.kind} [{source}]"
        return self._fault_answer(request, rec, fault)

    def _refusal(self, request: web.Request, where: Route) -> web.Response | None:
        """The 401/403/400 a request gets before any payment is looked at, if any."""
        refused = self._check_bearer(request, where.kind)
        if refused is not None:
            return refused
        version = request.headers.get("API-Version")
        if version is None:
            return problem(400, "The API-Version header was not set.")
        if version.strip() != "1":
            return problem(400, f"API-Version {version!r} is not supported; use 1.")
        if where.bad_encoding:
            return problem(400, "A path segment is not valid percent-encoded UTF-8.")
        if len(where.reference) > MAX_REFERENCE:
            return problem(400, f"'{where.reference[:20]}...' is too long")
        return None

    def _check_bearer(self, request: web.Request, operation: str) -> web.Response | None:
        header = request.headers.get("Authorization")
        if header is None:
            return problem(
                401,
                "The Authorization header was not set.",
                headers={"WWW-Authenticate": _BEARER_REALM},
            )
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return problem(
                401,
                "The Authorization header is not a Bearer token.",
                headers={"WWW-Authenticate": _BEARER_REALM},
            )
        verdict = self.tokens.check(token.strip())
        if verdict.error:
            return problem(
                401,
                verdict.error,
                headers={"WWW-Authenticate": f'{_BEARER_REALM}, error="invalid_token"'},
            )
        needed = "cancel_payment" if operation == "cancel" else "read_payment"
        if needed not in verdict.scopes:
            return problem(403, f"The access token lacks the scope {needed!r}.")
        return None

    def _next_fault(self, payment: Payment, operation: str, n: int) -> tuple[Fault | None, str]:
        """The fault this request gets, if any, and where it came from (for the log)."""
        # Scripted faults (prefix or seed file) first; then the seeded random draw.
        kind: str | None = None
        source = payment.origin
        if payment.faults:
            kind = payment.faults.popleft()
        elif operation == "cancel" and payment.cancel_faults:
            kind = payment.cancel_faults.popleft()
        else:
            cfg = self.config
            kind = draw_fault(
                cfg.seed, payment.merchant, payment.payment, n, cfg.fault_rate, cfg.fault_kinds
            )
            source = "random"
        return (None if kind is None else fault_for(kind, operation)), source

    def _fault_answer(
        self, request: web.Request, rec: RequestRecord, fault: Fault
    ) -> web.StreamResponse:
        if fault.drop:
            self.state.finish(rec, "reset")
            return drop(request)
        status = fault.status or 500
        if status == 429:
            return problem(429, headers={"Retry-After": self.config.retry_after})
        return problem(status)

    def _apply(
        self, payment: Payment, operation: str, comment: str | None
    ) -> tuple[web.Response, str]:
        """The normal answer, and what happened in words; a good cancel changes the state."""
        if payment.fixed_status == 404:
            return problem(
                404,
                "No payment could be found, check that you used the correct payment identifier.",
                type_=PAYMENT_NOT_FOUND,
                title="Payment not found",
            ), "payment not found"
        if payment.fixed_status is not None:
            return problem(payment.fixed_status), f"always {payment.fixed_status}"
        if operation == "get":
            return json_response(200, payment.to_json()), f"state {payment.state}"
        if payment.cancel_refusal is not None:
            return problem(payment.cancel_refusal, ""), "cannot cancel"
        if payment.state != "Authorized":
            detail = f"A payment in state {payment.state} cannot be canceled."
            return problem(422, detail), f"not cancelable: state {payment.state}"
        # The only state change the sandbox makes; no await since the check above, so
        # two concurrent cancels cannot both get here.
        payment.state = "Canceled"
        if comment is not None:
            payment.comment = comment
        self.state.cancels_applied[(payment.merchant, payment.payment)] += 1
        self.state.notify()
        return json_response(201, payment.to_json()), "canceled"

    async def _stall(self) -> bool:
        """Wait `slow_delay` seconds; False if the server began stopping meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.slow_delay):
                await self.stopping.wait()
        return not self.stopping.is_set()


async def _cancel_body(request: web.Request) -> str | web.Response | None:
    """The optional comment of a cancel, or the 415/400 problem its body deserves."""
    body = await request.read()
    if not body.strip():
        return None
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        return problem(415, f"The body must be application/json, not {ctype}.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return problem(400, "The body is not valid JSON.")
    if not isinstance(data, dict):
        return problem(400, "The body must be a JSON object.")
    if "comment" not in data:
        return None
    comment = data["comment"]
    if not isinstance(comment, str):
        return problem(400, "'comment' must be a string.")
    if len(comment) > MAX_COMMENT:
        return problem(400, f"'comment' is too long ({len(comment)} > {MAX_COMMENT}).")
    return comment
