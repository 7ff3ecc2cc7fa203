"""Outbox: the writer stage, a plain object instead of a task behind a queue.

It takes two things: finished rows (`add`, from the workers and the intake), and,
from the canceller, the intent to send a reference's first cancel (`record`).
Whatever was handed over during one turn of the event loop is written right after
that turn: the rows with one write to the report (at most `WRITE_BATCH` rows each),
then the intents with one write to the journal.

`record` returns once its intent is durable: the flush after its loop turn appends
the turn's intents with one write, then one `fdatasync` in a worker thread covers
them (and whatever was appended while an earlier sync ran: a group commit), so the
event loop goes on serving the other workers while the disk works. It raises
`StorageError` if anything failed to be written or synced. That gives, with one write
per loop turn instead of two per reference, and one sync per batch:

- no cancel goes out before its intent is journaled and on stable storage, and only
  just before (a rerun's extra queries are bounded by the cancels of one batch);
- a worker sends no new cancel while its last row is unwritten, so when the report
  cannot be written, at most `--concurrency` applied cancels have no row.

A batch the report cannot take is counted as lost (`unwritten`: its cancels are in
the journal, and the rerun asks the API), and the listener (the job) stops the run;
nothing here ever blocks.

Usage::

    outbox = Outbox(writer, tally, journal)
    outbox.listen(job_abort)                     # called with the reason, once per failure
    await outbox.record("T1", "order-1")         # then send the cancel
    outbox.add(result)                           # written after this loop turn
    outbox.flush()                               # the last call of a run
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from worker.errors import StorageError
from worker.model import Outcome, Result
from worker.observe import logs
from worker.run.summary import Tally

#: Rows written with one `write` call at most.
WRITE_BATCH = 512


class RowWriter(Protocol):
    """Appends whole rows to the report: `ReportWriter`."""

    rows_written: int

    def write(self, results: list[Result]) -> None: ...


class IntentLog(Protocol):
    """Appends intents with one write, and makes them durable: `report.IntentJournal`."""

    def append(self, pairs: list[tuple[str, str]]) -> None: ...

    def sync(self) -> None: ...  # called in a worker thread


class Outbox:
    """Finished rows and intents of one loop turn, written right after it."""

    def __init__(self, writer: RowWriter, tally: Tally, journal: IntentLog | None = None) -> None:
        self._writer = writer
        self.tally = tally
        self._journal = journal
        self._rows: list[Result] = []
        self._intents: list[tuple[str, str]] = []
        self._waiting: asyncio.Future[None] | None = None  # this turn's intents: synced
        self._unsynced: list[asyncio.Future[None]] = []  # appended, no sync started yet
        self._syncing = False
        self._scheduled = False
        self._listeners: list[Callable[[str], None]] = []
        self.failure: str | None = None  # the first write that failed, as the reason
        self.unwritten = 0  # finished rows the report could not take

    def listen(self, on_failure: Callable[[str], None]) -> None:
        self._listeners.append(on_failure)

    def add(self, result: Result) -> None:
        self._schedule()
        self._rows.append(result)
        if len(self._rows) >= WRITE_BATCH:
            self._write_rows()

    async def record(self, merchant: str, reference: str) -> None:
        """Journal a cancel's intent; returns when it is durable. Raises StorageError."""
        if self._journal is None:
            await asyncio.sleep(0)  # the flush scheduled earlier, if any, runs first
        else:
            self._schedule()
            self._intents.append((merchant, reference))
            if self._waiting is None:
                self._waiting = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._waiting)  # shared: one waiter's cancel is not all's
        if self.failure is not None:
            raise StorageError(self.failure)

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write what was handed over since the last flush (also the last call of a run)."""
        self._scheduled = False
        self._write_rows()
        intents, self._intents = self._intents, []
        waiting, self._waiting = self._waiting, None
        if intents and self.failure is None and self._journal is not None:
            try:
                self._journal.append(intents)
            except Exception as exc:  # any failure: their cancels are not sent
                self._fail(f"the intent journal could not be written: {_why(exc)}")
        if waiting is not None:
            self._unsynced.append(waiting)
            self._sync_next()

    def _sync_next(self) -> None:
        """Start one sync for every batch appended and not yet covered, unless one runs
        (its end starts the next). After a failure, the waiters are released to fail."""
        if self._syncing or not self._unsynced:
            return
        covered, self._unsynced = self._unsynced, []
        if self.failure is not None or self._journal is None:
            _release(covered)
            return
        self._syncing = True
        sync = asyncio.get_running_loop().run_in_executor(None, self._journal.sync)
        sync.add_done_callback(lambda done: self._synced(done, covered))

    def _synced(self, done: asyncio.Future[None], covered: list[asyncio.Future[None]]) -> None:
        self._syncing = False
        exc = done.exception() if not done.cancelled() else None
        if exc is not None or done.cancelled():
            why = _why(exc) if isinstance(exc, Exception) else "the sync was cancelled"
            self._fail(f"the intent journal could not be synced: {why}")
        _release(covered)
        self._sync_next()

    def _write_rows(self) -> None:
        batch, self._rows = self._rows, []
        if batch:
            try:
                self._writer.write(batch)
            except Exception as exc:  # a full disk or a bug: these rows are not on disk
                self.unwritten += len(batch)
                self._fail(f"the report could not be written: {_why(exc)}")
            else:
                _count(batch, self.tally)
        self.tally.rows_written = self._writer.rows_written

    def _fail(self, reason: str) -> None:
        self.failure = self.failure or reason
        for listener in self._listeners:
            listener(reason)


def _release(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


def _why(exc: Exception) -> str:
    """A storage error says what it is (file and OS error); anything else is a bug, and
    is logged with its traceback, since it stops the run."""
    if isinstance(exc, StorageError):
        return str(exc)
    logs.log.exception("internal_error", where="writing the report or the journal")
    return f"{type(exc).__name__}: {exc}"


def _count(batch: list[Result], tally: Tally) -> None:
    debug = logs.is_debug()  # checked once per batch: the hot path builds no event
    for r in batch:
        tally.count(r.outcome)
        if r.outcome is Outcome.CANCELED and r.amount is not None and r.currency:
            tally.released[r.currency] += r.amount
        elif r.outcome is Outcome.CHECKED and r.payment_state:
            tally.states[r.payment_state] += 1
        if debug:
            logs.log.debug(
                "reference_done",
                line=r.line,
                merchant=r.merchant,
                reference=r.reference,
                outcome=r.outcome.value,
                http_status=r.http_status,
                attempts=r.attempts,
            )
