"""Outage gate: is the API failing for one reference, or for everyone?

A circuit breaker with a retry budget, run-wide; the canceller asks it before every
request (`admit`) and tells it every answer (`record_ok`, `record_trouble`).

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

The token endpoint is watched here too (`token_failing`, `token_answered`): every
worker waits for the one token request in flight, so from its first failure the run is
held as surely as by an API outage, and the operator hears it the same way (a
`holding` warning naming the endpoint and the error, the hold in the progress display,
a `recovered` event). The token provider retries and gives up by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from worker.errors import ApiUnreachable
from worker.observe import logs

RETRY_COST = 5
TIMEOUT_COST = 10
SUCCESS_REFUND = 1
BUDGET = 500
PROBE_FIRST = 0.5
PROBE_MAX = 15.0
#: A waiting worker that is not next in line looks again this often.
PROBE_RECHECK = 0.05
#: References a streak must touch before it counts as "everyone is failing".
MIN_DISTINCT = 3


class OutageGate:
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
        self.probes = 0
        self.last_trouble = "no answer"  # what the API last did wrong, for people
        self.held_since: float | None = None  # when the gate opened
        self.held_seconds = 0.0  # total time the gate was open, for the metrics
        self._line: deque[object] = deque()  # workers waiting, oldest first
        self._token_trouble: str | None = None  # what the token endpoint last did wrong
        self._token_since: float | None = None  # when it started failing

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def held_total(self) -> float:
        """Seconds spent holding so far, the current holds included."""
        now = self._clock()
        current = sum(
            now - since for since in (self.held_since, self._token_since) if since is not None
        )
        return self.held_seconds + current

    def holding(self) -> tuple[str, float] | None:
        """(what is failing, for how many seconds) while references are held."""
        if self._token_since is not None:
            trouble = f"token endpoint failing ({self._token_trouble})"
            return trouble, self._clock() - self._token_since
        if not self._open or self.held_since is None:
            return None
        return f"API failing ({self.last_trouble})", self._clock() - self.held_since

    def token_failing(self, endpoint: str, what: str) -> None:
        """A token request failed (transient): everyone waits for that token."""
        self._token_trouble = what
        if self._token_since is not None:
            return
        self._token_since = self._clock()
        logs.log.warning(
            "holding",
            reason=f"the token endpoint {endpoint} is failing ({what})",
            give_up_after=self._give_up_after,
            hint="references are held, not failed; the token request is retried until it answers",
        )

    def token_answered(self) -> None:
        """A token was issued: a hold for the token endpoint ends, and the give-up clock
        starts afresh (nothing could be sent while it failed)."""
        if self._token_since is None:
            return
        held = self._clock() - self._token_since
        self.held_seconds += held
        self._token_since = self._token_trouble = None
        self.last_ok = self._clock()
        logs.log.warning("recovered", held_seconds=round(held, 1), what="token endpoint")

    def until_give_up(self) -> float:
        """Seconds until `check_give_up` would abort (infinite while nothing fails): a
        retry's backoff is cut to it, so the abort comes on time, not a backoff late."""
        if not self._streak:
            return float("inf")
        return max(self.last_ok + self._give_up_after - self._clock(), 0.0)

    def check_give_up(self) -> None:
        if not self._streak:  # the usual case, decided without reading the clock
            return
        idle = self._clock() - self.last_ok
        if idle >= self._give_up_after:
            raise ApiUnreachable(
                f"no API request has succeeded for {idle:.0f}s (--give-up-after "
                f"{self._give_up_after:g}); last: {self.last_trouble}"
            )

    async def admit(self) -> None:
        """Return when this worker may send: at once, or as the next probe of an outage.

        Probes go to the waiting workers in turn, oldest first; a worker whose probe
        failed waits at the back. So one reference that is broken for good cannot keep
        probing alone while the API has long recovered for the others.
        """
        if not self._open:
            self.check_give_up()
            return
        ticket = object()
        self._line.append(ticket)
        try:
            while self._open:
                self.check_give_up()
                now = self._clock()
                if self._line[0] is ticket and now >= self._next_probe:
                    self._next_probe = now + self._probe_interval
                    self._probe_interval = min(self._probe_interval * 2, PROBE_MAX)
                    self.probes += 1
                    return
                wait = max(self._next_probe - now, PROBE_RECHECK)
                wait = min(wait, self.last_ok + self._give_up_after - now)
                await self._until_closed_or(max(wait, 0.001))
        finally:
            self._line.remove(ticket)
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
            self._next_probe = 0.0  # a Retry-After of this outage does not delay the next
            since = self.held_since if self.held_since is not None else self._clock()
            held = self._clock() - since
            self.held_seconds += held
            logs.log.warning("recovered", held_seconds=round(held, 1), probes=self.probes)
            self.held_since = None
            # Refill enough for a fresh start; an empty bucket would reopen at once.
            self._tokens = max(self._tokens, self._capacity // 2)
            self._closed.set()

    def record_trouble(
        self,
        ref: int = 0,
        *,
        timeout: bool = False,
        what: str = "",
        retry_after: float | None = None,
    ) -> bool:
        """A transient failure of reference `ref` (any stable id, e.g. its line); `what`
        the API did (`HTTP 503`, `timeout`), for the warnings; `retry_after` its
        `Retry-After`, the earliest next probe if an outage holds everyone.

        True if it counts against that reference's tries.
        """
        self.last_trouble = what or self.last_trouble
        self._streak += 1
        if len(self._streak_refs) < MIN_DISTINCT:
            self._streak_refs.add(ref)
        if not self._open:
            cost = TIMEOUT_COST if timeout else RETRY_COST
            everyone = self._streak >= self._threshold and len(self._streak_refs) >= MIN_DISTINCT
            if not everyone and self._tokens >= cost:
                self._tokens -= cost
                return True  # its own retry waits for its Retry-After (the canceller's)
            self.declare_outage()
        if retry_after:  # the hold's next probe waits for it (never an old one: see record_ok)
            self._next_probe = max(self._next_probe, self._clock() + retry_after)
        return False

    def declare_outage(self) -> None:
        """Open the gate: hold everyone, let one probe through at a time."""
        if self._open:
            return
        self._open = True
        self.held_since = self._clock()
        # not before a Retry-After the API asked for (see `record_trouble`)
        self._next_probe = max(self._next_probe, self._clock() + self._probe_interval)
        self._closed.clear()
        logs.log.warning(
            "holding",
            reason=f"the API is failing for everyone ({self.last_trouble})",
            held=len(self._line) + 1,
            give_up_after=self._give_up_after,
            hint="references are held, not failed; one probe at a time until it answers",
        )

    def quiet_since(self, successes: int) -> bool:
        """True if no request of anyone has succeeded since `successes` was read.

        With few workers a streak cannot reach several references before one of them
        uses up its tries; then that reference's own trouble and an outage look alike,
        and the canceller asks the API about another payment to tell them apart.
        """
        return self.successes == successes
