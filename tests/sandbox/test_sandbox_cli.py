"""The sandbox run alone (`python -m worker.sandbox`, the same command as `cancel-worker
sandbox`): its banner's lines really work when pasted, it logs each request to stderr
unless --quiet, the admin endpoints drive it from another process, SIGTERM stops it
cleanly, and a user's mistake is one line and exit 2."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import takewhile
from pathlib import Path

import aiohttp
import click
import pytest

from worker.cli import cli
from worker.sandbox import scenarios_markdown
from worker.sandbox.cli import sandbox_command

REPO = Path(__file__).resolve().parents[2]
LAST_BANNER_LINE = "Ctrl-C stops it."


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAMBORA_")}
    return {**env, "PYTHONPATH": str(REPO)}


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker.sandbox",
        *args,
        cwd=REPO,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@asynccontextmanager
async def running(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """A sandbox on a free port and its banner; killed if the test did not stop it."""
    proc = await _spawn("--port", "0", *args)
    try:
        yield proc, await _read_banner(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _read_banner(proc: asyncio.subprocess.Process) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(15):
        while not lines or not lines[-1].endswith(LAST_BANNER_LINE):
            line = await proc.stdout.readline()
            if not line:
                raise AssertionError(f"sandbox exited early: {lines}")
            lines.append(line.decode().rstrip("\n"))
    return lines


async def _stderr_until(proc: asyncio.subprocess.Process, text: str) -> list[str]:
    """Request-log lines up to and including the first one holding `text`."""
    assert proc.stderr is not None
    lines: list[str] = []
    async with asyncio.timeout(10):
        while not lines or text not in lines[-1]:
            line = await proc.stderr.readline()
            if not line:
                raise AssertionError(f"stderr ended before {text!r}: {lines}")
            lines.append(line.decode().rstrip("\n"))
    return lines


async def _stop(proc: asyncio.subprocess.Process) -> bytes:
    """SIGTERM, expect a clean exit 0, and return the rest of stderr."""
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    async with asyncio.timeout(5):
        rest = await proc.stderr.read()
        assert await proc.wait() == 0
    return rest


async def _bash(script: str) -> tuple[int, str, str]:
    shell = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        f"set -eu\n{script}\n",
        env=_env(),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await shell.communicate()
    assert shell.returncode is not None
    return shell.returncode, out.decode(), err.decode()


async def same_requests_without_curl(url: str, reference: str = "order-1") -> bytes:
    """What the banner's two curl lines do, for a machine without curl."""
    form = {"grant_type": "client_credentials", "scope": "cancel_payment read_payment"}
    async with aiohttp.ClientSession() as session:
        auth = aiohttp.encode_basic_auth("sandbox-client", "sandbox-secret")
        async with session.post(
            f"{url}/connect/token", data=form, headers={"Authorization": auth}
        ) as r:
            token = (await r.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}", "API-Version": "1"}
        async with session.post(
            f"{url}/v1/merchants/T123/payments/{reference}/cancel/", headers=headers
        ) as r:
            return await r.read()


async def run_pasted(token_cmd: str, cancel_cmd: str, url: str) -> bytes:
    """The two curl lines in one shell, exactly as a user pastes them. Without curl (a
    bare Debian has none) the same two requests are made with aiohttp."""
    if not shutil.which("curl"):
        return await same_requests_without_curl(url)
    code, out, err = await _bash(f"{token_cmd}\n{cancel_cmd}")
    assert code == 0, err
    return out.encode()


def test_both_entry_points_are_one_command() -> None:
    with click.Context(cli) as ctx:
        assert cli.get_command(ctx, "sandbox") is sandbox_command
        assert "sandbox" in cli.list_commands(ctx)


