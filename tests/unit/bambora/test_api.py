"""API client: URLs, encoding, headers, bodies and transport trouble, as sent on the wire."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import yarl
from aiohttp import web
from aioresponses import aioresponses

from tests.support import answering
from worker.bambora.api import ApiClient, parse_retry_after, payment_url, segment
from worker.bambora.deadline import Deadlines
from worker.bambora.session import make_session
from worker.model import Op

NASTY = ["a/b", "q?x=1", "frag#1", "100%", "sp ace", ".", "..", "Zürich€", "a+b", "x;y", "~t"]


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("a/b", "a%2Fb"),
        ("q?x", "q%3Fx"),
        ("f#1", "f%231"),
        ("100%", "100%25"),
        ("sp ace", "sp%20ace"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("...", "..."),
        ("é", "%C3%A9"),
        ("plain-1_2.3~", "plain-1_2.3~"),
        ("BENCH000123abc", "BENCH000123abc"),
        ("Zürich1", "Z%C3%BCrich1"),  # a letter, yet not ASCII: encoded
        ("٣٤", "%D9%A3%D9%A4"),  # digits, yet not ASCII: encoded
    ],
)
def test_segment(raw: str, encoded: str) -> None:
    assert segment(raw) == encoded


@pytest.mark.parametrize("seed", range(5))
def test_segment_is_what_quote_gives_for_any_text(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = "aZ09-._~/?#%+;: éü€٣\t"
    for _ in range(2000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 8)))
        expected = "%2E" * len(raw) if raw in (".", "..") else quote(raw, safe="")
        assert segment(raw) == expected


def test_payment_url_keeps_encoding_exactly() -> None:
    url = payment_url(yarl.URL("https://api.example"), "T/1", "..", Op.CANCEL)
    assert url.raw_path == "/v1/merchants/T%2F1/payments/%2E%2E/cancel/"
    assert str(payment_url(yarl.URL("https://api.example/"), "T1", "r", Op.QUERY)) == (
        "https://api.example/v1/merchants/T1/payments/r/"
    )


def test_payment_url_keeps_the_roots_own_path() -> None:
    root = yarl.URL("https://gw.example:8443/bambora/")
    assert str(payment_url(root, "T1", "a b", Op.CANCEL)) == (
        "https://gw.example:8443/bambora/v1/merchants/T1/payments/a%20b/cancel/"
    )


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("999") == 60.0  # capped
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=0.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A real loopback server that records the raw path, headers and body of each request."""
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        return web.json_response({"state": "Canceled"}, status=201)

    async with answering(handler) as url:
        yield url, seen


async def test_every_reference_reaches_its_own_path(
    echo_server: tuple[str, list[dict[str, Any]]],
) -> None:
    base, seen = echo_server
    async with make_session(concurrency=4) as session:
        client = ApiClient(session, base, Deadlines(5))
        for ref in NASTY:
            reply = await client.call(Op.CANCEL, "T 1/x", ref, "tok")
            assert reply.status == 201
    assert [s["raw_path"] for s in seen] == [
        f"/v1/merchants/T%201%2Fx/payments/{segment(ref)}/cancel/" for ref in NASTY
    ]


async def test_headers_and_optional_comment_body(
    echo_server: tuple[str, list[dict[str, Any]]],
) -> None:
    base, seen = echo_server
    async with make_session(concurrency=4) as session:
        client = ApiClient(session, base, Deadlines(5))
        await client.call(Op.CANCEL, "T1", "r1", "jwt-value", comment="end of day")
        await client.call(Op.CANCEL, "T1", "r2", "jwt-value")
        await client.call(Op.QUERY, "T1", "r3", "jwt-value")
    first, second, third = seen
    assert first["method"] == "POST" and first["headers"]["Authorization"] == "Bearer jwt-value"
    assert first["headers"]["API-Version"] == "1"
    assert first["headers"]["Content-Type"] == "application/json"
    assert first["body"] == b'{"comment":"end of day"}'
    assert second["body"] == b"" and "Content-Type" not in second["headers"]
    assert third["method"] == "GET" and third["raw_path"] == "/v1/merchants/T1/payments/r3/"
    assert third["headers"]["API-Version"] == "1"


