"""Helpers for tests that drive the real CLI in a subprocess against the sandbox."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from worker.report.runs import is_end
from worker.sandbox import SandboxConfig, SandboxServer

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Completed:
    code: int
    stdout: str
    stderr: str


def write_csv(
    path: Path, rows: Iterable[tuple[str, ...]], header: str = "payment_reference,merchant_number"
) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header.split(","))
        writer.writerows(rows)
    return path


def env_for(server: SandboxServer | None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BAMBORA_", "JOB_COMPLETION", "SHARD_"))
    }
    if server is not None:
        env.update(
            BAMBORA_API_URL=server.api_url,
            BAMBORA_AUTH_URL=server.auth_url,
            BAMBORA_CLIENT_ID=server.config.client_id,
            BAMBORA_CLIENT_SECRET=server.config.client_secret,
        )
    env.update(extra)
    return env


async def start_cli(
    *args: str, env: dict[str, str], cwd: Path, stdin: bool = False
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        *args,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_cli(
    *args: str,
    env: dict[str, str],
    cwd: Path,
    timeout: float = 60,  # noqa: ASYNC109 - bounds a subprocess, not this coroutine
    after_start: Callable[[asyncio.subprocess.Process], Awaitable[None]] | None = None,
) -> Completed:
    proc = await start_cli(*args, env=env, cwd=cwd)
    waiter = asyncio.ensure_future(proc.communicate())
    if after_start is not None:
        await after_start(proc)
    try:
        out, err = await asyncio.wait_for(waiter, timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(
            f"cancel-worker did not finish in {timeout}s:\n{err.decode()[-3000:]}"
        ) from None
    assert proc.returncode is not None
    return Completed(proc.returncode, out.decode(), err.decode())


def read_report(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def runs_of(report: Path, event: str = "end") -> list[dict[str, Any]]:
    """The report's run records of one kind: `end` (one per run that ended) or `start`."""
    path = report.with_name(report.name + ".runs.jsonl")
    records = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    return [r for r in records if is_end(r) == (event == "end")]


def latest(rows: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    """Latest row per reference; `duplicate` rows never decide a reference (README: Exit status)."""
    view: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        if row["outcome"] != "duplicate":
            view[(row["merchant_number"], row["payment_reference"])] = row
    return view


def cancel_requests(server: SandboxServer, reference: str | None = None) -> int:
    return sum(
        1
        for r in server.state.requests
        if r.kind == "cancel" and (reference is None or r.reference == reference)
    )


@asynccontextmanager
async def sandbox(**config: Any) -> AsyncIterator[SandboxServer]:
    async with SandboxServer(SandboxConfig(**config), host="127.0.0.1", port=0) as server:
        yield server


@asynccontextmanager
async def answering(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A plain HTTP server on 127.0.0.1 whose every path and method go to `handler`;
    yields its base URL (no trailing slash)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def kill(proc: asyncio.subprocess.Process, sig: int = signal.SIGKILL) -> None:
    if proc.returncode is None:
        proc.send_signal(sig)
