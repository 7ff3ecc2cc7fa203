"""Throttle: how fast all workers together may send, and the shared pause after a 429.

Three gates, passed in order before every API request (token requests are not counted):

1. a shared pause: a 429's `Retry-After` stops every worker until it has passed, once
   for all (not once per worker);
2. an adaptive rate (AIMD, as in the AWS SDKs' adaptive retry mode): each 429 halves
   it, each success adds back a little, so after throttling the rate recovers
   gradually instead of bouncing straight back into the limit;
3. the hard cap `--rate`: `AsyncLimiter(1, 1/rate)` spaces requests evenly, so no
   1-second window carries more than rate + 1 (a bucket of size `rate` would let
   ~2 x rate through in the first second: PITFALLS.md #3).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter

#: Multiplicative decrease on 429, and the floor below which we never go.
DECREASE = 0.5
MIN_RATE = 0.5
#: Additive increase per successful request, as a share of the ceiling.
INCREASE_SHARE = 0.02


def pacer_limiter(rate: float) -> AsyncLimiter:
    return AsyncLimiter(1, 1.0 / rate)


class Throttle:
    """Rate cap, AIMD adaptive rate and shared pause, for all workers of a run."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._ceiling = rate
        self._cap = pacer_limiter(rate) if rate else None
        self._clock = clock
        self._paused_until = 0.0
        self._adaptive_rate: float | None = None
        self._next_slot = 0.0
        self._window_start = clock()
        self._window_count = 0
        self._recent_rate = 0.0
        self.throttled_count = 0

    @property
    def current_rate(self) -> float | None:
        """The rate we allow ourselves now: the adaptive one while recovering, else the cap."""
        return self._adaptive_rate if self._adaptive_rate is not None else self._ceiling

    async def acquire(self) -> None:
        # A loop, not one sleep: another 429 may push the pause further while we wait.
        while (delay := self._paused_until - self._clock()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)
        rate = self._adaptive_rate
        if rate is not None:
            # Reserve the next evenly spaced slot. aiolimiter cannot be retuned while
            # tasks wait on it, and AIMD changes the rate on every answer.
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / rate
            if slot > now:
                await asyncio.sleep(slot - now)
        if self._cap is not None:
            await self._cap.acquire()
        self._count()

    def _count(self) -> None:
        now = self._clock()
        self._window_count += 1
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            self._recent_rate = self._window_count / elapsed
            self._window_start, self._window_count = now, 0

    def on_throttled(self, retry_after: float | None) -> None:
        """A 429: pause everyone, and halve the rate."""
        self.throttled_count += 1
        pause = retry_after if retry_after is not None else 1.0
        self._paused_until = max(self._paused_until, self._clock() + pause)
        base = self.current_rate or max(self._recent_rate, 2 * MIN_RATE)
        self._adaptive_rate = max(MIN_RATE, base * DECREASE)

    def on_success(self) -> None:
        """An answer that was not a 429: creep back towards the ceiling."""
        rate = self._adaptive_rate
        if rate is None:
            return
        ceiling = self._ceiling or max(self._recent_rate * 2, rate * 2)
        step = max(ceiling * INCREASE_SHARE, 0.1)
        new_rate = rate + step
        if new_rate >= (self._ceiling or 10_000.0):
            self._adaptive_rate = None
            return
        self._adaptive_rate = new_rate
