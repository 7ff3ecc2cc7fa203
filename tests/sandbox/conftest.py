"""Fixtures: a real SandboxServer on 127.0.0.1:0 and an aiohttp client session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from worker.sandbox import SandboxConfig, SandboxServer

from .support import Client

MakeServer = Callable[..., Awaitable[SandboxServer]]


@pytest.fixture
async def make_server() -> AsyncIterator[MakeServer]:
    """Start sandboxes with a given config (keyword args of SandboxConfig); stop them all."""
    servers: list[SandboxServer] = []

    async def make(**config: object) -> SandboxServer:
        config.setdefault("slow_delay", 0.2)
        server = SandboxServer(SandboxConfig(**config))  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


@pytest.fixture
async def server(make_server: MakeServer) -> SandboxServer:
    return await make_server()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def client(session: aiohttp.ClientSession, server: SandboxServer) -> Client:
    return Client(session, server)
