"""Throttle: the R + 1 window bound, the shared pause, and AIMD's halving and recovery."""

from __future__ import annotations

import asyncio
import time

from worker.throttle import MIN_RATE, Throttle


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


async def test_unlimited_does_not_wait() -> None:
    throttle = Throttle(None)
    for _ in range(1000):
        await throttle.acquire()  # would take 50 s at any real rate


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


async def test_a_429_pauses_every_worker_once() -> None:
    throttle = Throttle(1000.0)
    throttle.on_throttled(0.3)
    start = time.monotonic()
    stamps: list[float] = []

    async def worker() -> None:
        await throttle.acquire()
        stamps.append(time.monotonic())

    await asyncio.gather(*(worker() for _ in range(8)))
    assert min(stamps) - start >= 0.29  # nobody went before the pause ended
    # and they went together after it, at the halved rate (500/s), not one pause each
    assert max(stamps) - min(stamps) < 1.0
