"""Guard rails: confirm on a terminal, cap the count, stop on a wrong merchant, make
outages visible, retry chosen outcomes, an environment variable for every option.
The real CLI where the process is the subject (a terminal, stdin, usage errors, the
environment, --help); in-process (`tests.inprocess`) where it is what the run does:
the stop on a wrong merchant, the outage's events, the outcomes sent again."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

from tests.inprocess import run_job
from tests.support import (
    REPO,
    answering,
    cancel_requests,
    env_for,
    latest,
    read_report,
    run_cli,
    sandbox,
    write_csv,
)
from worker.bambora.backoff import BACKOFF

FAST = ("--rate", "2000", "--concurrency", "4", "--log-format", "json")
FAR_AWAY = {
    "BAMBORA_API_URL": "https://api.example.invalid",
    "BAMBORA_AUTH_URL": "https://auth.example.invalid/connect/token",
    "BAMBORA_CLIENT_ID": "id",
    "BAMBORA_CLIENT_SECRET": "secret-value",
}


#: Starts the CLI with its standard input, a pseudo-terminal, as its controlling terminal
#: (what /dev/tty opens), as a login shell gives a person's commands theirs.
ON_ITS_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, '-m', 'worker', *sys.argv[1:]])"
)


def on_a_terminal(
    args: list[str],
    cwd: Path,
    answer: bytes,
    env: dict[str, str],
    *,
    pipe_stderr: bool = False,
    typed_ahead: bytes = b"",
) -> tuple[int, str, str]:
    """Run the CLI with a pseudo-terminal as its terminal and standard input (and standard
    error, unless `pipe_stderr`, as `2>&1 | tee run.log` does); type `answer` at the
    question (and `typed_ahead` before it shows). Returns the exit code, what the terminal
    showed, and the piped stderr."""
    leader, follower = pty.openpty()
    if typed_ahead:
        os.write(leader, typed_ahead)
    proc = subprocess.Popen(
        [sys.executable, "-c", ON_ITS_TERMINAL, *args],
        stdin=follower,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if pipe_stderr else follower,
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    os.close(follower)
    seen, piped = b"", b""
    streams = [leader] + ([proc.stderr.fileno()] if proc.stderr else [])
    deadline = time.monotonic() + 30
    answered = False
    while streams and time.monotonic() < deadline:
        ready, _, _ = select.select(streams, [], [], max(deadline - time.monotonic(), 0))
        for fd in ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal is gone: the process ended
                chunk = b""
            if not chunk:
                streams.remove(fd)
            elif fd == leader:
                seen += chunk
            else:
                piped += chunk
        if not answered and (b"type " in seen or b"[y/N]" in seen):
            os.write(leader, answer)
            answered = True
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()  # no-op once it ended; never left behind when it did not
        os.close(leader)
    if proc.stderr:
        proc.stderr.close()
    return proc.returncode, seen.decode(errors="replace"), piped.decode(errors="replace")


def clean_env(**extra: str) -> dict[str, str]:
    env = env_for(None, **extra)
    env.pop("CANCEL_WORKER_CONCURRENCY", None)
    return env


def test_on_a_terminal_run_shows_what_it_will_do_and_asks(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"p{i}", "T1") for i in range(12)] + [("x", "T2")])
    code, screen, _ = on_a_terminal(["run", str(src)], tmp_path, b"12\n", clean_env(**FAR_AWAY))
    # 13 to send: typing 12 is not the count, so nothing is sent
    assert code == 2 and "about to cancel 13 references" in screen
    assert "merchant T1: 12" in screen and "api.example.invalid" in screen
    assert "type 13 to cancel them" in screen and "not confirmed" in screen
    assert "anything else stops: " in screen and "stops: : " not in screen  # one suffix


def test_with_the_logs_piped_a_person_at_the_terminal_is_still_asked(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("p1", "T1"), ("p2", "T1")])
    args = ["run", str(src), "--log-format", "json"]
    code, screen, err = on_a_terminal(
        args, tmp_path, b"n\n", clean_env(**FAR_AWAY), pipe_stderr=True
    )
    # the preview and the question went to the terminal, not into the piped log
    assert "about to cancel 2 references" in screen and "cancel them? [y/N]" in screen
    assert "[y/N]" not in err and "about to cancel" not in err
    assert code == 2 and "not confirmed: nothing was sent" in err
    assert '"start"' not in err and not (tmp_path / "in.report.csv").exists()


def test_what_was_typed_before_the_question_is_not_its_answer(tmp_path: Path) -> None:
    """A `y` typed (or pasted) while the file was read confirmed the run unseen."""
    src = write_csv(tmp_path / "in.csv", [("p1", "T1"), ("p2", "T1")])
    args = ["run", str(src), "--log-format", "json"]
    code, screen, err = on_a_terminal(
        args, tmp_path, b"n\n", clean_env(**FAR_AWAY), pipe_stderr=True, typed_ahead=b"y\n"
    )
    assert "cancel them? [y/N]" in screen
    assert code == 2 and "not confirmed: nothing was sent" in err and '"confirmed"' not in err


async def test_nothing_left_to_send_asks_nobody_and_logs_no_confirmation(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("p1", "T1")])
    args = ["run", str(src), "--confirm", "--log-format", "json"]
    async with sandbox() as server:
        first = await run_cli("run", str(src), env=env_for(server), cwd=tmp_path)
        assert first.code == 0, first.stderr[-2000:]
        got, screen, err = await asyncio.to_thread(
            on_a_terminal, args, tmp_path, b"y\n", clean_env(**env_for(server)), pipe_stderr=True
        )
    assert got == 0, err[-2000:]
    assert "[y/N]" not in screen and "type " not in screen
    assert '"confirmed"' not in err  # it said confirmed references=0, nobody asked


@pytest.mark.parametrize(("answer", "code", "cancels"), [(b"no\n", 2, 0), (b"y\n", 0, 1)])
async def test_confirm_asks_on_loopback_so_the_question_can_be_rehearsed(
    tmp_path: Path, answer: bytes, code: int, cancels: int
) -> None:
    src = write_csv(tmp_path / "in.csv", [("p1", "T1")])
    args = ["run", str(src), "--confirm", "--log-format", "json"]
    async with sandbox() as server:
        # in a thread: the sandbox answers on this event loop meanwhile
        got, screen, err = await asyncio.to_thread(
            on_a_terminal, args, tmp_path, answer, clean_env(**env_for(server)), pipe_stderr=True
        )
        assert cancel_requests(server) == cancels
        if not cancels:
            assert server.state.requests == [] and server.state.tokens_issued == 0
    assert got == code, err[-2000:]
    assert "about to cancel 1 reference" in screen and "cancel them? [y/N]" in screen
    assert ('"confirmed"' in err) == bool(cancels)


async def test_confirm_without_a_terminal_sends_nothing_and_a_dry_run_would_cancel(
    tmp_path: Path,
) -> None:
    src = write_csv(tmp_path / "in.csv", [("p1", "T1"), ("p2", "T1")])
    async with sandbox() as server:
        nobody = await run_cli("run", str(src), "--confirm", env=env_for(server), cwd=tmp_path)
        both = await run_cli(
            "run", str(src), "--confirm", "--yes", env=env_for(server), cwd=tmp_path
        )
        assert server.state.requests == [] and server.state.tokens_issued == 0
    assert nobody.code == 2 and "--confirm needs a terminal to ask on" in nobody.stderr
    assert both.code == 2 and "choose one" in both.stderr
    dry = await run_cli("run", str(src), "--dry-run", env=env_for(None), cwd=tmp_path)
    assert dry.code == 0 and "would cancel 2 references" in dry.stderr
    assert "about to cancel" not in dry.stderr and "dry run: nothing is sent" in dry.stderr


def test_yes_skips_the_question_and_no_terminal_never_asks(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("p1", "T1")])
    args = ["run", str(src), "--yes", "--give-up-after", "1", "--log-format", "json"]
    code, screen, _ = on_a_terminal(args, tmp_path, b"n\n", clean_env(**FAR_AWAY))
    assert "[y/N]" not in screen and "type " not in screen
    assert code == 3  # it went ahead: the unreachable API then gave up
    done = subprocess.run(
        [sys.executable, "-m", "worker", "run", str(src), "--give-up-after", "1"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
        env={**clean_env(**FAR_AWAY), "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert done.returncode == 3 and b"[y/N]" not in done.stderr


async def test_max_references_refuses_before_any_request(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"m{i}", "T1") for i in range(11)] + [("m0", "T1")])
    async with sandbox() as server:
        done = await run_cli(
            "run", str(src), *FAST, "--max-references", "10", env=env_for(server), cwd=tmp_path
        )
        assert done.code == 2 and "11 references to send" in done.stderr
        assert server.state.requests == [] and server.state.tokens_issued == 0
        env = env_for(server, CANCEL_WORKER_MAX_REFERENCES="11")  # as an environment variable
        ok = await run_cli("run", str(src), *FAST, env=env, cwd=tmp_path)
        assert ok.code == 0, ok.stderr[-2000:]


async def test_max_references_on_standard_input_stops_at_the_cap(tmp_path: Path) -> None:
    async with sandbox() as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "worker",
            "run",
            "-",
            *FAST,
            "--max-references",
            "5",
            env=env_for(server),
            cwd=tmp_path,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        rows = "".join(f"s{i},T1\n" for i in range(20))
        _, err = await proc.communicate(f"payment_reference,merchant_number\n{rows}".encode())
        assert proc.returncode == 4, err.decode()[-2000:]
        assert cancel_requests(server) == 5
        assert "the first 5 were sent, the rest not read" in err.decode()


async def test_a_dry_run_over_the_cap_on_standard_input_says_nothing_was_sent(
    tmp_path: Path,
) -> None:
    """It said "the first 3 were sent" under a preview saying nothing is sent."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", "run", "-", "--max-references", "3", "--dry-run",
        env=env_for(None), cwd=tmp_path, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    rows = "".join(f"z{i},T1\n" for i in range(5))
    _, raw = await proc.communicate(f"payment_reference,merchant_number\n{rows}".encode())
    err = raw.decode()
    assert proc.returncode == 4, err[-2000:]
    assert "the first 3 would have been sent (a dry run sends nothing)" in err
    assert "were sent" not in err


