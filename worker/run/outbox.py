"""Outbox: the writer stage, a plain object instead of a task behind a queue.

It takes two things: finished rows (`add`, from the workers and the intake), and,
from the canceller, the intent to send a reference's first cancel (`record`).
Whatever was handed over during one turn of the event loop is written right after
that turn: the rows with one write to the report (at most `WRITE_BATCH` rows each),
then the intents with one write to the journal.

`record` returns once its intent is on disk: it yields one loop turn, and the flush,
scheduled before that, runs first (asyncio runs callbacks in the order they were
scheduled). It raises `StorageError` if anything failed to be written. That gives,
with one write per loop turn instead of two per reference:

- no cancel goes out before its intent is journaled and synced to stable storage
  (one `fdatasync` per batch, in `IntentJournal.record`), and only just before (a
  rerun's extra queries are bounded by the cancels of one turn);
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

from worker.model import Outcome, Result
from worker.observe import logs
from worker.report.storage import StorageError
from worker.run.summary import Tally

#: Rows written with one `write` call at most.
WRITE_BATCH = 512


class RowWriter(Protocol):
    """Appends whole rows to the report: `ReportWriter`."""

    rows_written: int

    def write(self, results: list[Result]) -> None: ...


class IntentLog(Protocol):
    """Appends intents with one write and returns once they are durable:
    `report.IntentJournal`."""

    def record(self, pairs: list[tuple[str, str]]) -> None: ...


class Outbox:
    """Finished rows and intents of one loop turn, written right after it."""

    def __init__(self, writer: RowWriter, tally: Tally, journal: IntentLog | None = None) -> None:
        self._writer = writer
        self.tally = tally
        self._journal = journal
        self._rows: list[Result] = []
        self._intents: list[tuple[str, str]] = []
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
        """Journal a cancel's intent; returns when it is on disk. Raises StorageError."""
        if self._journal is not None:
            self._schedule()
            self._intents.append((merchant, reference))
        await asyncio.sleep(0)  # the flush scheduled above (or earlier) runs first
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
        if intents and self.failure is None and self._journal is not None:
            try:
                self._journal.record(intents)
            except Exception as exc:  # any failure: their cancels are not sent
                self._fail(f"the intent journal could not be written: {_why(exc)}")

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
