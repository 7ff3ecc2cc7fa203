"""Intake: the reader stage, pulled by the workers instead of pushed through a queue.

A worker asks `next()` for its next reference. Most of the time one is waiting and
it is a plain `popleft`, with no task switch. When none is, that worker reads on
(under a lock, so one reads while the others wait): it admits rows of the chunk read
last (or of the next one) until `READ_AHEAD` references wait, and routes the other
rows: invalid and duplicate rows to the report, rows an earlier run finished to the
tally.

Usage, one loop per worker::

    while (send := await intake.next()) is not None:
        ...

`next()` returns None at the end of the input, on a stop, on an input error, or past
`--max-references` on a stream; `close()` closes the input and records how reading
ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator

from worker.errors import InputError
from worker.input.admission import Admission, Admitted, Reported, Send
from worker.input.parsed import Parsed
from worker.input.source import Source, read_batches
from worker.model import Result
from worker.observe import logs
from worker.run.summary import Ending, Tally

#: References admitted ahead of the workers at most: what a stop leaves read but
#: unsent (the rerun sends them), and how far `rows_read` runs ahead of the report.
READ_AHEAD = 256


class Intake:
    """The input's references to send, admitted a chunk at a time."""

    def __init__(
        self,
        source: Source,
        admit: Admission,
        *,
        unsent: Callable[[Result], None],
        tally: Tally,
        end: Ending,
        stopping: Callable[[], bool],
        max_sends: int | None = None,
        over_cap: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._source = source
        self._admit = admit
        self._unsent = unsent
        self._tally = tally
        self._end = end
        self._stopping = stopping
        self._max_sends = max_sends
        self._over_cap = over_cap
        self._batches: AsyncGenerator[list[Parsed], None] = read_batches(source)
        self._rows: Iterator[Admitted] | None = None  # the rest of the chunk read last
        self._ready: deque[Send] = deque()
        self._lock = asyncio.Lock()
        self._ended = False
        self._sends = 0

    async def next(self) -> Send | None:
        """The next reference to send, or None when there are no more."""
        if self._ready:
            return self._ready.popleft()
        async with self._lock:
            while not self._ready:
                if self._ended or self._stopping():
                    return None
                await self._read_on()
            return self._ready.popleft()

    async def _read_on(self) -> None:
        if self._rows is None:
            try:
                batch = await anext(self._batches)
            except StopAsyncIteration:
                self._ended = self._end.input_done = True
                return
            except (OSError, InputError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self._end.input_error = (
                    f"input became unreadable after {self._tally.rows_read} rows: {why}"
                )
                logs.log.error("input_error", error=self._end.input_error)
                self._ended = True
                return
            self._rows = iter(self._admit.chunk(batch))
        if self._admit_some(self._rows) < READ_AHEAD:
            self._rows = None  # the chunk is used up

    def _admit_some(self, rows: Iterator[Admitted]) -> int:
        """Take admitted rows until READ_AHEAD references wait for a worker or the chunk
        ends (a chunk is admitted at once: state kept on disk is asked in a few queries)."""
        ready, tally = self._ready, self._tally
        taken = 0
        for admitted in rows:
            if admitted is None:
                continue
            tally.rows_read += 1
            if isinstance(admitted, Send):
                self._sends += 1
                if self._max_sends is not None and self._sends > self._max_sends:
                    tally.rows_read -= 1  # not taken: the rerun reads it again
                    self._over_cap(
                        f"stopped by a guard rail: the input holds more than "
                        f"--max-references {self._max_sends} references to send; the "
                        f"first {self._max_sends} were sent, the rest not read"
                    )
                    self._ended = True
                    break
                ready.append(admitted)
                taken += 1
                if taken == READ_AHEAD:
                    break
            elif isinstance(admitted, Reported):
                tally.rows_already_reported += 1
                tally.count(admitted.outcome)
            else:
                self._unsent(admitted)
        return taken

    async def close(self) -> None:
        """Close the input and record how much of it was read."""
        with contextlib.suppress(OSError, InputError):
            await self._batches.aclose()
        source, end = self._source, self._end
        if end.input_done and (grown := source.grown()):
            logs.log.warning(
                "input_grew",
                input=source.name,
                bytes_not_read=grown,
                why="the file grew after it was counted; only what was counted was read "
                "and sent: the rest is for a rerun (with --allow-changed-input)",
            )
        source.close()
        if end.input_done:
            end.lines_lost = source.lines_seen - source.lines_accounted
        end.lines_read, end.blank_rows = source.lines_seen, source.blank_rows
