"""The sandbox run alone (`python -m worker.sandbox`, i.e. `run_sandbox`): its banner's
curl commands really work, the admin endpoints drive it from another process, and
SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]


async def _same_requests_without_curl(url: str) -> bytes:
    form = {"grant_type": "client_credentials", "scope": "cancel_payment read_payment"}
    async with aiohttp.ClientSession() as session:
        auth = aiohttp.encode_basic_auth("sandbox-client", "sandbox-secret")
        async with session.post(
            f"{url}/connect/token", data=form, headers={"Authorization": auth}
        ) as r:
            token = (await r.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}", "API-Version": "1"}
        async with session.post(
            f"{url}/v1/merchants/T123/payments/order-1/cancel/", headers=headers
        ) as r:
            return await r.read()


async def _read_banner(proc: asyncio.subprocess.Process) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(15):
        while len(lines) < 7:
            line = await proc.stdout.readline()
            if not line:
                raise AssertionError(f"sandbox exited early: {lines}")
            lines.append(line.decode().rstrip("\n"))
    return lines


async def test_banner_curl_commands_work_and_sigterm_stops(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps([{"merchant": "T123", "payment": "order-2", "state": "Settled"}]))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker.sandbox",
        "--port",
        "0",
        "--seed",
        str(seed),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        lines = await _read_banner(proc)
        assert lines[0].startswith("Bambora sandbox listening on http://127.0.0.1:")
        url = lines[0].rsplit(" ", 1)[1]
        assert lines[1] == f"  auth URL:      {url}/connect/token"
        assert lines[2] == "  client id:     sandbox-client"
        assert lines[3] == "  client secret: sandbox-secret"
        assert lines[4] == "Try:"
        token_cmd, cancel_cmd = lines[5].strip(), lines[6].strip()
        assert token_cmd.startswith("TOKEN=$(curl ")
        assert cancel_cmd.startswith("curl ")

        # Exactly the two pasted lines, in one shell, as a user would. Without curl
        # (a bare Debian has none) the same two requests are made with aiohttp.
        if shutil.which("curl"):
            script = f"set -eu\n{token_cmd}\n{cancel_cmd}\n"
            shell = await asyncio.create_subprocess_exec(
                "bash", "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            out, err = await shell.communicate()
            assert shell.returncode == 0, err
        else:
            out = await _same_requests_without_curl(url)
        answer = json.loads(out)
        assert (answer["merchant"], answer["payment"], answer["state"]) == (
            "T123",
            "order-1",
            "Canceled",
        )

        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/_sandbox/state") as resp:
                state = await resp.json()
            assert state["cancels_applied"] == 1
            assert state["tokens_issued"] == 1
            assert state["requests"]["by_kind"]["cancel"] == {"201": 1}
            # the seed file was loaded
            second = cancel_cmd.replace("order-1", "order-2")
            shell = await asyncio.create_subprocess_exec(
                "bash",
                "-c",
                f"set -eu\n{token_cmd}\n{second}\n",
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await shell.communicate()
            assert json.loads(out)["status"] == 422
            async with session.post(url + "/_sandbox/outage?seconds=30") as resp:
                assert resp.status == 200
            async with session.post(url + "/connect/token") as resp:
                assert resp.status == 503

        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_bad_seed_file_exits_2(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text('[{"merchant": "T1"}]')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker.sandbox",
        "--port",
        "0",
        "--seed",
        str(seed),
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"'payment'" in err
    assert out == b""
