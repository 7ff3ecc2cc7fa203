"""Stop gate: after a stop nothing new is written; waits end at once; counts are true."""

from __future__ import annotations

import asyncio

import pytest

from worker.control.stop import StopGate, Stopped


def test_no_request_is_written_after_a_stop_and_the_counts_say_what_it_left() -> None:
    gate = StopGate()
    with gate:
        pass  # one request answered before the stop
    gate.__enter__()  # one on the wire when the stop comes
    gate.stop()
    with pytest.raises(Stopped), gate:
        pass
    gate.__exit__(None)  # the one in flight finished after the stop
    account = gate.account(not_sent=4)
    assert account["in_flight"] == 1 and account["finished"] == 1 and account["abandoned"] == 0
    assert account["requests_sent"] == 2 and account["sent_after_stop"] == 0
    assert account["not_sent"] == 4 and account["message"].startswith("no request was sent")


async def test_a_wait_ends_with_stopped_as_soon_as_the_run_stops() -> None:
    gate = StopGate()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(gate.wait(never))
    await asyncio.sleep(0)
    gate.stop()
    with pytest.raises(Stopped):
        await waiting
    assert never.cancelled()  # the wait it raced is not left behind


async def test_a_wait_that_ends_first_returns_its_result() -> None:
    gate = StopGate()

    async def answer() -> int:
        return 42

    assert await gate.wait(answer()) == 42


async def test_after_a_stop_a_sleep_or_wait_does_not_even_start() -> None:
    gate = StopGate()
    gate.stop()
    with pytest.raises(Stopped):
        await gate.sleep(3600)

    async def never_started() -> None:
        raise AssertionError("started after the stop")

    with pytest.raises(Stopped):
        await gate.wait(never_started())
