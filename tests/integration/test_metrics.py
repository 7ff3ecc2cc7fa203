"""--pushgateway: each run replaces its group (job and shard, no instance label); a
success also replaces the success group, which failed nights leave standing."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.support import Completed, answering, env_for, read_report, run_cli, sandbox, write_csv


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[str, list[tuple[str, str, str]]]]:
    pushes: list[tuple[str, str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        pushes.append((request.method, request.path, (await request.read()).decode()))
        return web.Response(status=200)

    async with answering(handle) as url:
        yield url, pushes


async def test_run_pushes_its_metrics(
    tmp_path: Path, gateway: tuple[str, list[tuple[str, str, str]]]
) -> None:
    url, pushes = gateway
    src = write_csv(tmp_path / "in.csv", [("a", "T1"), ("unknown-b", "T1")])
    async with sandbox() as server:
        done = await run_cli(
            "run",
            str(src),
            "--rate",
            "100",
            "--shard",
            "0/1",
            "--pushgateway",
            url,
            "--job-name",
            "nightly-voids",
            env=env_for(server),
            cwd=tmp_path,
        )
    assert done.code == 0  # not_found is a follow-up, not a failure
    [(method, path, body), (success_method, success_path, success)] = pushes
    # replacing PUTs: a push-add left series this night did not push (yesterday's money)
    assert (method, success_method) == ("PUT", "PUT")
    assert path == "/metrics/job/nightly-voids/shard/0-of-1"
    assert 'cancel_worker_references{outcome="canceled"} 1.0' in body
    assert 'cancel_worker_references{outcome="not_found"} 1.0' in body
    # a night whose only trouble is follow-ups is a success: no page the next day
    assert success_path == "/metrics/job/nightly-voids/kind/success/shard/0-of-1"
    assert "cancel_worker_last_success_timestamp_seconds" in success
    assert "last_success" not in body
    assert "cancel_worker_last_exit_code 0.0" in body
    assert "cancel_worker_guard_rail_stops 0.0" in body
    assert "instance" not in body


async def test_a_clean_night_sets_last_success_and_a_guard_rail_does_not(
    tmp_path: Path, gateway: tuple[str, list[tuple[str, str, str]]]
) -> None:
    url, pushes = gateway
    ok = write_csv(tmp_path / "ok.csv", [("a", "T1")])
    wrong = write_csv(tmp_path / "wrong.csv", [(f"forbidden-{i}", "T1") for i in range(30)])
    async with sandbox() as server:
        first = await run_cli(
            "run", str(ok), "--pushgateway", url, env=env_for(server), cwd=tmp_path
        )
        second = await run_cli(
            "run", str(wrong), "--pushgateway", url, env=env_for(server), cwd=tmp_path
        )
    assert (first.code, second.code) == (0, 4)
    assert ["/kind/success/" in path for _, path, _ in pushes] == [False, True, False]
    success, stopped = pushes[1][2], pushes[2][2]
    assert "cancel_worker_last_success_timestamp_seconds" in success
    assert "cancel_worker_last_success_timestamp_seconds" not in stopped
    assert "cancel_worker_last_exit_code 4.0" in stopped
    assert "cancel_worker_guard_rail_stops 1.0" in stopped


async def test_a_check_or_dry_run_pushes_to_its_own_group_and_never_a_success(
    tmp_path: Path, gateway: tuple[str, list[tuple[str, str, str]]]
) -> None:
    """They cancel nothing: a check the morning after must not overwrite the night's exit
    code, nor a clean dry run stand in for a successful night (both did)."""
    url, pushes = gateway
    src = write_csv(tmp_path / "in.csv", [("a", "T1")])
    async with sandbox() as server:
        for args in (["check", str(src)], ["run", str(src), "--dry-run"]):
            done = await run_cli(*args, "--pushgateway", url, env=env_for(server), cwd=tmp_path)
            assert done.code == 0, done.stderr[-2000:]
    (_, checked, body), (_, dry, dry_body) = pushes
    assert checked == "/metrics/job/cancel-worker/mode/check/shard/0-of-1"
    assert dry == "/metrics/job/cancel-worker/mode/dry-run/shard/0-of-1"
    assert "cancel_worker_last_exit_code 0.0" in body and "cancel_worker_last_exit_code" in dry_body
    assert "last_success" not in body and "last_success" not in dry_body


async def test_unreachable_gateway_does_not_change_the_exit_code(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1")])
    async with sandbox() as server:
        done = await run_cli(
            "run",
            str(src),
            "--pushgateway",
            "http://127.0.0.1:9",
            env=env_for(server),
            cwd=tmp_path,
        )
    assert done.code == 0 and "metrics_push_failed" in done.stderr


METRICS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
PUSHGATEWAY = shutil.which("prometheus-pushgateway")


def readme_metrics() -> set[str]:
    """The metric names the Metrics table of the docs (it was the README's) lists."""
    text = METRICS_PAGE.read_text(encoding="utf-8")
    section = text[text.index("## Metrics") :]
    table = section[: section.index("\n\n", section.index("| metric |"))]
    return set(re.findall(r"`(cancel_worker_\w+)", table))


@pytest.fixture
async def real_gateway() -> AsyncIterator[str]:
    """Debian's prometheus-pushgateway on a free loopback port, in memory only."""
    if PUSHGATEWAY is None:
        pytest.skip(
            "prometheus-pushgateway is not installed (apt-get install prometheus-pushgateway)"
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        PUSHGATEWAY,
        f"--web.listen-address=127.0.0.1:{port}",
        "--persistence.file=",
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(20):
            while b'msg="Listening on"' not in (line := await proc.stderr.readline()):
                assert line, "prometheus-pushgateway ended before listening"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await proc.wait()


async def night_pushed(src: Path, gateway: str, cwd: Path) -> tuple[Completed, str]:
    """A run against the sandbox that pushes to `gateway`; then what the gateway holds."""
    async with sandbox() as server:
        done = await run_cli(
            "run", str(src), "--pushgateway", gateway, env=env_for(server), cwd=cwd
        )
    async with aiohttp.ClientSession() as session, session.get(f"{gateway}/metrics") as response:
        return done, await response.text()


async def test_a_real_pushgateway_holds_every_metric_the_readme_lists(
    tmp_path: Path, real_gateway: str
) -> None:
    rows = [("a", "T1"), ("b", "T1"), ("captured-c", "T1"), ("unknown-d", "T1")]
    src = write_csv(tmp_path / "in.csv", rows)
    done, body = await night_pushed(src, real_gateway, tmp_path)
    assert done.code == 0, done.stderr[-2000:]
    assert "metrics_push_failed" not in done.stderr
    # name -> [(labels, value)]; the gateway adds its own empty `instance` label
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for name, labels, value in re.findall(r"^(cancel_worker_\w+)\{(.*)\} (\S+)$", body, re.M):
        parsed = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        series.setdefault(name, []).append((parsed, float(value)))

    def value(name: str, **labels: str) -> float:
        want = {"job": "cancel-worker", "shard": "0-of-1", **labels}
        (found,) = [v for got, v in series.get(name, []) if want.items() <= got.items()]
        return found

    pushed = set(series)
    listed = readme_metrics()
    assert len(listed) >= 10
    assert listed <= pushed, f"listed in the docs but not pushed: {listed - pushed}"
    assert pushed <= listed, f"pushed but not in the docs: {pushed - listed}"
    assert value("cancel_worker_follow_ups") == 2
    assert value("cancel_worker_last_exit_code") == 0
    assert value("cancel_worker_references", outcome="not_found") == 1
    canceled = [r for r in read_report(tmp_path / "in.report.csv") if r["outcome"] == "canceled"]
    released = value("cancel_worker_released_minor_units", currency="EUR")
    assert released == sum(int(r["amount"]) for r in canceled) > 0
    # The next night stops at the guard rail, canceling and releasing nothing: the
    # night before's counts and money are gone (a push-add left them standing), its
    # success timestamp stays (the alert on it counts from there).
    wrong = write_csv(tmp_path / "wrong.csv", [(f"forbidden-{i}", "T1") for i in range(30)])
    stopped, after = await night_pushed(wrong, real_gateway, tmp_path)
    assert stopped.code == 4, stopped.stderr[-2000:]
    assert "cancel_worker_last_exit_code{" in after and 'outcome="canceled"' not in after
    assert "cancel_worker_released_minor_units{" not in after
    assert re.search(r"^cancel_worker_last_success_timestamp_seconds\{.*\} \S+$", after, re.M)
