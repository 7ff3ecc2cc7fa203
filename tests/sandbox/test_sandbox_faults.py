"""Trouble on demand: seeded random faults, seed files, outages, dropped connections,
stalls, and a shutdown that does not wait for them."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from worker.sandbox import SandboxConfig, SandboxServer, load_seed_file
from worker.sandbox.faults import draw_fault

from .conftest import MakeServer
from .support import Client, payment_url

REFS = [f"EOD-{i:03d}" for i in range(12)]


async def _step(client: Client, operation: str, reference: str) -> int | str:
    try:
        answer = await (
            client.cancel(reference) if operation == "cancel" else client.get(reference)
        )
    except aiohttp.ServerDisconnectedError:
        return "reset"
    return answer.status


async def _run(server: SandboxServer, order: list[str]) -> dict[str, list[int | str]]:
    """cancel, get, cancel for each reference in `order`, one reference at a time."""
    seen: dict[str, list[int | str]] = {}
    async with aiohttp.ClientSession() as session:
        client = Client(session, server)
        for ref in order:
            seen[ref] = [await _step(client, op, ref) for op in ("cancel", "get", "cancel")]
    return seen


def _server_view(server: SandboxServer) -> dict[str, list[tuple[str, int | str]]]:
    view: dict[str, list[tuple[str, int | str]]] = {}
    for rec in server.state.requests:
        if rec.kind in ("cancel", "get"):
            view.setdefault(rec.reference, []).append((rec.kind, rec.status))
    return view


FAULTY = {"seed": 7, "fault_rate": 0.5, "slow_delay": 0.01}


async def test_same_seed_same_answers_whatever_the_order(make_server: MakeServer) -> None:
    first = await make_server(**FAULTY)
    second = await make_server(**FAULTY)
    forward = await _run(first, REFS)
    backward = await _run(second, list(reversed(REFS)))
    assert forward == backward
    assert _server_view(first) == _server_view(second)
    statuses = {s for seq in forward.values() for s in seq}
    assert len(statuses) >= 4  # the draw really mixes kinds in
    for server in (first, second):
        assert max(server.state.cancels_applied.values()) == 1


async def test_another_seed_gives_other_answers(make_server: MakeServer) -> None:
    one = await _run(await make_server(**FAULTY), REFS)
    other = await _run(await make_server(**{**FAULTY, "seed": 8}), REFS)
    assert one != other


def test_draw_depends_only_on_its_inputs() -> None:
    kinds = ("503", "429")
    draws = [draw_fault(1, "T1", "r", n, 0.5, kinds) for n in range(50)]
    assert draws == [draw_fault(1, "T1", "r", n, 0.5, kinds) for n in range(50)]
    assert {None, "503", "429"} == set(draws)
    assert all(draw_fault(1, "T1", "r", n, 0.0, kinds) is None for n in range(50))
    assert all(draw_fault(1, "T1", "r", n, 1.0, kinds) for n in range(50))


async def test_fault_rate_one_faults_everything(make_server: MakeServer) -> None:
    server = await make_server(fault_rate=1.0, fault_kinds=("503",))
    seen = await _run(server, REFS[:3])
    assert all(seq == [503, 503, 503] for seq in seen.values())
    assert not server.state.cancels_applied


async def test_409_is_never_given_to_a_get(make_server: MakeServer) -> None:
    server = await make_server(fault_rate=1.0, fault_kinds=("409",))
    seen = await _run(server, REFS[:3])
    assert all(seq == [409, 200, 409] for seq in seen.values())


def test_config_refuses_unknown_fault_kinds() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        SandboxConfig(fault_kinds=("503", "teapot"))
    with pytest.raises(ValueError):
        SandboxConfig(fault_rate=1.5)


# -- seed files ---------------------------------------------------------------------------


def _seed(tmp_path: Path, entries: Any) -> str:
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    return str(path)


async def test_seed_file_states_and_faults(
    make_server: MakeServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    seed = _seed(
        tmp_path,
        [
            {"merchant": "T1", "payment": "cap", "state": "Captured", "amount": 1234},
            {"merchant": "T1", "payment": "f", "faults": ["503", "429", "reset_before", "409"]},
            {"merchant": "T1", "payment": "c", "cancel_faults": ["409"], "faults": ["503"]},
            {"merchant": "T1", "payment": "gone", "exists": False},
            # a seeded payment ignores the prefix rules
            {"merchant": "T1", "payment": "unknown-but-seeded", "currency": "SEK"},
            {"merchant": "T1", "payment": "applied-500", "faults": ["500_after_apply"]},
            {"merchant": "T1", "payment": "applied-reset", "faults": ["reset_after"]},
            {"merchant": "T1", "payment": "slow-get", "faults": ["slow_after"]},
        ],
    )
    server = await make_server(seed_file=seed)
    client = Client(session, server)
    client.merchant = "T1"
    got = await client.get("cap")
    assert (got.body["state"], got.body["amount"]) == ("Captured", 1234)
    assert (await client.cancel("cap")).status == 422
    # faults are consumed one per request, cancel or GET, in order
    assert [
        await _step(client, op, "f") for op in ("get", "cancel", "cancel", "get", "cancel")
    ] == [
        503,
        429,
        "reset",
        200,  # 409 is consumed by the GET, which ignores it
        201,
    ]
    assert [await _step(client, op, "c") for op in ("cancel", "get", "cancel", "cancel")] == [
        503,
        200,
        409,
        201,
    ]
    assert (await client.get("gone")).status == 404
    seeded = await client.cancel("unknown-but-seeded")
    assert (seeded.status, seeded.body["currency"]) == (201, "SEK")
    # the `_after` kinds do the work, then misbehave
    assert (await client.cancel("applied-500")).status == 500
    assert (await client.get("applied-500")).body["state"] == "Canceled"
    assert await _step(client, "cancel", "applied-reset") == "reset"
    assert (await client.get("applied-reset")).body["state"] == "Canceled"
    assert (await client.get("slow-get")).status == 200
    assert sum(server.state.cancels_applied.values()) == 5


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"merchant": "T1"}, "top level must be a JSON list"),
        (["x"], "must be an object"),
        ([{"payment": "p"}], "'merchant'"),
        ([{"merchant": "T1", "payment": ""}], "'payment'"),
        ([{"merchant": "T1", "payment": "p", "state": "Cancelled"}], "state 'Cancelled'"),
        ([{"merchant": "T1", "payment": "p", "faults": ["boom"]}], "unknown fault kinds"),
        ([{"merchant": "T1", "payment": "p", "fault": ["503"]}], "unknown keys"),
        ([{"merchant": "T1", "payment": "p", "amount": -1}], "'amount'"),
        ([{"merchant": "T1", "payment": "p"}] * 2, "seeded twice"),
    ],
)
def test_bad_seed_files_are_refused(tmp_path: Path, entries: Any, message: str) -> None:
    path = _seed(tmp_path, entries)
    with pytest.raises(ValueError, match=message):
        load_seed_file(path)
    with pytest.raises(ValueError, match=message):
        SandboxServer(SandboxConfig(seed_file=path))


def test_seed_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "seed.json"
    path.write_text("[{", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_seed_file(path)


# -- outages and dropped connections ------------------------------------------------------


async def test_outage_alternates_503_and_drops_for_every_kind(
    server: SandboxServer, session: aiohttp.ClientSession
) -> None:
    client = Client(session, server)
    headers = await client.headers()
    server.start_outage(60)
    form = {"grant_type": "client_credentials"}
    async with session.post(server.auth_url, data=form) as resp:
        assert resp.status == 503
        assert resp.content_type == "application/problem+json"
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with session.post(server.auth_url, data=form):
            pass
    assert (await client.cancel("o", headers=headers)).status == 503
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.cancel("o", headers=headers)
    assert (await client.get("o", headers=headers)).status == 503
    # The next answer is a drop, but aiohttp's client resends an idempotent GET once on
    # a dropped connection, so this one client call meets a drop and then a 503.
    assert (await client.get("o", headers=headers)).status == 503
    assert [(r.kind, r.status) for r in server.state.requests[-7:]] == [
        ("token", 503),
        ("token", "reset"),
        ("cancel", 503),
        ("cancel", "reset"),
        ("get", 503),
        ("get", "reset"),
        ("get", 503),
    ]
    assert not server.state.payments  # nothing was touched
    server.start_outage(0)
    assert (await client.cancel("o", headers=headers)).status == 201


async def test_reset_is_seen_as_a_disconnect_and_applies_nothing(
    client: Client, server: SandboxServer
) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.cancel("reset-9")
    assert server.state.payments[("T123456", "reset-9")].state == "Authorized"
    assert server.state.requests[-1].status == "reset"


# -- stalls and shutdown ------------------------------------------------------------------


async def test_stalled_cancel_applies_although_the_client_gave_up(
    make_server: MakeServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(slow_delay=0.3)
    client = Client(session, server)
    with pytest.raises(asyncio.TimeoutError):
        await client.cancel("slow-1", client_timeout=0.1)
    assert server.state.payments[("T123456", "slow-1")].state == "Canceled"
    assert (await client.get("slow-1")).body["state"] == "Canceled"
    await asyncio.sleep(0.3)  # let the stalled handler answer into the closed connection
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_stop_does_not_wait_for_stalled_requests(session: aiohttp.ClientSession) -> None:
    server = SandboxServer(SandboxConfig(slow_delay=30))
    await server.start()
    client = Client(session, server)
    headers = await client.headers()
    url = payment_url(server.url, "T1", "slow2-1", cancel=True)
    stalled = [
        asyncio.create_task(session.post(url, headers=headers)),
        asyncio.create_task(session.post(url, headers=headers)),
    ]
    await server.state.wait_for(lambda s: [r.status for r in s.requests].count("slow") == 2)
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 1.0
    for task in stalled:
        with pytest.raises(aiohttp.ClientConnectionError):
            await task
    assert server.state.cancels_applied[("T1", "slow2-1")] == 1


async def test_concurrent_cancels_apply_once(client: Client, server: SandboxServer) -> None:
    await client.headers()
    answers = await asyncio.gather(*(client.cancel("race-1") for _ in range(20)))
    assert sorted(a.status for a in answers) == [201] + [422] * 19
    assert server.state.cancels_applied[("T123456", "race-1")] == 1


# -- admin endpoints ----------------------------------------------------------------------


async def test_admin_state_and_outage(client: Client, server: SandboxServer) -> None:
    session = client.session
    await client.cancel("order-1")
    await client.cancel("order-1")
    await client.get("unknown-1")
    async with session.get(server.url + "/_sandbox/state") as resp:
        state = await resp.json()
    assert state["requests"]["by_kind"] == {
        "cancel": {"201": 1, "422": 1},
        "get": {"404": 1},
        "token": {"200": 1},
    }
    assert state["cancels_applied"] == 1
    assert state["requests"]["in_flight"] == 0
    assert state["double_applies"] == []
    assert state["tokens_issued"] == 1
    assert state["payments"]["by_state"] == {"Canceled": 1}

    async with session.post(server.url + "/_sandbox/outage?seconds=30") as resp:
        assert resp.status == 200
    assert (await client.get("order-1")).status == 503
    async with session.get(server.url + "/_sandbox/state") as resp:
        assert 29 < (await resp.json())["outage_remaining"] <= 30
    async with session.post(server.url + "/_sandbox/outage?seconds=0") as resp:
        assert resp.status == 200
    assert (await client.get("order-1")).status == 200
    for bad in ("", "?seconds=-1", "?seconds=abc", "?seconds=nan"):
        async with session.post(server.url + "/_sandbox/outage" + bad) as resp:
            assert resp.status == 400
    async with session.post(server.url + "/_sandbox/expire_tokens") as resp:
        assert resp.status == 200
    assert (await client.get("order-1")).status == 401
    async with session.get(server.url + "/_sandbox/nothing") as resp:
        assert resp.status == 404


async def test_records_are_optional(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    server = await make_server(record_requests=False)
    await Client(session, server).cancel("o")
    assert server.state.requests == []
    assert server.state.status_counts[("cancel", "201")] == 1
