"""Job: the lifecycle of one run: stages, signals, shutdown. It builds nothing itself.

    input ──admission──▶ intake ◀──pulled by── workers ×N ──▶ outbox ──▶ report, journal
                │                                                ▲
                └── invalid / duplicate rows go straight to it ──┘

There is no reader task and no queue: each worker pulls its next reference from the
`Intake` (reading on when none is waiting) and hands its result to the `Outbox`,
which writes a loop turn's rows with one write (and the turn's intents with another).
Shutdown follows Go's "pipelines and cancellation": the end of the input drains the
workers; a signal stops the intake, lets busy workers finish within
`--grace-seconds`, then cancels them; an abort cancels at once, except a storage
failure, after which in-flight requests may still finish (their cancels may have
landed). Adding to the outbox never blocks, so no worker waits on a full disk, and
every finished reference that can be written has its row.

Every stop (signal, guard rail, abort) first closes the `StopGate`: no request is
written after it (`control/stop.py`), so only those on the wire can finish; the
`stopped` event then counts what the stop left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from worker.control.guard import RejectionGuard
from worker.control.stop import StopGate, Stopped
from worker.errors import ApiUnreachable, AuthUnavailable, CredentialsRefused, StorageError
from worker.input.admission import Admission, Send
from worker.input.source import Source
from worker.model import DETAIL_LIMIT, Outcome, Result, Row
from worker.observe import logs, progress
from worker.observe.progress import Snapshot, View
from worker.run.intake import Intake
from worker.run.outbox import Outbox
from worker.run.summary import EXIT_SIGINT, EXIT_SIGTERM, Ending

#: After a second signal, the process ends within this many seconds whatever is stuck.
HARD_EXIT_SECONDS = 3.0


class Processor(Protocol):
    """Turns a row into its result: the `Canceller`, or `DryRun`."""

    async def process(self, row: Row, *, maybe_landed: bool = False) -> Result: ...


def hard_exit_soon(code: int) -> None:
    """Ends the process in HARD_EXIT_SECONDS: every written row is whole, the journal
    covers what was sent, so nothing is lost that a rerun cannot finish."""
    timer = threading.Timer(HARD_EXIT_SECONDS, _exit_now, args=(code,))
    timer.daemon = True
    timer.start()


def _exit_now(code: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        if sys.stderr.isatty():
            sys.stderr.write("\x1b[?25h\n")  # the live display hid the cursor
            sys.stderr.flush()
    os._exit(code)


class Job:
    """One run of `run` or `check` over prepared input, with its collaborators given."""

    def __init__(
        self,
        *,
        source: Source,
        admission: Admission,
        processor: Processor,
        outbox: Outbox,
        concurrency: int,
        grace_seconds: float,
        guard: RejectionGuard | None = None,
        gate: StopGate | None = None,
        max_sends: int | None = None,
        requests: Callable[[], int] = lambda: 0,
        extras: Callable[[], dict[str, Any]] = dict,
        hard_exit: Callable[[int], None] = hard_exit_soon,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._processor = processor
        self._concurrency = concurrency
        self._grace = grace_seconds
        self._requests = requests
        self._extras = extras
        self._hard_exit = hard_exit
        self.tally = outbox.tally  # one tally: the outbox counts the rows it writes
        self._guard = guard or RejectionGuard(0)
        self._gate = gate or StopGate()
        self._held_back = 0  # references a stop caught before their first request
        self.end = Ending()
        self._graceful_abort = False
        self._outbox = outbox
        outbox.listen(lambda reason: self.abort(reason, graceful=True))
        self._intake = Intake(
            source,
            admission,
            unsent=self._outbox.add,
            tally=self.tally,
            end=self.end,
            stopping=lambda: self._stopping,
            max_sends=max_sends,
            over_cap=self._cap_reached,
        )
        self._stopping = False
        self._stop = asyncio.Event()
        self._signals = 0
        self._busy: set[asyncio.Task[None]] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._clock = clock
        self._started = clock()

    # -- the workers ----------------------------------------------------------------

    async def _work(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        while (send := await self._intake.next()) is not None and not self._stopping:
            self._busy.add(task)
            try:
                result = await self._process(send)
            finally:
                self._busy.discard(task)
            if result is None:
                return
            self._outbox.add(result)

    async def _process(self, send: Send) -> Result | None:
        """The row's result; None when the run must abort (the row stays unreported)."""
        row = send.row
        try:
            result = await self._processor.process(row, maybe_landed=send.maybe_landed)
            if (reason := self._guard.observe(result)) is not None:
                self.stop_by_guard(reason)
            return result
        except Stopped:  # caught before its first request: no row, the rerun sends it
            self._held_back += 1
        except (CredentialsRefused, AuthUnavailable, ApiUnreachable) as exc:
            self.abort(str(exc), fix=getattr(exc, "fix", None))
        except StorageError:  # the outbox failed before this cancel: it was not sent
            self.abort(self._outbox.failure or "the report could not be written", graceful=True)
        except Exception as exc:  # a bug must cost one row's outcome, never the row
            logs.log.exception("internal_error", line=row.line)
            return Result(
                row.line,
                row.merchant,
                row.reference,
                Outcome.FAILED,
                error_type="internal_error",
                detail=f"{type(exc).__name__}: {exc}"[:DETAIL_LIMIT],
            )
        return None

    # -- control ----------------------------------------------------------------------

    def abort(self, reason: str, *, graceful: bool = False, fix: str | None = None) -> None:
        """Stop sending. `graceful`: in-flight requests may still finish (their cancels
        may have landed, so their answers are worth having); otherwise cancel at once.
        `fix`: what a person must change first (refused credentials), when a rerun alone
        cannot help."""
        self._gate.stop()
        if self.end.abort_reason is None:
            self.end.abort_reason = reason
            self.end.fix = fix
            self._graceful_abort = graceful
            logs.log.error("aborted", reason=reason, in_flight=self._gate.in_flight_at_stop)
        self._stopping = True
        self._stop.set()

    def stop_by_guard(self, reason: str) -> None:
        """A guard rail: no new sends; what is in flight finishes (exit 4)."""
        self._gate.stop()
        if self.end.guard_reason is None and self.end.abort_reason is None:
            self.end.guard_reason = reason
            self._graceful_abort = True
            logs.log.error("guard_rail", reason=reason, in_flight=self._gate.in_flight_at_stop)
        self._stopping = True
        self._stop.set()

    def _cap_reached(self, reason: str) -> None:
        """--max-references on an input read once: reading stops; what was read is sent."""
        if self.end.guard_reason is None:
            self.end.guard_reason = reason
            logs.log.error("guard_rail", reason=reason)

    def interrupt(self, signum: int) -> None:
        """SIGTERM / SIGINT: stop sending, let in-flight requests finish; twice: now."""
        self._gate.stop()
        self._signals += 1
        if self.end.signal_code is None:
            self.end.signal_code = EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM
        name = signal.Signals(signum).name
        if self._signals == 1:
            in_flight = self._gate.in_flight_at_stop
            logs.log.warning(
                "stopping",
                signal=name,
                in_flight=in_flight,
                requests_sent=self._gate.sent_at_stop,
                grace_seconds=self._grace,
                hint=f"no new request is sent; the {in_flight} in flight may finish within "
                f"{self._grace:g} s; a second signal stops at once",
            )
        else:
            logs.log.warning("stopping_now", signal=name)
            self._hard_exit(self.end.signal_code)
        self._stopping = True
        self._stop.set()

    async def _shutdown(self) -> None:
        for task in self._workers:
            if task not in self._busy:
                task.cancel()
        busy = [t for t in self._workers if not t.done()]
        graceful = self.end.abort_reason is None or self._graceful_abort
        if busy and graceful and self._signals < 2:
            second = asyncio.ensure_future(self._second_signal())
            await asyncio.wait(
                [asyncio.ensure_future(asyncio.wait(busy)), second],
                timeout=self._grace,
                return_when=asyncio.FIRST_COMPLETED,
            )
            second.cancel()
        abandoned = [t for t in self._workers if not t.done()]
        for task in abandoned:
            task.cancel()
        if abandoned:
            logs.log.warning("abandoned_in_flight", references=len(abandoned))
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _second_signal(self) -> None:
        seen = self._signals
        while self._signals == seen:
            self._stop.clear()
            await self._stop.wait()

    def snapshot(self, total: int | None) -> Snapshot:
        return Snapshot(
            done=sum(self.tally.outcomes.values()),
            total=total,
            outcomes=self.tally.outcomes,
            requests=self._requests(),
            elapsed=self._clock() - self._started,
            settled_before=self.tally.rows_already_reported,
            **self._extras(),
        )

    # -- the run ----------------------------------------------------------------------

    async def run(self, view: View, every: float, total: int | None) -> Ending:
        """Run the workers to the end (or a stop); every finished row is written."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.interrupt, signum)
        progress_task = asyncio.create_task(self._progress(view, every, total))
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]
        try:
            all_done: asyncio.Future[object] = asyncio.ensure_future(asyncio.gather(*self._workers))
            stop: asyncio.Future[object] = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait([all_done, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not all_done.done():
                progress_task.cancel()  # nothing moves now: no more progress, no stale ETA
                await self._shutdown()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await all_done
            if self._gate.stopped:
                logs.log.warning("stopped", **self._gate.account(not_sent=self._held_back))
        finally:
            progress_task.cancel()
            await self._intake.close()
            self._outbox.flush()
            self.end.unwritten = self._outbox.unwritten
            interrupted = self.end.signal_code is not None
            progress.end(view, self.snapshot(total), interrupted=interrupted)
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
        return self.end

    async def _progress(self, view: View, every: float, total: int | None) -> None:
        while True:
            await asyncio.sleep(every)
            view.update(self.snapshot(total))