def test_a_run_does_not_import_the_sandbox() -> None:
    # the sandbox's server code is loaded by the `sandbox` command (or --sandbox) only
    code = "import sys, worker.cli, worker.run.main; print('worker.sandbox' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_banner_curl_commands_work_and_sigterm_stops(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps([{"merchant": "T123", "payment": "order-2", "state": "Settled"}]))
    async with running("--seed", str(seed)) as (proc, lines):
        assert lines[0].startswith("Bambora sandbox listening on http://127.0.0.1:")
        url = lines[0].rsplit(" ", 1)[1]
        assert lines[1] == f"  auth URL:      {url}/connect/token"
        assert lines[2] == "  client id:     sandbox-client"
        assert lines[3] == "  client secret: sandbox-secret"
        tried = lines.index("Try:")
        token_cmd, cancel_cmd = lines[tried + 1].strip(), lines[tried + 2].strip()
        assert token_cmd.startswith("TOKEN=$(curl ")
        assert cancel_cmd.startswith("curl ")

        answer = json.loads(await run_pasted(token_cmd, cancel_cmd, url))
        assert (answer["merchant"], answer["payment"], answer["state"]) == (
            "T123",
            "order-1",
            "Canceled",
        )
        logged = await _stderr_until(proc, "/payments/order-1/cancel/")
        assert logged[0].endswith(
            "POST /connect/token 200 token issued, scope 'cancel_payment read_payment'"
        )
        assert logged[-1].endswith("POST /v1/merchants/T123/payments/order-1/cancel/ 201 canceled")

        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/_sandbox/state") as resp:
                state = await resp.json()
            assert state["cancels_applied"] == 1
            assert state["tokens_issued"] == 1
            assert state["requests"]["by_kind"]["cancel"] == {"201": 1}
            # the seed file was loaded
            second = await run_pasted(token_cmd, cancel_cmd.replace("order-1", "order-2"), url)
            assert json.loads(second)["status"] == 422
            logged = await _stderr_until(proc, "/payments/order-2/cancel/")
            assert logged[-1].endswith(" 422 not cancelable: state Settled [seed file]")
            async with session.post(url + "/_sandbox/outage?seconds=30") as resp:
                assert resp.status == 200
            async with session.post(url + "/connect/token") as resp:
                assert resp.status == 503
        rest = (await _stop(proc)).decode()
        assert "POST /_sandbox/outage?seconds=30 200 admin" in rest
        assert "POST /connect/token 503 The sandbox is in a simulated outage." in rest


async def test_pasted_export_lines_aim_the_worker_at_it(tmp_path: Path) -> None:
    payments = tmp_path / "payments.csv"
    with payments.open("w", newline="") as f:
        csv.writer(f).writerows([("payment_reference", "merchant_number"), ("a/1", "T1")])
    report = tmp_path / "report.csv"
    async with running() as (proc, lines):
        pasted = [line.strip() for line in lines if line.strip().startswith(("unset", "export"))]
        assert len(pasted) == 2
        worker = f"{sys.executable} -m worker run {payments} --report {report}"
        # A stale token in the user's shell must not win over the pasted credentials.
        code, _, err = await _bash("\n".join(["export BAMBORA_TOKEN=stale", *pasted, worker]))
        assert code == 0, err
        with report.open(newline="") as f:
            assert [r["outcome"] for r in csv.DictReader(f)] == ["canceled"]
        logged = await _stderr_until(proc, "/cancel/")
        assert logged[-1].endswith("POST /v1/merchants/T1/payments/a%2F1/cancel/ 201 canceled")
        await _stop(proc)


async def test_quiet_logs_no_requests() -> None:
    async with running("--quiet") as (proc, lines):
        assert lines[-1] == LAST_BANNER_LINE
        url = lines[0].rsplit(" ", 1)[1]
        answer = json.loads(await same_requests_without_curl(url, "flaky-1"))
        assert answer["status"] == 503
        assert await _stop(proc) == b""