@pytest.mark.parametrize(("prefix", "status"), [("forbidden-", "403"), ("unknown-", "404")])
async def test_a_wrong_merchant_stops_the_run_with_exit_4(
    tmp_path: Path, prefix: str, status: str
) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"{prefix}{i}", "T1") for i in range(300)])
    async with sandbox() as server:
        done = await run_job(
            "run", str(src), *FAST, "--stop-on-rejections", "20", env=env_for(server), cwd=tmp_path
        )
        sent = cancel_requests(server)
    assert done.code == 4, done.log[-2000:]
    assert sent <= 20 + 4  # K + --concurrency at most
    rail = next(json.loads(x) for x in done.log.splitlines() if '"guard_rail"' in x)
    assert f"HTTP {status}" in rail["reason"] and "merchant" in rail["reason"]
    assert len(read_report(tmp_path / "in.report.csv")) == sent  # in flight finished, written


async def test_an_endpoint_answering_200_html_to_everything_stops_at_the_guard_rail(
    tmp_path: Path,
) -> None:
    """A wrong BAMBORA_API_URL (a web server's page): retrying its stateless 200s made a
    run of 200 references 1,200 requests and exit 5, a code the Kubernetes samples
    retry. Each reference still ends `failed` (a 200 without a state settles nothing:
    `rejected` hid a cancel that landed), and the rail counts those (exit 4)."""
    calls: list[str] = []

    async def page(request: web.Request) -> web.Response:
        calls.append(request.method)
        return web.Response(text="<html>hello</html>", content_type="text/html")

    src = write_csv(tmp_path / "in.csv", [(f"r-{i}", "T1") for i in range(200)])
    async with answering(page) as url:
        env = env_for(None, BAMBORA_API_URL=url, BAMBORA_TOKEN="abc")
        done = await run_cli(
            "run", str(src), *FAST, "--stop-on-rejections", "20", "--max-attempts", "1",
            env=env, cwd=tmp_path,
        )  # fmt: skip
    assert done.code == 4, done.stderr[-2000:]
    assert "a BAMBORA_API_URL that is not the API" in done.stderr
    assert len(calls) <= 2 * (20 + 4)  # a cancel and its query each, K + --concurrency
    rows = read_report(tmp_path / "in.report.csv")
    assert {r["outcome"] for r in rows} == {"failed"}
    assert sum(r["error_type"] == "no_payment_state" for r in rows) >= 20


