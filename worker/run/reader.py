"""Reader: the input's rows, admitted, onto the workers' queue.

It reads the input a chunk at a time (`input.source.read_batches`: through the event
loop, so a slow pipe holds up nobody), or, for a small file, takes the chunks the
pre-pass already read and screened (`input.screened`: such a file is read once), has
`Admission` decide each row, and puts the
references to send on a bounded `asyncio.Queue`; the bound (`READ_AHEAD`) is how far
reading runs ahead of the workers, so what a stop leaves read but unsent is small (the
rerun sends it). Rows not to send go to the writer: invalid and duplicate rows as
results, rows an earlier run finished as settled. At the end of the input it puts one
`None` per worker, which ends that worker.

It stops at `--max-references` on a stream (the cap's guard rail: what was read is
still sent) and when the job cancels its task (any other stop). `close` closes the
input and returns how it was read (`Reading`): the reader counts, nobody else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from worker.errors import InputChanged, InputError
from worker.input.admission import Admission, Reported, Send
from worker.input.parsed import Parsed
from worker.input.screened import Batch, Screened
from worker.input.source import Source, read_batches
from worker.observe import logs
from worker.run.skip import Before
from worker.run.summary import Reading
from worker.run.writer import Writer

#: References admitted ahead of the workers at most: what a stop leaves read but
#: unsent (the rerun sends them).
READ_AHEAD = 256


#: What a run whose input changed under it tells a person to do (its rerun is refused).
CHANGED_FIX = (
    "the input changed during the run; if the change is meant, run the same command with "
    "--allow-changed-input (what was done stays in the report and is not sent again)"
)


def over_cap(cap: int, dry_run: bool = False) -> str:
    taken = "would have been sent (a dry run sends nothing)" if dry_run else "were sent"
    return (
        f"stopped by a guard rail: the input holds more than --max-references {cap} "
        f"references to send; the first {cap} {taken}, the rest not read"
    )


class Reader:
    """Puts the input's admitted references on `queue`; one task."""

    def __init__(
        self,
        source: Source,
        admission: Admission,
        queue: asyncio.Queue[Send | None],
        writer: Writer,
        *,
        workers: int,
        max_sends: int | None = None,
        on_cap: Callable[[str], None] = lambda reason: None,
        screened: Screened | None = None,
        dry_run: bool = False,
        before: Before | None = None,
    ) -> None:
        """`screened`: the whole of `source` as the pre-pass screened it (then the
        file is not read again; past `before`, when given); `dry_run`: the cap's message
        says nothing was sent; `before`: the rows an earlier run finished before a
        checkpoint, which the input is read from (`run.skip`)."""
        self._source = source
        self._admission = admission
        self._queue = queue
        self._writer = writer
        self._workers = workers
        self._max_sends = max_sends
        self._on_cap = on_cap
        self._screened = screened
        self._dry_run = dry_run
        self._before = before
        if before is not None and screened is None:
            source.resume_at(before.at)
        self._batches: AsyncGenerator[Batch, None] = (
            _kept(screened, source) if screened else self._screen(read_batches(source))
        )
        self._rows = 0
        self._sends = 0
        self._done = False
        self._error: str | None = None
        self._fix: str | None = None
        self._taken = 0  # kept chunks handed on (see `close`)
        self._past = 0  # lines before the checkpoint, once their rows are counted

    async def run(self) -> None:
        """Read to the end (or the cap, or an input error), then end every worker."""
        try:
            await self._read()
        except (OSError, InputError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._error = f"input became unreadable after {self._rows} rows: {why}"
            if isinstance(exc, InputChanged):  # the rerun is refused, as for any changed input
                self._fix = CHANGED_FIX
            logs.log.error("input_error", error=self._error)
        for _ in range(self._workers):
            await self._queue.put(None)

    async def _read(self) -> None:
        queue, writer, cap = self._queue, self._writer, self._max_sends
        if self._before is not None:  # rows the report finished, not read again
            for outcome, rows in self._before.settled.items():
                writer.settled(outcome, rows)
                self._rows += rows
            self._past = self._before.at.line - 1  # and their lines, read as far as counts go
        async for items, keys in self._batches:
            self._taken += 1
            for admitted in self._admission.decide(items, keys):
                if admitted is None:  # another shard's row
                    continue
                if isinstance(admitted, Send):
                    if cap is not None and self._sends == cap:
                        # this row is not taken: not read
                        self._on_cap(over_cap(cap, self._dry_run))
                        return
                    await queue.put(admitted)  # a stop while it waits: not taken
                    self._sends += 1
                    self._rows += 1
                elif isinstance(admitted, Reported):
                    self._rows += 1
                    writer.settled(admitted.outcome)
                else:
                    self._rows += 1
                    writer.add(admitted)
        self._done = True

    async def close(self) -> Reading:
        """Close the input; how much of it was read."""
        with contextlib.suppress(OSError, InputError):
            await self._batches.aclose()
        source, done = self._source, self._done
        if done and (grown := source.grown()):
            logs.log.warning(
                "input_grew",
                input=source.name,
                bytes_not_read=grown,
                why="the file grew after it was counted; only what was counted was read "
                "and sent: the rest is for a rerun (with --allow-changed-input)",
            )
        source.close()
        read = self._screened or source  # what counted the lines: the pre-pass, or this read
        lines = read.lines_seen
        if self._screened and not done:  # stopped early: the lines of the chunks handed on
            lines = self._screened.lines_at[self._taken - 1] if self._taken else self._past
        return Reading(
            done=done,
            error=self._error,
            fix=self._fix,
            rows=self._rows,
            lines=lines,
            lines_lost=read.lines_seen - read.lines_accounted if done else 0,
            blank_rows=read.blank_rows,
            rows_seen=read.rows_seen,
        )

    async def _screen(self, batches: AsyncIterator[list[Parsed]]) -> AsyncGenerator[Batch, None]:
        async for batch in batches:
            yield self._admission.screen(batch)


async def _kept(screened: Screened, source: Source) -> AsyncGenerator[Batch, None]:
    """The pre-pass's chunks, each once the file's bytes it came from are checked to
    be what was counted (InputChanged if not), with a turn of the loop after each."""
    for batch, end in zip(screened.batches, screened.ends, strict=True):
        source.check_to(end)
        yield batch
        await asyncio.sleep(0)
