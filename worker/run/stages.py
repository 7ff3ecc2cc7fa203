"""Stages: the reader and the writer of a run, as plain coroutines over its queues.

`feed` reads the input as it arrives, admits each row and hands it on: to the workers
(`Send`), straight to the writer (invalid and duplicate rows), or to the tally (rows
an earlier run reported). `write` is the only code that touches the report; it takes
every row until its end marker whatever fails, so that no worker can block on a full
queue: a batch the report cannot take is counted as lost (its cancels are in the
intent journal, and the rerun asks the API) and the run is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from worker.input.admission import Admission, Reported, Send
from worker.input.lines import InputError
from worker.input.source import Source, read_batches
from worker.model import Outcome, Result
from worker.observe import logs
from worker.report.storage import StorageError
from worker.run.summary import Ending, Tally

#: Rows written with one `write` call at most: the writer catches up in large steps.
WRITE_BATCH = 512


class RowWriter(Protocol):
    """Appends whole rows to the report: `ReportWriter`."""

    rows_written: int

    def write(self, results: list[Result]) -> None: ...


async def feed(
    source: Source,
    admit: Admission,
    to_workers: asyncio.Queue[Send | None],
    to_writer: asyncio.Queue[Result | None],
    tally: Tally,
    end: Ending,
    *,
    stopping: Callable[[], bool],
    max_sends: int | None = None,
    over_cap: Callable[[str], None] = lambda reason: None,
) -> None:
    """Reader stage: every row of the input to where it belongs, until the end or a stop.

    `max_sends` (`--max-references`) is checked here for an input read once (a file's
    count is checked before the run): the first reference over the cap is not sent.
    """
    sends = 0
    try:
        async with contextlib.aclosing(read_batches(source)) as batches:
            async for batch in batches:
                for parsed in batch:
                    if stopping():
                        return
                    admitted = admit(parsed)
                    if admitted is None:
                        continue
                    tally.rows_read += 1
                    if isinstance(admitted, Send):
                        sends += 1
                        if max_sends is not None and sends > max_sends:
                            tally.rows_read -= 1  # not taken: the rerun reads it again
                            over_cap(
                                f"stopped by a guard rail: the input holds more than "
                                f"--max-references {max_sends} references to send; the "
                                f"first {max_sends} were sent, the rest not read"
                            )
                            return
                        await to_workers.put(admitted)
                    elif isinstance(admitted, Reported):
                        tally.rows_already_reported += 1
                        tally.count(admitted.outcome)
                    else:
                        await to_writer.put(admitted)
        end.input_done = True
        end.lines_lost = source.lines_seen - source.lines_accounted
    except (OSError, InputError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        end.input_error = f"input became unreadable after {tally.rows_read} rows: {why}"
        logs.log.error("input_error", error=end.input_error)
    finally:
        source.close()
        end.lines_read, end.blank_rows = source.lines_seen, source.blank_rows


async def write(
    results: asyncio.Queue[Result | None],
    writer: RowWriter,
    tally: Tally,
    end: Ending,
    abort: Callable[..., None],
) -> None:
    """Writer stage: batches of finished rows to the report, until the end marker."""
    while True:
        item = await results.get()
        batch: list[Result] = []
        while item is not None:
            batch.append(item)
            if len(batch) >= WRITE_BATCH or results.empty():
                break
            item = results.get_nowait()
        if batch:
            try:
                writer.write(batch)
            except StorageError as exc:
                end.unwritten += len(batch)
                abort(f"the report could not be written: {exc}", graceful=True)
            else:
                _count(batch, tally)
        if item is None:
            tally.rows_written = writer.rows_written
            return


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