async def test_retry_outcomes_sends_chosen_final_outcomes_again(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"forbidden-{i}", "T1") for i in range(3)])
    async with sandbox() as server:
        first = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        again = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert cancel_requests(server) == 3  # rejected is final: the plain rerun sent nothing
        retried = await run_job(
            "run",
            str(src),
            *FAST,
            "--retry-outcomes",
            "rejected",
            env=env_for(server),
            cwd=tmp_path,
        )
        assert cancel_requests(server) == 6
    assert first.code == again.code == retried.code == 1
    bad = await run_cli(
        "run",
        str(src),
        "--dry-run",
        "--retry-outcomes",
        "canceled",
        env=env_for(None),
        cwd=tmp_path,
    )
    assert bad.code == 2 and "cannot be retried" in bad.stderr


async def test_an_outage_is_announced_at_once_and_its_end_too(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"o{i}", "T1") for i in range(200)])
    async with sandbox() as server:
        moments: dict[str, float] = {}

        async def outage() -> None:
            await server.state.wait_for(lambda s: cancel_requests(server) >= 30, within=30)
            moments["start"] = time.time()
            server.start_outage(4.0)

        done, _ = await asyncio.gather(
            run_job(
                "run",
                str(src),
                "--rate",
                "100",
                "--concurrency",
                "8",
                "--log-format",
                "json",
                env=env_for(server),
                cwd=tmp_path,
                wait=BACKOFF,  # how soon "holding" comes is the subject: the real waits
            ),
            outage(),
        )
    assert done.code == 0, done.log[-3000:]
    events = {
        e["event"]: e
        for e in (json.loads(x) for x in done.log.splitlines() if x.startswith("{"))
        if e["event"] in ("holding", "recovered")
    }
    assert (
        "HTTP 503" in events["holding"]["reason"] or "disconnected" in events["holding"]["reason"]
    )
    held_at = time.mktime(time.strptime(events["holding"]["timestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert held_at - time.timezone - moments["start"] < 3  # within a second or two
    assert events["recovered"]["held_seconds"] > 0


def test_every_option_shows_its_environment_variable() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "worker", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    ).stdout
    for option in ("concurrency", "rate", "max_references", "stop_on_rejections", "yes", "report"):
        assert f"CANCEL_WORKER_{option.upper()}" in out
    assert "BAMBORA_MERCHANT_NUMBER" in out
    check = subprocess.run(
        [sys.executable, "-m", "worker", "check", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout
    offered = set(re.findall(r"--[a-z][a-z-]+", check))  # options and the help that names them
    assert "--comment" not in offered and "--dry-run" not in offered  # run's alone
    assert {"--report", "--rate", "--stop-on-rejections"} <= offered


async def test_options_from_the_environment_take_effect(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("e1", "T1"), ("e2", "T1")])
    async with sandbox() as server:
        env = env_for(server, CANCEL_WORKER_REPORT="env.csv", CANCEL_WORKER_DRY_RUN="1")
        done = await run_cli("run", str(src), env=env, cwd=tmp_path)
        assert done.code == 0 and len(read_report(tmp_path / "env.csv")) == 2
        assert server.state.requests == []
    assert {v["outcome"] for v in latest(read_report(tmp_path / "env.csv")).values()} == {
        "would_cancel"
    }
