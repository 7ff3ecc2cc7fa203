"""Throttle: the R + 1 window bound, the guard's memory, the shared pause, and AIMD."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.fakes import FakeTime, run_on
from worker.control.outage import OutageGate
from worker.control.stop import StopGate, Stopped
from worker.control.throttle import MIN_RATE, WINDOW, Throttle
from worker.errors import ApiUnreachable


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTime]:
    fake = FakeTime(now=1000.0)
    run_on(monkeypatch, fake)
    yield fake


def max_in_any_window(times: list[float], width: float = 1.0) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_no_window_carries_more_than_rate_plus_one() -> None:
    throttle = Throttle(50.0)
    stamps: list[float] = []

    async def worker() -> None:
        for _ in range(12):
            await throttle.acquire()
            stamps.append(time.monotonic())

    await asyncio.gather(*(worker() for _ in range(10)))  # 120 requests, 10 at once
    assert len(stamps) == 120
    assert max_in_any_window(stamps) <= 50  # R at the client leaves 1 for network jitter


async def test_unlimited_does_not_wait(fake_time: FakeTime) -> None:
    throttle = Throttle(None, clock=fake_time)
    for _ in range(1000):
        await throttle.acquire()  # would take 50 s at any real rate
    assert fake_time.sleeps == []
    assert throttle.guard_size == 0


async def test_guard_memory_follows_the_sends_in_one_window_not_the_rate(
    fake_time: FakeTime,
) -> None:
    throttle = Throttle(1_000_000.0, clock=fake_time)
    stamps: list[float] = []
    oldest_in_window = 0
    for _ in range(20_000):  # 1,000 sends a second for 20 s: far below the rate
        await throttle.acquire()
        stamps.append(fake_time.now)
        while stamps[oldest_in_window] + WINDOW <= fake_time.now:
            oldest_in_window += 1
        assert throttle.guard_size == len(stamps) - oldest_in_window
        fake_time.now += 0.001
    assert fake_time.sleeps == []  # nothing here needed a wait
    assert throttle.guard_size <= 1011  # not 20,000: older times were dropped


async def test_no_window_carries_more_than_rate_with_late_wake_ups(fake_time: FakeTime) -> None:
    fake_time.oversleep = 0.05  # wake-ups up to 50 ms late: the pacer's slots bunch
    rate = 40
    throttle = Throttle(float(rate), clock=fake_time)
    stamps: list[float] = []

    async def worker() -> None:
        for _ in range(30):
            await throttle.acquire()
            stamps.append(fake_time.now)

    await asyncio.gather(*(worker() for _ in range(16)))
    assert len(stamps) == 480
    assert stamps == sorted(stamps)
    # the guard's promise, exactly: the rate-th earlier send is a whole WINDOW back
    assert all(stamps[i - rate] + WINDOW <= stamps[i] for i in range(rate, len(stamps)))
    assert max_in_any_window(stamps) <= rate
    assert throttle.guard_size <= rate


def test_429_halves_and_successes_recover_to_the_ceiling_never_above() -> None:
    now = [0.0]
    throttle = Throttle(100.0, clock=lambda: now[0])
    throttle.on_throttled(2.0)
    assert throttle.current_rate == 50.0
    throttle.on_throttled(None)
    assert throttle.current_rate == 25.0
    seen = []
    for _ in range(200):
        throttle.on_success()
        seen.append(throttle.current_rate)
    assert seen[0] == 27.0  # additive: 2 % of the ceiling per success
    assert seen[-1] == 100.0 and max(r for r in seen if r) <= 100.0
    for _ in range(30):
        throttle.on_throttled(0)
    assert throttle.current_rate == MIN_RATE


async def test_a_429_pauses_every_worker_once(fake_time: FakeTime) -> None:
    throttle = Throttle(1000.0, clock=fake_time)
    throttle.on_throttled(0.3)
    start = fake_time.now
    stamps: list[float] = []

    async def worker() -> None:
        await throttle.acquire()
        stamps.append(fake_time.now)

    await asyncio.gather(*(worker() for _ in range(8)))
    assert min(stamps) - start >= 0.3 - 1e-9  # nobody went before the pause ended
    # and they went together after it, at the halved rate (500/s), not one pause each
    assert max(stamps) - min(stamps) < 8 / 500 + 0.01


async def test_a_wait_for_a_slot_ends_at_the_stop() -> None:
    gate = StopGate()
    throttle = Throttle(0.001, stop=gate)  # one slot, then the next in 1,000 s
    await throttle.acquire()
    waiting = asyncio.create_task(throttle.acquire())
    await asyncio.sleep(0)
    gate.stop()
    with pytest.raises(Stopped):
        await asyncio.wait_for(waiting, 10)  # a hang guard: it returns at the stop
    assert throttle.guard_size == 1  # the stopped wait took no send time


@pytest.mark.looptime
async def test_a_429_holds_the_workers_already_waiting_for_a_slot() -> None:
    loop = asyncio.get_running_loop()  # looptime's: fake time, moved only when all wait
    throttle = Throttle(2.0, clock=loop.time)
    start = loop.time()
    stamps: dict[int, float] = {}

    async def worker(i: int) -> None:
        await throttle.acquire()
        stamps[i] = loop.time()
        if i == 0:  # the others are waiting for their slots by now
            await asyncio.sleep(0.1)  # the request's way there and back
            throttle.on_throttled(5.0)  # the first answer is a 429 with Retry-After: 5

    await asyncio.gather(*(worker(i) for i in range(4)))
    # the others held slots at +0.5, +1.0, +1.5: the pause from +0.1 holds them all to +5.1
    assert stamps[0] == start
    assert min(stamps[i] for i in (1, 2, 3)) >= start + 5.1
    assert max(stamps.values()) - start < 5.1 + 3 / 1.0 + 0.01  # then at the halved rate


@pytest.mark.looptime
async def test_a_429_pause_ends_at_the_give_up_with_an_abort_not_a_send() -> None:
    """A `Retry-After: 60` with `--give-up-after 5`: the run aborted 55 s late, after
    one more cancel (a worker woke a hair before the deadline and waited out the pause)."""
    loop = asyncio.get_running_loop()
    health = OutageGate(threshold=5, give_up_after=5.0, clock=loop.time)
    throttle = Throttle(20.0, clock=loop.time, deadline=health)
    start = loop.time()
    health.record_trouble(1, what="HTTP 429")  # nothing has succeeded since the start
    throttle.on_throttled(60.0)
    with pytest.raises(ApiUnreachable, match="--give-up-after 5"):
        await throttle.acquire()
    assert loop.time() - start == pytest.approx(5.0, abs=0.01)