@asynccontextmanager
async def answering_in_turn(*answers: web.Response) -> AsyncIterator[str]:
    """A loopback server that gives `answers` in order, one per request, whatever the
    path (the client's own paths are checked above)."""
    left = list(answers)

    async def handler(request: web.Request) -> web.Response:
        return left.pop(0)

    async with answering(handler) as url:
        yield url


async def test_problem_json_is_parsed() -> None:
    problem = {
        "type": "https://api.bambora.com/definitions/payments/invalid_payment_state_transition",
        "title": "Invalid payment state transition",
        "detail": "",
        "status": 422,
    }
    answer = web.json_response(
        problem,
        status=422,
        content_type="application/problem+json",
        headers={"Retry-After": "7"},
    )
    async with (
        answering_in_turn(answer) as base,
        make_session(concurrency=4) as session,
    ):
        reply = await ApiClient(session, base, Deadlines(5)).call(Op.CANCEL, "T1", "r1", "t")
    assert reply.status == 422
    assert reply.error_type and reply.error_type.endswith("invalid_payment_state_transition")
    assert reply.title == "Invalid payment state transition"
    assert reply.retry_after == 7.0 and reply.payment_state is None


async def test_query_reads_state_and_ignores_garbage() -> None:
    ok_answer = web.json_response({"state": "Captured", "payment": "r1"}, status=200)
    bad_answer = web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")
    async with (
        answering_in_turn(ok_answer, bad_answer) as base,
        make_session(concurrency=4) as session,
    ):
        client = ApiClient(session, base, Deadlines(5))
        ok = await client.call(Op.QUERY, "T1", "r1", "t")
        bad = await client.call(Op.QUERY, "T1", "r1", "t")
    assert ok.payment_state == "Captured" and ok.error_type is None
    assert bad.status == 502 and bad.error_type is None and bad.detail is None


# aioresponses raises these exact client errors in place of the request; no loopback
# server can produce each of them on demand. (Its mocked *answers* need aiohttp < 3.14:
# see docs/development.md.)
@pytest.mark.parametrize(
    ("exc", "kind", "maybe_sent"),
    [
        (TimeoutError(), "timeout", True),
        (aiohttp.ServerDisconnectedError(), "disconnected", True),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), "disconnected", True),
        (aiohttp.ClientPayloadError("truncated"), "connection_error", True),
    ],
)
async def test_transport_trouble(exc: Exception, kind: str, maybe_sent: bool) -> None:
    with aioresponses() as mocked:
        mocked.post("https://api.test/v1/merchants/T1/payments/r1/cancel/", exception=exc)
        async with make_session(concurrency=4) as session:
            reply = await ApiClient(session, "https://api.test", Deadlines(5)).call(
                Op.CANCEL, "T1", "r1", "t"
            )
    assert reply.status is None and reply.error_type == kind and reply.maybe_sent is maybe_sent


async def test_refused_connection_was_not_sent() -> None:
    async with make_session(concurrency=4) as session:
        # port 9 on loopback: nothing listens, so the connect itself fails
        reply = await ApiClient(session, "http://127.0.0.1:9", Deadlines(5)).call(
            Op.CANCEL, "T1", "r", "t"
        )
    assert reply.error_type == "connection_error" and reply.maybe_sent is False


async def test_timeout_is_reported_as_timeout() -> None:
    async def slow(request: web.Request) -> web.Response:
        import asyncio

        await asyncio.sleep(5)
        return web.Response(status=201)

    async with answering(slow) as url, make_session(concurrency=4) as session:
        reply = await ApiClient(session, url, Deadlines(0.2)).call(Op.CANCEL, "T1", "r", "t")
    assert reply.error_type == "timeout" and reply.maybe_sent is True


async def test_a_stall_while_connecting_is_a_timeout_that_may_have_sent() -> None:
    # A TLS endpoint that accepts the connection and never answers the handshake: the
    # deadline ends the whole exchange, connecting included, as any other timeout.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with make_session(concurrency=2) as session:
            api = ApiClient(session, f"https://127.0.0.1:{port}", Deadlines(0.3))
            reply = await asyncio.wait_for(api.call(Op.CANCEL, "T1", "r", "t"), 5)
    finally:
        server.close()
    assert reply.error_type == "timeout" and reply.maybe_sent is True
    assert reply.detail == "no answer within the timeout"
