"""The session's requests byte for byte, as a raw loopback server reads them.

`make_session` builds requests (`session.BodylessPost`) to which aiohttp adds no
Content-Type by itself: a cancel without a body goes without one, and the callers that send a body
name its type. Everything else on the wire is pinned too, so a change of how the
session is built cannot change what the API or the token endpoint receive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import ClientRequest
from aiohttp.http import SERVER_SOFTWARE

from worker.bambora.api import ApiClient
from worker.bambora.auth import ClientCredentials
from worker.bambora.deadline import Deadlines
from worker.bambora.session import make_session
from worker.model import Op

TOKEN = b'{"access_token":"jwt","expires_in":600}'


@pytest.fixture
async def raw_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A loopback HTTP/1.1 server that keeps each request's bytes (head and body) and
    answers 200 with a token document (the API client only reads its status)."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            seen.append(head + await reader.readexactly(length))
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(TOKEN), TOKEN)
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


def request(start: str, host: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [start, f"Host: {host}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def test_the_api_and_token_requests_on_the_wire(
    raw_server: tuple[str, list[bytes]],
) -> None:
    base, seen = raw_server
    host = base.removeprefix("http://")
    agent = f"User-Agent: {SERVER_SOFTWARE}"
    # aiohttp's own: "gzip, deflate", and "br" or "zstd" where their packages are installed
    encodings = f"Accept-Encoding: {ClientRequest.DEFAULT_HEADERS['Accept-Encoding']}"
    async with make_session(concurrency=2) as session:
        api = ApiClient(session, base, Deadlines(5))
        for op, ref, comment in [
            (Op.CANCEL, "r1", "end of day"),
            (Op.CANCEL, "r2", None),
            (Op.QUERY, "r3", None),
        ]:
            assert (await api.call(op, "T1", ref, "jwt-1", comment=comment)).status == 200
        tokens = ClientCredentials(session, f"{base}/connect/token", "id", "secret")
        assert await tokens.get() == "jwt"
    api_headers = ("Authorization: Bearer jwt-1", "API-Version: 1", "Accept: application/json")
    comment = b'{"comment":"end of day"}'
    form = b"grant_type=client_credentials&scope=cancel_payment+read_payment"
    assert seen == [
        request(
            "POST /v1/merchants/T1/payments/r1/cancel/ HTTP/1.1",
            host,
            *api_headers,
            "Content-Type: application/json",
            encodings,
            agent,
            f"Content-Length: {len(comment)}",
            body=comment,
        ),
        request(  # no body, so no Content-Type (aiohttp would say octet-stream)
            "POST /v1/merchants/T1/payments/r2/cancel/ HTTP/1.1",
            host,
            *api_headers,
            encodings,
            agent,
            "Content-Length: 0",
        ),
        request(
            "GET /v1/merchants/T1/payments/r3/ HTTP/1.1",
            host,
            *api_headers,
            encodings,
            agent,
        ),
        request(
            "POST /connect/token HTTP/1.1",
            host,
            "Authorization: Basic aWQ6c2VjcmV0",
            "Content-Type: application/x-www-form-urlencoded",
            "Accept: */*",
            encodings,
            agent,
            f"Content-Length: {len(form)}",
            body=form,
        ),
    ]


async def test_a_query_on_a_dropped_connection_is_not_sent_again_unseen() -> None:
    """aiohttp resends a GET once, itself, when a reused connection drops before the
    answer: a request the run never counts nor paces. The session must not."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = 0
        while True:
            try:
                heads.append(await reader.readuntil(b"\r\n\r\n"))
            except asyncio.IncompleteReadError:
                break
            if answered:  # a second request on this connection: dropped, unanswered
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
            answered += 1
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/payments/p"
    session = make_session(concurrency=1)
    try:
        async with session.get(url) as first:
            assert first.status == 200
            await first.read()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with session.get(url):
                pass
        assert len(heads) == 2  # with aiohttp's retry: 3, the last one on a new connection
    finally:
        await session.close()
        server.close()
        await server.wait_closed()
