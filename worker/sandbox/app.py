"""The sandbox's HTTP face: aiohttp.web handlers for the OAuth token endpoint, the two
payment calls of Bambora's swagger (query and cancel) and the `/_sandbox/` admin calls.

Routing is done here, by hand, on `request.raw_path`: the query is cut off, literal
`.`/`..` segments are resolved the way any web server would, and then each segment is
percent-decoded on its own. So a reference holding `/`, `?`, `#`, `%`, `%2E%2E` or
UTF-8 arrives as data, while a client that forgets to encode a `..` lands on another
path (a 404 here, someone else's payment in real life), exactly what tests must see.

Order of checks for an API call: outage, route (404/405), bearer token (401), scope
(403), `API-Version` (400), reference length (400), cancel body (415/400); then the
payment: injected fault, fixed answers (`unknown-` 404, ...), state rules.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

import orjson
from aiohttp import web

from worker.sandbox.config import SandboxConfig
from worker.sandbox.faults import Fault, draw_fault, fault_for
from worker.sandbox.model import Payment
from worker.sandbox.seedfile import load_seed_file
from worker.sandbox.state import RequestRecord, SandboxState
from worker.sandbox.tokens import DEFAULT_SCOPE, TokenIssuer

log = logging.getLogger(__name__)

ABOUT_BLANK = "about:blank"
TYPE_BASE = "https://api.bambora.com/definitions/payments/"
PAYMENT_NOT_FOUND = TYPE_BASE + "payment_not_found"
CANNOT_CANCEL = TYPE_BASE + "cannot_cancel"
OPERATION_BLOCKED = TYPE_BASE + "payment_operation_blocked"
INVALID_TRANSITION = TYPE_BASE + "invalid_payment_state_transition"

MAX_REFERENCE = 2000  # swagger: path parameter `payment`, maxLength 2000
MAX_COMMENT = 256  # swagger: Cancel.comment, maxLength 256
TOKEN_PATH = "/connect/token"
ADMIN_PREFIX = "/_sandbox/"

PROBLEM_JSON = "application/problem+json"

# Titles as in the swagger's examples where it has one, RFC 9110 reason phrases otherwise.
_TITLES = {
    400: "Bad Request",
    401: "Cannot authorize",
    402: "Cannot cancel",
    403: "Forbidden.",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Payment operation blocked",
    415: "Unsupported Media Type",
    422: "Invalid payment state transition",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_TYPES = {402: CANNOT_CANCEL, 409: OPERATION_BLOCKED, 422: INVALID_TRANSITION}
_DETAILS = {
    403: "You are not authorized for this operation with the authentication you have provided.",
    409: (
        "The payment was being modified by another request. The attempted operation could be"
        " retried again, or the payment could be queried to find out if its properties have"
        " changed."
    ),
    429: "Too many requests; retry after the time in the Retry-After header.",
    500: "An unexpected error occurred (sandbox fault injection).",
    503: "The service is temporarily unavailable (sandbox fault injection).",
}


def problem(
    status: int,
    detail: str | None = None,
    *,
    type_: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An `application/problem+json` answer with all four fields of the swagger's Error."""
    body = {
        "type": type_ or _TYPES.get(status, ABOUT_BLANK),
        "title": title or _TITLES.get(status, "Error"),
        "detail": detail if detail is not None else _DETAILS.get(status, ""),
        "status": status,
    }
    return web.Response(
        status=status, body=orjson.dumps(body), content_type=PROBLEM_JSON, headers=headers
    )


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


@dataclass(frozen=True, slots=True)
class Route:
    """Where a raw path leads. `kind` is "cancel", "get", "token" or "other" (404)."""

    kind: str
    method: str = ""  # the one method this path takes
    merchant: str = ""
    reference: str = ""
    bad_encoding: bool = False  # a segment is not valid UTF-8 once decoded


