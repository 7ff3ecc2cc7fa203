"""HTTP plumbing shared by every endpoint: routing on the raw path, and the answer shapes.

Routing is done here, by hand, on `request.raw_path`: the query is cut off, literal
`.`/`..` segments are resolved the way any web server would, and then each segment is
percent-decoded on its own. So a reference holding `/`, `?`, `#`, `%`, `%2E%2E` or
UTF-8 arrives as data, while a client that forgets to encode a `..` lands on another
path (a 404 here, someone else's payment in real life), exactly what tests must see.
aiohttp's own router works on the decoded path, which is why it is not used for this.

Answers: `problem()` builds the swagger's Error as application/problem+json with
Bambora's `type` URLs and titles; `drop()` closes a connection without an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

TOKEN_PATH = "/connect/token"
ADMIN_PREFIX = "/_sandbox/"

ABOUT_BLANK = "about:blank"
TYPE_BASE = "https://api.bambora.com/definitions/payments/"
PAYMENT_NOT_FOUND = TYPE_BASE + "payment_not_found"
CANNOT_CANCEL = TYPE_BASE + "cannot_cancel"
OPERATION_BLOCKED = TYPE_BASE + "payment_operation_blocked"
INVALID_TRANSITION = TYPE_BASE + "invalid_payment_state_transition"

PROBLEM_JSON = "application/problem+json"

#: What an answer means in a few words, kept on the response for the request log
#: (a problem's `detail` unless the handler says more).
NOTE = web.ResponseKey("note", str)

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
    if detail is None:
        detail = _DETAILS.get(status, "")
    body = {
        "type": type_ or _TYPES.get(status, ABOUT_BLANK),
        "title": title or _TITLES.get(status, "Error"),
        "detail": detail,
        "status": status,
    }
    response = web.Response(
        status=status, body=orjson.dumps(body), content_type=PROBLEM_JSON, headers=headers
    )
    response[NOTE] = detail
    return response


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer; the client sees a server disconnect."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    # aiohttp writes this to the closed transport and quietly drops it.
    return web.Response(status=204)


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
