"""Helpers for the sandbox tests: URL building with every segment percent-encoded, and a
thin client that returns every answer (status, headers, decoded body) for inspection."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from worker.sandbox import SandboxServer

SCOPE = "cancel_payment read_payment"


def segment(text: str) -> str:
    """One path segment, every reserved or non-ASCII character percent-encoded.

    `quote` leaves `.` alone (it is unreserved), so a segment that is exactly `.` or
    `..` is spelled `%2E`/`%2E%2E`, or a URL library would collapse it.
    """
    if text in (".", ".."):
        return text.replace(".", "%2E")
    return quote(text, safe="")


def payment_url(base: str, merchant: str, reference: str, *, cancel: bool = False) -> URL:
    path = f"/v1/merchants/{segment(merchant)}/payments/{segment(reference)}/"
    if cancel:
        path += "cancel/"
    # encoded=True: yarl must send the path exactly as built (no re-quoting, no dot removal).
    return URL(base + path, encoded=True)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    content_type: str  # the full Content-Type header
    text: str
    body: Any = field(default=None)  # decoded JSON, if the body was JSON


async def read_answer(resp: aiohttp.ClientResponse) -> Answer:
    text = await resp.text()
    ctype = resp.headers.get("Content-Type", "")
    body: Any = None
    if text:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
    return Answer(resp.status, dict(resp.headers), ctype, text, body)


class Client:
    """Just enough of a Bambora client to drive the sandbox from tests."""

    def __init__(self, session: aiohttp.ClientSession, server: SandboxServer) -> None:
        self.session = session
        self.server = server
        self.merchant = "T123456"
        self._token: str | None = None

    async def token(self, scope: str | None = SCOPE) -> str:
        cfg = self.server.config
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        async with self.session.post(
            self.server.auth_url,
            data=form,
            headers={"Authorization": basic(cfg.client_id, cfg.client_secret)},
        ) as resp:
            assert resp.status == 200, await resp.text()
            token: str = (await resp.json())["access_token"]
        return token

    async def headers(self, token: str | None = None) -> dict[str, str]:
        if token is None:
            if self._token is None:
                self._token = await self.token()
            token = self._token
        return {"Authorization": f"Bearer {token}", "API-Version": "1"}

    async def cancel(
        self,
        reference: str,
        body: Any = None,
        *,
        merchant: str | None = None,
        headers: dict[str, str] | None = None,
        client_timeout: float | None = None,
    ) -> Answer:
        url = payment_url(self.server.url, merchant or self.merchant, reference, cancel=True)
        hdrs = headers if headers is not None else await self.headers()
        kwargs: dict[str, Any] = {"headers": hdrs}
        if body is not None:
            kwargs["json"] = body
        if client_timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=client_timeout)
        async with self.session.post(url, **kwargs) as resp:
            return await read_answer(resp)

    async def get(
        self,
        reference: str,
        *,
        merchant: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        url = payment_url(self.server.url, merchant or self.merchant, reference)
        hdrs = headers if headers is not None else await self.headers()
        async with self.session.get(url, headers=hdrs) as resp:
            return await read_answer(resp)

    async def raw(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, data: Any = None
    ) -> Answer:
        """A request to an exact raw path (sent as is)."""
        hdrs = headers if headers is not None else await self.headers()
        url = URL(self.server.url + path, encoded=True)
        async with self.session.request(method, url, headers=hdrs, data=data) as resp:
            return await read_answer(resp)
