"""Token trouble is as visible as API trouble: the real CLI against a loopback token
endpoint that refuses connections, fails, or refuses the client."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp import web

from tests.support import answering, cancel_requests, env_for, sandbox, start_cli, write_csv

GIVE_UP = 3.0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: connections to it are refused


async def answer_500(request: web.Request) -> web.Response:
    return web.json_response({"error": "server_error"}, status=500)


async def answer_invalid_client(request: web.Request) -> web.Response:
    return web.json_response({"error": "invalid_client"}, status=401)


@asynccontextmanager
async def token_endpoint(kind: str) -> AsyncIterator[tuple[str, str]]:
    """(the token URL, how its trouble is named) for a refusing or failing endpoint."""
    if kind == "refused":
        yield f"http://127.0.0.1:{closed_port()}/connect/token", "connection refused"
        return
    async with answering(answer_500 if kind == "500" else answer_invalid_client) as base:
        yield f"{base}/connect/token", "HTTP 500"


def when(event: dict[str, str]) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("kind", ["refused", "500"])
async def test_a_failing_token_endpoint_holds_at_once_and_aborts_on_time(
    tmp_path: Path, kind: str
) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"t{i}", "T1") for i in range(4)])
    async with sandbox() as server, token_endpoint(kind) as (auth_url, trouble):
        env = env_for(server, BAMBORA_AUTH_URL=auth_url)
        args = ("run", str(src), "--give-up-after", str(GIVE_UP), "--log-format", "json")
        proc = await start_cli(*args, env=env, cwd=tmp_path)
        assert proc.stderr is not None
        lines: list[str] = []
        while not any('"holding"' in line for line in lines):
            # the warning comes within seconds of the first failure, not at the abort
            line = (await asyncio.wait_for(proc.stderr.readline(), 10)).decode()
            assert line, "".join(lines)
            lines.append(line)
        _, rest = await asyncio.wait_for(proc.communicate(), 60)
        assert cancel_requests(server) == 0
    lines += rest.decode().splitlines(keepends=True)
    assert proc.returncode == 3, "".join(lines)[-3000:]
    events = {e["event"]: e for e in (json.loads(x) for x in lines if x.startswith("{"))}
    holding, aborted = events["holding"], events["aborted"]
    assert auth_url in holding["reason"] and trouble in holding["reason"]
    assert auth_url in aborted["reason"] and trouble in aborted["reason"]
    # --give-up-after is counted from the first failure, which the warning marks
    assert when(aborted) - when(holding) >= GIVE_UP - 0.1
    card = [x.rstrip("\n") for x in lines if not x.startswith("{")]
    assert card[0] == "cancel-worker: aborted (exit 3)"
    assert card[1].startswith("  reason: the token endpoint ") and trouble in card[1]
    assert card[-1].startswith("  to finish, run the same command again: cancel-worker run ")


async def test_refused_credentials_end_with_what_to_fix(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("t1", "T1"), ("t2", "T1")])
    async with sandbox() as server, token_endpoint("401") as (auth_url, _):
        env = env_for(server, BAMBORA_AUTH_URL=auth_url)
        proc = await start_cli("run", str(src), "--log-format", "json", env=env, cwd=tmp_path)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert server.state.requests == []
    text = err.decode()
    assert proc.returncode == 3, text[-3000:]
    card = [x for x in text.splitlines() if not x.startswith("{")]
    assert (
        card[1] == "  reason: the auth server refused the client credentials (401 invalid_client)"
    )
    assert card[-1].startswith("  to fix: correct BAMBORA_CLIENT_ID and BAMBORA_CLIENT_SECRET")
    assert "run the same command again" not in text
    assert env["BAMBORA_CLIENT_SECRET"] not in text
