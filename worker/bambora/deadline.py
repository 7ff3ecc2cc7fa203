"""Deadlines: one timer for all requests in flight, instead of one per request.

aiohttp's total timeout starts and cancels a timer for every request. On uvloop that
costs about 8 us of CPU a request (benchmarks/api_calls.py: 114 against 106 us per
call), as much as a row's parsing, admission and report together. Here one sweep every
`interval` seconds cancels the requests past their deadline, and the block that was
cancelled raises `TimeoutError`, as `asyncio.timeout` does. Entering and leaving a
deadline is a dict insert and delete.

Usage (inside a task; one deadline at a time per task)::

    deadlines = Deadlines(10.0)
    with deadlines:                   # TimeoutError after 10 s (+ at most `interval`)
        async with session.get(url) as response:
            body = await response.read()

Caveat: a deadline fires up to `interval` late (a tenth of the timeout, at most
`MAX_INTERVAL`): `--timeout 10` ends a stalled request after 10 to 10.1 seconds. It
covers the whole exchange, connecting included, as aiohttp's total timeout did.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

#: The sweep's period at most: how late a deadline can fire.
MAX_INTERVAL = 0.1


class Deadlines:
    """A deadline per task in flight, all checked by one periodic sweep."""

    def __init__(self, seconds: float, *, interval: float | None = None) -> None:
        self.seconds = seconds
        self.interval = interval if interval is not None else min(MAX_INTERVAL, seconds / 10)
        # task -> (when it is due, its cancel requests on entry: those are not ours)
        self._due: dict[asyncio.Task[object], tuple[float, int]] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweep: asyncio.TimerHandle | None = None

    def __enter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None, "a deadline needs a task"
        loop = task.get_loop()
        self._due[task] = (loop.time() + self.seconds, task.cancelling())
        if self._sweep is None:
            self._sweep = loop.call_later(self.interval, self._sweep_once, loop)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        _, before = self._due.pop(task, (0.0, 0))
        if task in self._expired:
            self._expired.discard(task)
            # Our cancel, and nobody else's (a shutdown's cancel must stay a cancel).
            if task.uncancel() <= before and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def _sweep_once(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            now = loop.time()
            for task, (due, _) in self._due.items():
                if due <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()
        finally:  # whatever happened, the next sweep comes: nothing else ends a request
            self._sweep = (
                loop.call_later(self.interval, self._sweep_once, loop) if self._due else None
            )

    def close(self) -> None:
        """Stop the sweep (the end of a run)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