def resolve_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 on a raw path: literal `.` and `..` navigate, `%2E` stays data."""
    segments = path.split("/")
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if len(out) > 1:  # never pop the empty segment before the first "/"
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/".join(out)


def route(raw_path: str) -> Route:
    """Match `/v1/merchants/{merchant}/payments/{payment}/` and `.../cancel/` on a raw path."""
    path = resolve_dot_segments(raw_path.partition("?")[0].partition("#")[0])
    if path == TOKEN_PATH:
        return Route("token", "POST")
    seg = path.split("/")
    if len(seg) == 7 and seg[6] == "":
        kind, method = "get", "GET"
    elif len(seg) == 8 and seg[6] == "cancel" and seg[7] == "":
        kind, method = "cancel", "POST"
    else:
        return Route("other")
    if seg[:3] != ["", "v1", "merchants"] or seg[4] != "payments" or not seg[3] or not seg[5]:
        return Route("other")
    try:
        merchant = unquote(seg[3], errors="strict")
        reference = unquote(seg[5], errors="strict")
    except UnicodeDecodeError:
        return Route(kind, method, seg[3], seg[5], bad_encoding=True)
    return Route(kind, method, merchant, reference)


class SandboxApp:
    """The handlers and the little state they share beyond `SandboxState`."""

    def __init__(self, config: SandboxConfig, state: SandboxState) -> None:
        self.config = config
        self.state = state
        state.record_requests = config.record_requests
        state.default_state = config.default_state
        if config.seed_file:
            state.payments.update(load_seed_file(config.seed_file, config.default_state))
        self.tokens = TokenIssuer(config.token_ttl)
        self.outage_until = 0.0  # time.monotonic()
        self._outage_hits = 0
        # Set on shutdown: stalled requests stop waiting and drop their connection.
        self.stopping = asyncio.Event()

    def make_app(self) -> web.Application:
        app = web.Application()
        # One catch-all route: aiohttp's router works on the decoded path, which is
        # exactly what must not decide where a reference goes.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.dispatch)
        return app

    # -- outage control ---------------------------------------------------------------

    def start_outage(self, seconds: float) -> None:
        self.outage_until = time.monotonic() + max(0.0, seconds)

    def outage_remaining(self) -> float:
        return max(0.0, self.outage_until - time.monotonic())

    # -- dispatch -----------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.partition("?")[0]
        if path.startswith(ADMIN_PREFIX):
            return await self._admin(request, path)
        where = route(request.raw_path)
        kind = where.kind if request.method == where.method else "other"
        rec = self.state.record(
            request.method, where.merchant, where.reference, kind, request.raw_path
        )
        try:
            response = await self._answer(request, where, rec)
        except asyncio.CancelledError:
            self.state.finish(rec, "reset")  # server shutdown cut the request off
            raise
        except Exception:
            log.exception("sandbox handler failed for %s %s", request.method, request.raw_path)
            response = problem(500, "The sandbox itself failed; see its log.")
        self.state.finish(rec, response.status)
        return response

    async def _answer(
        self, request: web.Request, where: Route, rec: RequestRecord
    ) -> web.StreamResponse:
        if self.outage_remaining() > 0:
            return await self._outage_answer(request, rec)
        if where.kind == "other":
            return problem(404, f"No API resource at {request.raw_path.partition('?')[0]}")
        if request.method != where.method:
            return problem(
                405, f"{request.method} is not allowed here.", headers={"Allow": where.method}
            )
        if where.kind == "token":
            return await self._token(request)
        return await self._payment_call(request, where, rec)

    async def _outage_answer(self, request: web.Request, rec: RequestRecord) -> web.StreamResponse:
        # Alternate 503 and a dropped connection, so a client meets both during one outage.
        self._outage_hits += 1
        if self._outage_hits % 2 == 1:
            return problem(503, "The sandbox is in a simulated outage.")
        await request.read()  # take the whole request first, like a backend dying mid-call
        return self._drop(request, rec)

    def _drop(self, request: web.Request, rec: RequestRecord) -> web.StreamResponse:
        """Close the connection without an answer; the client sees a server disconnect."""
        transport = request.transport
        if transport is not None:
            transport.abort()
        self.state.finish(rec, "reset")
        # aiohttp writes this to the closed transport and quietly drops it.
        return web.Response(status=204)

    # -- the payment calls ------------------------------------------------------------

    def _check_bearer(self, request: web.Request, operation: str) -> web.Response | None:
        header = request.headers.get("Authorization")
        if header is None:
            return problem(
                401,
                "The Authorization header was not set.",
                headers={"WWW-Authenticate": 'Bearer realm="bambora-sandbox"'},
            )
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return problem(
                401,
                "The Authorization header is not a Bearer token.",
                headers={"WWW-Authenticate": 'Bearer realm="bambora-sandbox"'},
            )
        verdict = self.tokens.check(token.strip())
        if verdict.error:
            return problem(
                401,
                verdict.error,
                headers={
                    "WWW-Authenticate": 'Bearer realm="bambora-sandbox", error="invalid_token"'
                },
            )
        needed = "cancel_payment" if operation == "cancel" else "read_payment"
        if needed not in verdict.scopes:
            return problem(403, f"The access token lacks the scope {needed!r}.")
        return None

    async def _payment_call(
        self, request: web.Request, where: Route, rec: RequestRecord
    ) -> web.StreamResponse:
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
        comment: str | None = None
        if where.kind == "cancel":
            parsed = await self._cancel_body(request)
            if isinstance(parsed, web.Response):
                return parsed
            comment = parsed

        payment = self.state.payment(where.merchant, where.reference)
        n = payment.requests
        payment.requests += 1
        if where.kind == "cancel":
            payment.cancels += 1
        fault = self._next_fault(payment, where.kind, n)

        if fault is not None and fault.before:
            return self._fault_answer(request, rec, fault)
        response = self._apply(payment, where.kind, comment)
        if fault is None:
            return response
        if fault.stall:
            self.state.finish(rec, "slow")
            if not await self._stall():
                return self._drop(request, rec)
            return response
        return self._fault_answer(request, rec, fault)

    async def _cancel_body(self, request: web.Request) -> str | web.Response | None:
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

    def _next_fault(self, payment: Payment, operation: str, n: int) -> Fault | None:
        # Scripted faults (prefix or seed file) first; then the seeded random draw.
        kind: str | None = None
        if payment.faults:
            kind = payment.faults.popleft()
        elif operation == "cancel" and payment.cancel_faults:
            kind = payment.cancel_faults.popleft()
        else:
            cfg = self.config
            kind = draw_fault(
                cfg.seed, payment.merchant, payment.payment, n, cfg.fault_rate, cfg.fault_kinds
            )
        return None if kind is None else fault_for(kind, operation)

    def _fault_answer(
        self, request: web.Request, rec: RequestRecord, fault: Fault
    ) -> web.StreamResponse:
        if fault.drop:
            return self._drop(request, rec)
        status = fault.status or 500
        if status == 429:
            return problem(429, headers={"Retry-After": self.config.retry_after})
        return problem(status)

    def _apply(self, payment: Payment, operation: str, comment: str | None) -> web.Response:
        """The normal answer, changing the payment's state if this is a good cancel."""
        if payment.fixed_status == 404:
            return problem(
                404,
                "No payment could be found, check that you used the correct payment identifier.",
                type_=PAYMENT_NOT_FOUND,
                title="Payment not found",
            )
        if payment.fixed_status is not None:
            return problem(payment.fixed_status)
        if operation == "get":
            return json_response(200, payment.to_json())
        if payment.cancel_refusal is not None:
            return problem(payment.cancel_refusal, "")
        if payment.state != "Authorized":
            return problem(422, f"A payment in state {payment.state} cannot be canceled.")
        # The only state change the sandbox makes; no await since the check above, so
        # two concurrent cancels cannot both get here.
        payment.state = "Canceled"
        if comment is not None:
            payment.comment = comment
        self.state.cancels_applied[(payment.merchant, payment.payment)] += 1
        self.state.notify()
        return json_response(201, payment.to_json())

    async def _stall(self) -> bool:
        """Wait `slow_delay` seconds; False if the server began stopping meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.slow_delay):
                await self.stopping.wait()
        return not self.stopping.is_set()

    # -- OAuth token endpoint ------------------------------------------------------------

    def _client_ok(self, client_id: str, secret: str) -> bool:
        cfg = self.config
        # compare_digest on bytes: str arguments must be ASCII.
        id_ok = hmac.compare_digest(client_id.encode(), cfg.client_id.encode())
        secret_ok = hmac.compare_digest(secret.encode(), cfg.client_secret.encode())
        return id_ok and secret_ok

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        header = request.headers.get("Authorization")
        if header is not None:
            # RFC 6749 2.3.1: Basic credentials are form-encoded before base64; curl -u
            # sends them raw. Accept either spelling.
            scheme, _, value = header.strip().partition(" ")
            try:
                if scheme.lower() != "basic":
                    raise ValueError(scheme)
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (ValueError, binascii.Error):
                return self._oauth_error(401, "invalid_client", "Malformed Basic credentials.")
            user, _, password = decoded.partition(":")
            if not (
                self._client_ok(user, password)
                or self._client_ok(unquote_plus(user), unquote_plus(password))
            ):
                return self._oauth_error(401, "invalid_client", "Unknown client or bad secret.")
        else:
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if not isinstance(client_id, str) or not isinstance(secret, str):
                return self._oauth_error(400, "invalid_client", "No client credentials given.")
            if not self._client_ok(client_id, secret):
                return self._oauth_error(400, "invalid_client", "Unknown client or bad secret.")
        grant = form.get("grant_type")
        if not isinstance(grant, str) or not grant:
            return self._oauth_error(400, "invalid_request", "grant_type is missing.")
        if grant != "client_credentials":
            return self._oauth_error(
                400, "unsupported_grant_type", "Only client_credentials is supported."
            )
        scope_field = form.get("scope")
        scope = " ".join(scope_field.split()) if isinstance(scope_field, str) else ""
        scope = scope or DEFAULT_SCOPE
        token = self.tokens.issue(self.config.client_id, scope)
        self.state.tokens_issued += 1
        return json_response(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(self.config.token_ttl),
                "scope": scope,
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _oauth_error(self, status: int, error: str, description: str) -> web.Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="bambora-sandbox"'
        return json_response(status, {"error": error, "error_description": description}, headers)

    # -- admin ------------------------------------------------------------------------------

    async def _admin(self, request: web.Request, path: str) -> web.StreamResponse:
        """Unauthenticated controls for a test driving a sandbox in another process."""
        if path == "/_sandbox/state":
            if request.method != "GET":
                return problem(405, headers={"Allow": "GET"})
            summary = self.state.summary()
            summary["outage_remaining"] = round(self.outage_remaining(), 3)
            summary["fault_rate"] = self.config.fault_rate
            return json_response(200, summary)
        if path == "/_sandbox/outage":
            if request.method != "POST":
                return problem(405, headers={"Allow": "POST"})
            try:
                seconds = float(request.query.get("seconds", ""))
            except ValueError:
                seconds = -1.0
            if not 0.0 <= seconds <= 86400.0:
                return problem(400, "Give ?seconds=S with 0 <= S <= 86400 (0 ends an outage).")
            self.start_outage(seconds)
            return json_response(200, {"outage_seconds": seconds})
        if path == "/_sandbox/expire_tokens":
            if request.method != "POST":
                return problem(405, headers={"Allow": "POST"})
            self.tokens.expire_all()
            return json_response(200, {"expired": True})
        return problem(404, f"No admin resource at {path}")
