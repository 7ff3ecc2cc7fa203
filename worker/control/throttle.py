"""Throttle: how fast all workers together may send, and the shared pause after a 429.

Before every API request (token requests are not counted) a worker passes:

1. a shared pause: a 429's `Retry-After` stops every worker until it has passed, once
   for all (not once per worker), those already waiting for a slot too: a worker
   checks the pause again once its slot comes;
2. the pacer: requests get evenly spaced slots on an absolute schedule at the current
   rate, which is `--rate`, or less after a 429 (AIMD, as in the AWS SDKs' adaptive
   retry mode: each 429 halves it, each success adds a little back, never above
   `--rate`);
3. a hard guard: the send times of the last `WINDOW` (1.01 s), at most `rate` of
   them; a request waits while `rate` sends lie inside the window. So no second
   carries more than `rate` sends, and the API sees at most rate + 1 despite the
   event loop's and the network's jitter. Times older than the window are dropped on
   each acquire, so the guard's memory follows the sends actually made in one window,
   not `--rate` (a million-entry ring at `--rate 1000000` would cost ~32 MB).

Every wait here is cut short by a stop (`stop.StopGate`, when given): a worker waiting
for its slot then leaves with `Stopped` instead of sending after the stop. The pause
is also cut at `--give-up-after` (`deadline`, the outage gate): a `Retry-After: 60`
must not hold a run past the moment it was to abort (it then aborts, and sends nothing).

Why not aiolimiter: `AsyncLimiter(R, 1)` starts with a full bucket of R and refills it
while it drains, so the first second lets through ~2R; and `AsyncLimiter(1, 1/R)`
schedules each slot from the previous wake-up, so every millisecond of loop latency
is lost for good: measured here it delivered 176/s for `--rate 200`
(benchmarks/run.py). An absolute schedule does not drift, and it can be retuned while
tasks wait, which AIMD needs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from worker.control.stop import StopGate


class Deadline(Protocol):
    """When the run gives up (`outage.OutageGate`)."""

    def until_give_up(self) -> float: ...

    def check_give_up(self) -> None:
        """Raises ApiUnreachable once nothing has succeeded for `--give-up-after`."""


#: The guard's window: a second plus a margin for what happens between taking a slot
#: and the bytes reaching the API (a busy event loop, the network). Measured: with a
#: bare second, 202 requests reached the API in one second at --rate 200.
WINDOW = 1.01
#: Multiplicative decrease on 429, and the floor below which we never go.
DECREASE = 0.5
MIN_RATE = 0.5
#: Additive increase per successful request, as a share of the ceiling.
INCREASE_SHARE = 0.02
#: Without `--rate` there is no ceiling to climb back to: once the adaptive rate
#: reaches this, it is dropped and requests are unlimited again.
UNLIMITED_AGAIN_AT = 10_000.0


class Throttle:
    """Pacing, AIMD adaptive rate and shared pause, for all workers of a run."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        stop: StopGate | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        self._ceiling = rate
        self._clock = clock
        self._stop = stop
        self._deadline = deadline
        self._paused_until = 0.0
        self._adaptive_rate: float | None = None
        self._next_slot = 0.0
        # R, not R + 1: the guard sees send times, the API sees arrival times, and
        # network jitter can bring two arrivals closer; the spare one absorbs that.
        self._limit = max(math.floor(rate), 1) if rate else 0
        self._sent: deque[float] | None = deque() if rate else None
        self._window_start = clock()
        self._window_count = 0
        self._recent_rate = 0.0

    @property
    def guard_size(self) -> int:
        """Send times the guard holds now: never more than were sent in the last window."""
        return len(self._sent) if self._sent is not None else 0

    @property
    def current_rate(self) -> float | None:
        """The rate we allow ourselves now: the adaptive one while recovering, else the cap."""
        return self._adaptive_rate if self._adaptive_rate is not None else self._ceiling

    async def acquire(self) -> None:
        # `now` is read again only after a wait: the clock showed in the profile.
        now = self._clock()
        sent = self._sent
        while True:
            # A loop, not one sleep: another 429 may push the pause further while we wait.
            while (delay := self._paused_until - now) > 0:
                if self._deadline is not None:  # the pause ends at the give-up, by an abort
                    self._deadline.check_give_up()
                    delay = min(delay, max(self._deadline.until_give_up(), 0.001))
                await self._sleep(delay)
                now = self._clock()
            rate = self.current_rate
            if rate is not None:
                slot = max(now, self._next_slot)
                self._next_slot = slot + 1.0 / rate
                if slot > now:
                    await self._sleep(slot - now)
                    now = self._clock()
            if sent is not None:
                while True:
                    while sent and sent[0] + WINDOW <= now:
                        sent.popleft()
                    if len(sent) < self._limit:
                        break
                    await self._sleep(sent[0] + WINDOW - now)
                    now = self._clock()
            if self._paused_until <= now:
                break
            # A 429 came while this worker waited for its slot: the pause holds it too
            # (the slot is let go, and another taken after the pause, at the new rate).
        if sent is not None:
            sent.append(now)
        self._count(now)

    async def _sleep(self, seconds: float) -> None:
        if self._stop is None:
            await asyncio.sleep(seconds)
        else:
            await self._stop.sleep(seconds)  # raises Stopped when the run stops meanwhile

    def _count(self, now: float) -> None:
        self._window_count += 1
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            self._recent_rate = self._window_count / elapsed
            self._window_start, self._window_count = now, 0

    def on_throttled(self, retry_after: float | None) -> None:
        """A 429: pause everyone, and halve the rate."""
        pause = retry_after if retry_after is not None else 1.0
        self._paused_until = max(self._paused_until, self._clock() + pause)
        # Without --rate the base is what we measured; before the first measurement
        # there is nothing to halve, and the pause alone has to do.
        base = self.current_rate or self._recent_rate
        if base:
            self._adaptive_rate = max(MIN_RATE, base * DECREASE)

    def on_success(self) -> None:
        """An answer that was not a 429: creep back towards the ceiling."""
        rate = self._adaptive_rate
        if rate is None:
            return
        ceiling = self._ceiling or max(self._recent_rate * 2, rate * 2)
        new_rate = rate + max(ceiling * INCREASE_SHARE, 0.1)
        recovered_at = self._ceiling or UNLIMITED_AGAIN_AT
        self._adaptive_rate = None if new_rate >= recovered_at else new_rate
