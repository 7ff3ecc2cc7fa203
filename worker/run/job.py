"""Job: one run's pipeline, from its start to its last written row.

    reader ──▶ asyncio.Queue ──▶ workers ×N ──▶ writer ──▶ report, journal
       └──── invalid, duplicate and settled rows ────▲

The job is handed its stages (built by `run/main.py`, or by a test with fakes),
starts their tasks, and owns the `Ledger`: every way a run stops (a signal, a guard
rail, an abort) goes through `ledger.stop`, which closes the `StopGate` so that no
new request is written, and wakes the job. Shutdown then follows Go's "pipelines and
cancellation": the reader and the idle workers are cancelled; busy workers finish
within `--grace-seconds` (at once on an abort that is not graceful, or a second
signal), then are cancelled; the writer writes every row it was handed, and only
then does `run` return.
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
from functools import partial
from typing import Any, Protocol

from worker.control.guard import RejectionGuard
from worker.control.stop import Stopped, Unfinished
from worker.errors import AbortError, StorageError
from worker.input.admission import Send
from worker.model import DETAIL_LIMIT, Outcome, Result, Row
from worker.observe import logs, progress
from worker.observe.progress import Snapshot, View
from worker.run.ledger import Ledger, Stop
from worker.run.reader import Reader
from worker.run.summary import Reading
from worker.run.writer import Writer

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
    """One run of `run` or `check`: its stages given, its stops owned."""

    def __init__(
        self,
        *,
        reader: Reader,
        queue: asyncio.Queue[Send | None],
        processor: Processor,
        writer: Writer,
        ledger: Ledger,
        concurrency: int,
        grace_seconds: float,
        guard: RejectionGuard | None = None,
        requests: Callable[[], int] = lambda: 0,
        extras: Callable[[], dict[str, Any]] = dict,
        hard_exit: Callable[[int], None] = hard_exit_soon,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._queue = queue
        self._processor = processor
        self.writer = writer
        self.ledger = ledger
        self._concurrency = concurrency
        self._grace = grace_seconds
        self._guard = guard or RejectionGuard(0)
        self._requests = requests
        self._extras = extras
        self._hard_exit = hard_exit
        self._clock = clock
        self._started = clock()
        self._busy: set[asyncio.Task[None]] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._second = asyncio.Event()  # a second signal: stop waiting for anyone

    # -- the workers ----------------------------------------------------------------

    async def _work(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        queue, writer, ledger = self._queue, self.writer, self.ledger
        # Checked before waiting too: after a stop, a worker whose request just ended
        # must not wait on a queue nobody fills any more (the grace period would pass).
        while not ledger.stopped and (send := await queue.get()) is not None:
            if ledger.stopped:  # taken but not sent: no row, the rerun sends it
                ledger.not_sent += 1
                return
            self._busy.add(task)
            try:
                result = await self._process(send)
            finally:
                self._busy.discard(task)
            if result is None:
                return
            writer.add(result)

    async def _process(self, send: Send) -> Result | None:
        """The row's result; None when the run stops (the row stays unreported)."""
        row = send.row
        try:
            result = await self._processor.process(row, maybe_landed=send.maybe_landed)
        except Stopped:  # caught before its first request: no row, the rerun sends it
            self.ledger.not_sent += 1
        except StorageError:  # the writer failed before this cancel: it was not sent
            self.ledger.stop(Stop.abort(self.writer.failure or "the report failed", graceful=True))
        except Unfinished as unfinished:  # an abort between two of its requests: its row
            cause = unfinished.cause
            fix = cause.fix if isinstance(cause, AbortError) else None
            self.ledger.stop(Stop.abort(str(cause), fix=fix))
            return unfinished.result  # type: ignore[no-any-return]
        except AbortError as exc:  # refused credentials, no token, an outage given up on
            self.ledger.not_sent += 1  # caught before its first request: the rerun sends it
            self.ledger.stop(Stop.abort(str(exc), fix=exc.fix))
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
        else:
            # after a stop, rows end early (`failed`, "stopped before its next request"):
            # not answers the rail may read, and its exit 4 would hide the stop's own
            if not self.ledger.stopped and (reason := self._guard.observe(result)) is not None:
                self.ledger.stop(Stop.guard(reason))
            return result
        return None

    # -- signals ----------------------------------------------------------------------

    def interrupt(self, signum: int) -> None:
        """SIGTERM / SIGINT: stop sending, let in-flight requests finish; twice: now."""
        stop = Stop.signal(signum)
        self.ledger.stop(stop)
        if self.ledger.signals == 1:
            gate = self.ledger.gate
            logs.log.warning(
                "stopping",
                signal=stop.reason,
                in_flight=gate.in_flight_at_stop,
                requests_sent=gate.sent_at_stop,
                grace_seconds=self._grace,
                hint=f"no new request is sent; the {gate.in_flight_at_stop} in flight may "
                f"finish within {self._grace:g} s; a second signal stops at once",
            )
            return
        logs.log.warning("stopping_now", signal=stop.reason)
        first = self.ledger.signal
        self._hard_exit(first.code if first else stop.code)
        self._second.set()

    # -- the run ----------------------------------------------------------------------

    async def run(self, view: View, every: float, total: int | None) -> Reading:
        """Run the stages to the end (or a stop); every row handed over is written."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.interrupt, signum)
        writing = asyncio.create_task(self.writer.run())
        reading = asyncio.create_task(self._reader.run())
        reading.add_done_callback(partial(self._broke, "reading the input"))
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]
        for task in self._workers:
            task.add_done_callback(partial(self._broke, "a worker"))
        showing = asyncio.create_task(self._progress(view, every, total))
        try:
            workers: asyncio.Future[Any] = asyncio.gather(*self._workers, return_exceptions=True)
            stopping: asyncio.Future[Any] = asyncio.create_task(self.ledger.stopping.wait())
            await asyncio.wait([workers, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not workers.done():
                showing.cancel()  # nothing moves now: no more progress, no stale ETA
                reading.cancel()
                await self._shutdown()
            await workers
            gate = self.ledger.gate
            if gate.stopped:
                logs.log.warning("stopped", **gate.account(not_sent=self.ledger.not_sent))
        finally:
            showing.cancel()
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)  # a failure: already told
            await self.writer.close(writing)
            read = await self._reader.close()
            progress.end(view, self.snapshot(total), interrupted=self.ledger.signal is not None)
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
        return read

    def _broke(self, where: str, task: asyncio.Task[None]) -> None:
        """A stage that breaks (a bug) stops the run, loudly: a broken reader would leave
        the workers waiting forever, a broken worker its reference without a row."""
        if not task.cancelled() and (exc := task.exception()) is not None:
            if isinstance(exc, AbortError):  # not a bug: a disk the on-disk index is on, full
                self.ledger.stop(Stop.abort(str(exc), fix=exc.fix, graceful=True))
                return
            logs.log.error("internal_error", where=where, error=repr(exc))
            self.ledger.stop(Stop.abort(f"a bug stopped {where}: {exc!r}", graceful=True))

    async def _shutdown(self) -> None:
        for task in self._workers:
            if task not in self._busy:
                task.cancel()
        busy = [t for t in self._workers if not t.done()]
        if busy and self.ledger.graceful and self.ledger.signals < 2:
            second: asyncio.Future[Any] = asyncio.create_task(self._second.wait())
            finished: asyncio.Future[Any] = asyncio.gather(*busy, return_exceptions=True)
            await asyncio.wait(
                [finished, second],
                timeout=self._grace,
                return_when=asyncio.FIRST_COMPLETED,
            )
            second.cancel()
        abandoned = [t for t in self._workers if not t.done()]
        for task in abandoned:
            task.cancel()
        if abandoned:
            logs.log.warning("abandoned_in_flight", references=len(abandoned))

    def snapshot(self, total: int | None) -> Snapshot:
        tally = self.writer.tally
        return Snapshot(
            done=sum(tally.outcomes.values()),
            total=total,
            outcomes=tally.outcomes,
            requests=self._requests(),
            elapsed=self._clock() - self._started,
            settled_before=tally.rows_already_reported,
            **self._extras(),
        )

    async def _progress(self, view: View, every: float, total: int | None) -> None:
        while True:
            await asyncio.sleep(every)
            view.update(self.snapshot(total))
