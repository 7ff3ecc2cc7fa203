"""Stop gate: after a stop, nothing new goes on the wire; what is on it may finish.

A stop is SIGTERM, SIGINT, a guard rail or an abort (`run/ledger.py` calls `stop`). From
then on no request is sent, whoever is waiting for what: `with gate:`, entered right
before a request is written (after its outage gate, its token, its journal line and its
rate slot, with nothing awaited in between), raises `Stopped`. Waits that can be
long (a rate slot, a token fetch, an outage's probe turn, a retry's backoff) are raced
against the stop through `sleep` and `wait`, so a waiting worker leaves at once
instead of sending late or holding up the shutdown. The gate also counts the requests
on the wire, so that the run can say exactly what a stop left (`account`).

Nothing else is clever here: one flag, one future that every racing wait watches, and
counters. A stopped reference keeps whatever state it had: never sent, it has no row
(its rerun sends it); sent before the stop, it ends `failed` and its journal line makes
the rerun ask the API before any cancel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """The run stopped before this request went on the wire: it is not sent."""


class Unfinished(Exception):
    """An abort (`cause`: the outage given up on, refused credentials) caught a reference
    between two of its requests: `result` is its row (`failed`), the abort stops the run."""

    def __init__(self, cause: Exception, result: Any) -> None:
        super().__init__(str(cause))
        self.cause, self.result = cause, result


class StopGate:
    """Shared by the workers and the job of one run; single-threaded (asyncio)."""

    def __init__(self) -> None:
        self.stopped = False
        self._signal: asyncio.Future[None] | None = None  # made inside the running loop
        self.on_wire = 0  # requests written and not answered yet
        self.sent = 0  # requests written in this run
        self.in_flight_at_stop = 0
        self.sent_at_stop = 0
        self.finished_after_stop = 0  # of those in flight at the stop: answered since

    def stop(self) -> None:
        """From now on no request is written; the first call takes the counts."""
        if self.stopped:
            return
        self.stopped = True
        self.in_flight_at_stop = self.on_wire
        self.sent_at_stop = self.sent
        if self._signal is not None and not self._signal.done():
            self._signal.set_result(None)

    def __enter__(self) -> None:
        """`with gate:` around writing one request: `Stopped` after a stop, else the
        request is counted on the wire until the block ends."""
        if self.stopped:
            raise Stopped
        self.on_wire += 1
        self.sent += 1

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.on_wire -= 1
        if kind is None and self.stopped:
            self.finished_after_stop += 1

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep`, cut short by a stop (then `Stopped`)."""
        if self.stopped:
            raise Stopped
        await self.wait(asyncio.sleep(seconds))

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` unless the run stops first (then it is cancelled and
        `Stopped` raised). A future shared with others should come shielded."""
        task = asyncio.ensure_future(awaitable)
        if self.stopped:
            task.cancel()  # never started: nothing to wait for, no warning left behind
            raise Stopped
        if self._signal is None:
            self._signal = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait((task, self._signal), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task.done():  # it ended first (or with the stop, in the same turn): its result
            return task.result()
        task.cancel()
        raise Stopped

    def account(self, *, not_sent: int) -> dict[str, Any]:
        """The `stopped` event's fields: what the stop left, as counted, not as intended.
        `not_sent`: references a stop caught before their first request."""
        in_flight, finished = self.in_flight_at_stop, self.finished_after_stop
        after = self.sent - self.sent_at_stop  # 0 by construction; said if it ever is not
        said = "no request was sent after the stop" if after == 0 else f"{after} sent after it"
        requests = "1 request" if in_flight == 1 else f"{in_flight} requests"
        return {
            "in_flight": in_flight,
            "finished": finished,
            "abandoned": in_flight - finished,
            "requests_sent": self.sent,
            "sent_after_stop": after,
            "not_sent": not_sent,
            "message": f"{said}; {requests} in flight at the stop: {finished} finished, "
            f"{in_flight - finished} abandoned; {not_sent} references caught waiting were "
            "not sent (the rerun sends them)",
        }
