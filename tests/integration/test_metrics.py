"""--pushgateway: one push-add per run, grouped by job and shard, no instance label."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.support import answering, env_for, run_cli, sandbox, write_csv


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
    [(method, path, body)] = pushes
    assert method == "POST"  # push-add, not a replacing PUT
    assert path == "/metrics/job/nightly-voids/shard/0-of-1"
    assert 'cancel_worker_references{outcome="canceled"} 1.0' in body
    assert 'cancel_worker_references{outcome="not_found"} 1.0' in body
    # a night whose only trouble is follow-ups is a success: no page the next day
    assert "cancel_worker_last_success_timestamp_seconds" in body
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
    clean, stopped = pushes[0][2], pushes[1][2]
    assert "cancel_worker_last_success_timestamp_seconds" in clean
    assert "cancel_worker_last_success_timestamp_seconds" not in stopped
    assert "cancel_worker_last_exit_code 4.0" in stopped
    assert "cancel_worker_guard_rail_stops 1.0" in stopped


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
