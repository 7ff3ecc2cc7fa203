"""Deadlines: one sweep cancels what is late; nothing else is ever cancelled."""

from __future__ import annotations

import asyncio

import pytest

from worker.bambora.deadline import Deadlines


async def test_a_block_past_its_deadline_raises_timeout_error() -> None:
    deadlines = Deadlines(0.02, interval=0.005)
    never = asyncio.Event()
    with pytest.raises(TimeoutError), deadlines:
        await never.wait()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # our cancel was taken back
    await asyncio.sleep(0)  # and nothing is left pending for the next await
    deadlines.close()


async def test_a_block_in_time_is_left_alone_and_the_sweep_stops() -> None:
    deadlines = Deadlines(5, interval=0.001)
    for _ in range(3):
        with deadlines:
            await asyncio.sleep(0.002)  # several sweeps pass while it is in flight
    await asyncio.sleep(0.005)
    assert deadlines._sweep is None  # nothing in flight: no timer left running


async def test_many_tasks_each_get_their_own_deadline() -> None:
    deadlines = Deadlines(0.03, interval=0.005)
    never = asyncio.Event()

    async def late() -> str:
        try:
            with deadlines:
                await never.wait()
        except TimeoutError:
            return "timeout"
        return "answered"

    async def quick() -> str:
        with deadlines:
            await asyncio.sleep(0)
        await asyncio.sleep(0.06)  # outlives the deadline, outside the block: untouched
        return "answered"

    assert await asyncio.gather(late(), quick(), late()) == ["timeout", "answered", "timeout"]
    deadlines.close()


async def test_a_shutdown_cancel_stays_a_cancel() -> None:
    deadlines = Deadlines(0.01, interval=0.001)
    entered = asyncio.Event()

    async def request() -> None:
        with deadlines:
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(request())
    await entered.wait()
    task.cancel()  # the job cancels first ...
    await asyncio.sleep(0.02)  # ... and the deadline passes too
    with pytest.raises(asyncio.CancelledError):
        await task
    deadlines.close()
