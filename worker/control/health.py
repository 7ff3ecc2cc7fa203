"""Health: is the API failing for one reference, or for everyone?

The README promises: a reference ends `failed` only when *its own* transient trouble outlasts
`--max-attempts`; while the API fails for everyone (an outage, a storm of 429s)
references are held, not failed, and the run aborts (exit 3) only when nothing has
succeeded for `--give-up-after` seconds.

The run-wide signal is a streak: consecutive transient failures with no good answer
in between. A streak of `threshold` (>= max-attempts, so no reference can use up its
tries inside one streak) spread over at least `MIN_DISTINCT` references, or an empty
retry budget, opens the gate. The spread matters at the end of a file: two references
that always fail, with nothing else left to send, are their own trouble (`failed`),
not an outage. When the gate is open, one probe request goes out at a time, spaced
by a growing interval, while the others wait; the first good answer closes it and
wakes everyone. Failures while the gate is open do
not count against any reference.

The retry budget is a token bucket in the spirit of the AWS SDKs' retry quota: a
retry costs 5 tokens (10 after a timeout), a good answer refunds 1. It caps the
extra load a struggling API gets from us, whatever the concurrency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

RETRY_COST = 5
TIMEOUT_COST = 10
SUCCESS_REFUND = 1
BUDGET = 500
PROBE_FIRST = 0.5
PROBE_MAX = 15.0
#: References a streak must touch before it counts as "everyone is failing".
MIN_DISTINCT = 3


class ApiUnreachable(Exception):
    """No API request succeeded for `--give-up-after` seconds: abort (exit 3)."""


class Health:
    """Shared by all workers of a run; single-threaded (asyncio), so no locks."""

    def __init__(
        self,
        *,
        threshold: int,
        give_up_after: float,
        budget: int = BUDGET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = max(threshold, 2)
        self._give_up_after = give_up_after
        self._clock = clock
        self._capacity = budget
        self._tokens = budget
        self._streak = 0
        self._streak_refs: set[int] = set()
        self._open = False
        self._probe_interval = PROBE_FIRST
        self._next_probe = 0.0
        self._closed = asyncio.Event()
        self._closed.set()
        self.last_ok = clock()
        self.successes = 0  # good answers so far: "has anyone succeeded since?"
        self.outages = 0
        self.probes = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def check_give_up(self) -> None:
        idle = self._clock() - self.last_ok
        if self._streak and idle >= self._give_up_after:
            raise ApiUnreachable(
                f"no API request has succeeded for {idle:.0f}s (--give-up-after "
                f"{self._give_up_after:g})"
            )

    async def admit(self) -> None:
        """Return when this worker may send: at once, or as the next probe of an outage."""
        while self._open:
            self.check_give_up()
            now = self._clock()
            if now >= self._next_probe:
                self._next_probe = now + self._probe_interval
                self._probe_interval = min(self._probe_interval * 2, PROBE_MAX)
                self.probes += 1
                return
            wait = min(self._next_probe - now, self.last_ok + self._give_up_after - now)
            await self._until_closed_or(max(wait, 0.001))
        self.check_give_up()

    async def _until_closed_or(self, seconds: float) -> None:
        """Wait until the gate closes or `seconds` pass (through `asyncio.sleep`, so a
        test that runs a fake clock by patching it runs this wait on that clock too)."""
        closed = asyncio.ensure_future(self._closed.wait())
        timer = asyncio.ensure_future(asyncio.sleep(seconds))
        try:
            await asyncio.wait((closed, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            timer.cancel()

    def record_ok(self) -> None:
        """Any answer that is not transient trouble: the API is there."""
        self.last_ok = self._clock()
        self.successes += 1
        self._streak = 0
        self._streak_refs.clear()
        self._tokens = min(self._capacity, self._tokens + SUCCESS_REFUND)
        if self._open:
            self._open = False
            self._probe_interval = PROBE_FIRST
            # Refill enough for a fresh start; an empty bucket would reopen at once.
            self._tokens = max(self._tokens, self._capacity // 2)
            self._closed.set()

    def record_trouble(self, ref: int = 0, *, timeout: bool = False) -> bool:
        """A transient failure of reference `ref` (any stable id, e.g. its line).

        True if it counts against that reference's tries.
        """
        self._streak += 1
        if len(self._streak_refs) < MIN_DISTINCT:
            self._streak_refs.add(ref)
        if self._open:
            return False
        cost = TIMEOUT_COST if timeout else RETRY_COST
        everyone = self._streak >= self._threshold and len(self._streak_refs) >= MIN_DISTINCT
        if everyone or self._tokens < cost:
            self.declare_outage()
            return False
        self._tokens -= cost
        return True

    def declare_outage(self) -> None:
        """Open the gate: hold everyone, let one probe through at a time."""
        if self._open:
            return
        self._open = True
        self.outages += 1
        self._next_probe = self._clock() + self._probe_interval
        self._closed.clear()

    def quiet_since(self, successes: int) -> bool:
        """True if no request of anyone has succeeded since `successes` was read.

        With few workers a streak cannot reach several references before one of them
        uses up its tries; then that reference's own trouble and an outage look alike,
        and the canceller asks the API about another payment to tell them apart.
        """
        return self.successes == successes