async def test_on_every_address_it_says_so_and_warns_that_its_admin_is_open() -> None:
    async with running("--host", "0.0.0.0", "--quiet") as (proc, lines):
        shown = re.fullmatch(
            r"Bambora sandbox listening on (0\.0\.0\.0:\d+); from this machine: (\S+)",
            lines[0],
        )
        assert shown is not None, lines[0]
        where, here = shown.groups()
        port = where.rsplit(":", 1)[1]
        assert here == f"http://127.0.0.1:{port}"  # where to connect: reached via loopback
        async with aiohttp.ClientSession() as session, session.get(here + "/_sandbox/state"):
            pass
        warning = " ".join(await _stderr_until(proc, "must reach it."))
        assert warning.startswith(f"Warning: listening on 0.0.0.0:{port}, beyond this machine")
        assert "/_sandbox/outage" in warning and "without authentication" in warning
        await _stop(proc)
    async with running("--quiet") as (proc, lines):
        assert lines[0].startswith("Bambora sandbox listening on http://127.0.0.1:")
        assert b"Warning" not in await _stop(proc)


def _readme_section() -> str:
    """The sandbox's page of the documentation (it was the README's sandbox section)."""
    return (REPO / "docs" / "sandbox.md").read_text(encoding="utf-8")


def _readme_commands() -> list[str]:
    """The shell lines of the section's example, continuations joined, comments dropped."""
    block = _readme_section().split("```sh\n", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\s*\\\n\s*", " ", block)
    return [line for line in joined.splitlines() if line and not line.startswith("#")]


def test_readme_scenario_table_is_the_generated_one() -> None:
    table = scenarios_markdown()
    lines = _readme_section().splitlines()
    start = lines.index(table.splitlines()[0])
    assert "\n".join(takewhile(lambda line: line.startswith("|"), lines[start:])) == table


def test_readme_documents_every_option() -> None:
    section = _readme_section()
    options = [opt for p in sandbox_command.params for opt in p.opts if opt.startswith("-")]
    assert len(options) >= 12
    for option in options:
        assert f"`{option}" in section, option


async def test_readme_example_is_what_the_banner_prints_and_works() -> None:
    start, *example = _readme_commands()
    assert start == "cancel-worker sandbox --port 8080"
    async with running() as (proc, lines):
        url = lines[0].rsplit(" ", 1)[1]
        here = [line.replace("http://127.0.0.1:8080", url) for line in example]
        commands = ("  unset ", "  export ", "  TOKEN=", "  curl ")
        assert here == [line.strip() for line in lines if line.startswith(commands)]
        token_cmd, cancel_cmd = here[2:]
        answer = json.loads(await run_pasted(token_cmd, cancel_cmd, url))
        assert (answer["payment"], answer["state"]) == ("order-1", "Canceled")
        await _stop(proc)


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize(
    ("case", "seed_text", "message"),
    [
        ("port in use", None, "cannot listen on 127.0.0.1:{port}: Address already in use"),
        ("address not here", None, "cannot listen on 192.0.2.1:0: Cannot assign requested"),
        ("invalid JSON", "[{", "seed file {seed}: not valid JSON"),
        ("wrong shape", '[{"merchant": "T1"}]', "entry 0: 'payment' must be a non-empty string"),
        ("top level", '{"merchant": "T1"}', "the top level must be a JSON list"),
        ("missing file", None, "seed file {seed}: cannot read it: No such file or directory"),
        ("a directory", None, "seed file {seed}: cannot read it: Is a directory"),
    ],
)
async def test_user_errors_are_one_line_and_exit_2(
    tmp_path: Path, case: str, seed_text: str | None, message: str
) -> None:
    seed = tmp_path / "seed.json"
    args = ["--port", "0", "--seed", str(seed)]
    busy = _busy_port()
    try:
        if seed_text is not None:
            seed.write_text(seed_text)
        elif case == "a directory":
            seed.mkdir()
        elif case != "missing file":
            seed.write_text("[]")
        if case == "port in use":
            args[1] = str(busy.getsockname()[1])
        if case == "address not here":
            args += ["--host", "192.0.2.1"]  # TEST-NET-1: on no machine's interface
        proc = await _spawn(*args)
        out, err = await proc.communicate()
    finally:
        busy.close()
    assert proc.returncode == 2
    assert out == b""
    text = err.decode()
    assert "Traceback" not in text
    assert text.count("\n") == 1, text
    expected = message.format(port=args[1], seed=seed)
    assert text.startswith("Error: ") and expected in text, text
