"""API client: the only module that knows Bambora's URLs, headers and encodings.

The session it sends over comes from `session.make_session` (pool, proxy, trusted
CAs); the `--timeout` of each call is kept by `deadline.Deadlines`.

It turns one call (cancel or query) into a `Reply`, a plain value that says what came
back: an HTTP status with the problem+json fields and the payment state, or the kind
of transport trouble and whether the request may have reached the server. It never
decides what a reply *means*: that is `decide.decide`.
"""

from __future__ import annotations

import email.utils
import re
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import yarl
from multidict import CIMultiDict

from worker.bambora.deadline import Deadlines
from worker.model import DETAIL_LIMIT, NO_PAYMENT_STATE, Op, Reply

API_VERSION = "1"
MAX_RETRY_AFTER = 60.0
#: Characters `quote(safe="")` leaves as they are: most references are only these.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+")


def segment(value: str) -> str:
    """Percent-encode text as exactly one path segment.

    `quote(safe="")` encodes `/ ? # %`, spaces and non-ASCII; `.` and `..` are
    unreserved yet special to every URL resolver, so they are encoded by hand.
    """
    if value.isascii() and value.isalnum():  # letters and digits: the usual reference
        return value
    if value in (".", ".."):
        return "%2E" * len(value)
    if _UNRESERVED.fullmatch(value):  # what quote() would return, at a third of its cost
        return value
    return quote(value, safe="")


def payment_url(root: yarl.URL, merchant: str, reference: str, op: Op) -> yarl.URL:
    """The payment's URL under the API's root URL (which may have a path of its own).

    `encoded=True` stops yarl from normalising the path (docs/pitfalls.md). `with_path`
    on the parsed root costs a quarter of parsing each URL whole (yarl caches parses,
    and references never repeat).
    """
    tail = "cancel/" if op is Op.CANCEL else ""
    payment = f"/v1/merchants/{segment(merchant)}/payments/{segment(reference)}/{tail}"
    return root.with_path(root.raw_path.rstrip("/") + payment, encoded=True)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


Headers = CIMultiDict[str]


class ApiClient:
    """Sends cancels and queries over one shared aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, deadlines: Deadlines) -> None:
        """`session` comes from `make_session`; `deadlines` bound each whole call."""
        self._session = session
        self._root = yarl.URL(base_url, encoded=True)  # as configured, not normalised
        self._deadlines = deadlines
        # Headers are built once per token, not once per request (hot path), and as
        # aiohttp's own type, which it would otherwise convert to on every request.
        self._headers_for: tuple[str, Headers, Headers] | None = None

    def _headers(self, token: str, with_body: bool) -> Headers:
        cached = self._headers_for
        if cached is None or cached[0] != token:
            plain = {
                "Authorization": f"Bearer {token}",
                "API-Version": API_VERSION,
                "Accept": "application/json",
            }
            with_type = {**plain, "Content-Type": "application/json"}
            cached = (token, CIMultiDict(plain), CIMultiDict(with_type))
            self._headers_for = cached
        return cached[2] if with_body else cached[1]

    async def call(
        self, op: Op, merchant: str, reference: str, token: str, comment: str | None = None
    ) -> Reply:
        url = payment_url(self._root, merchant, reference, op)
        data: bytes | None = None
        if op is Op.CANCEL and comment:
            data = orjson.dumps({"comment": comment})
        headers = self._headers(token, data is not None)
        method = "POST" if op is Op.CANCEL else "GET"
        try:
            with self._deadlines:
                # Awaited, not `async with`: the context manager's two extra coroutines
                # cost more than `release` (the body is read whole, or the call failed).
                response = await self._session.request(
                    method, url, headers=headers, data=data, allow_redirects=False
                )
                try:
                    body = await response.read()
                finally:
                    response.release()
                return self._reply(response, body, op)
        except (TimeoutError, aiohttp.ServerTimeoutError):  # connecting included: maybe sent
            return Reply(None, "timeout", detail="no answer within the timeout")
        except aiohttp.ClientConnectorError as exc:
            return Reply(None, "connection_error", detail=_describe(exc), maybe_sent=False)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            return Reply(None, "disconnected", detail=_describe(exc))
        except aiohttp.ClientError as exc:
            return Reply(None, "connection_error", detail=_describe(exc))

    @staticmethod
    def _reply(response: aiohttp.ClientResponse, body: bytes, op: Op) -> Reply:
        doc: Any = None
        if body:
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                doc = None
        fields = doc if isinstance(doc, dict) else {}
        status = response.status
        problem = status >= 400
        state = None if problem else _text(fields.get("state"))
        if problem:
            error_type = _text(fields.get("type"))
        elif op is Op.QUERY and status == 200 and not state:
            error_type = NO_PAYMENT_STATE  # a web page, an empty or a garbled body
        else:
            error_type = None
        return Reply(
            status,
            error_type=error_type,
            title=_text(fields.get("title")) if problem else None,
            detail=_text(fields.get("detail")) if problem else None,
            payment_state=state,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            amount=None if problem else _minor_units(fields.get("amount")),
            currency=None if problem else _text(fields.get("currency")),
        )


def _minor_units(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:DETAIL_LIMIT]
