"""Reader: admitted references onto the workers' queue, every other row to the writer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from worker.input.admission import Admission, Send
from worker.input.dedup import ExactDeduper
from worker.input.fingerprint import BLOCK, Recorder
from worker.input.screened import Keeper, Screened
from worker.input.source import Source, open_input
from worker.keys import key_of
from worker.model import Outcome, Result
from worker.report.resume import RUN, ByLine, PriorRows
from worker.run.reader import READ_AHEAD, Reader
from worker.run.summary import Reading, Tally
from worker.run.writer import Writer
from worker.settings import Shard

WORKERS = 3


class Report:
    def __init__(self) -> None:
        self.rows: list[Result] = []
        self.rows_written = 0

    def write(self, results: list[Result]) -> None:
        self.rows.extend(results)
        self.rows_written += len(results)


class Watched(asyncio.Queue[Send | None]):
    """A queue that says when it became full (the reader then waits for the workers)."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.filled = asyncio.Event()

    def put_nowait(self, item: Send | None) -> None:
        super().put_nowait(item)
        if self.full():
            self.filled.set()


class Harness:
    def __init__(
        self,
        tmp_path: Path,
        lines: list[str],
        *,
        prior: PriorRows | None = None,
        pending: set[bytes] | None = None,
        max_sends: int | None = None,
        read_once: bool = False,
    ) -> None:
        path = tmp_path / "in.csv"
        path.write_text("payment_reference,merchant_number\n" + "".join(f"{x}\n" for x in lines))
        self.path = path
        self.source = open_input(str(path))
        # read_once: as prepare does for a small file, a first pass screens and keeps
        self.screened = _first_pass(path, self.source) if read_once else None
        self.admission = admission = Admission(
            merchant=None,
            shard=Shard(),
            deduper=ExactDeduper(),
            prior=prior or ByLine(RUN),
            pending=pending or set(),
        )
        self.report, self.tally = Report(), Tally()
        self.writer = Writer(self.report, self.tally)
        self.caps: list[str] = []
        self.queue = Watched(READ_AHEAD)
        self.reader = Reader(
            self.source,
            admission,
            self.queue,
            self.writer,
            workers=WORKERS,
            max_sends=max_sends,
            on_cap=self.caps.append,
            screened=self.screened,
        )

    async def drain(self) -> tuple[list[Send], Reading]:
        """Run the reader and take everything it queues, as the workers would."""
        writing = asyncio.create_task(self.writer.run())
        reading = asyncio.create_task(self.reader.run())
        sends: list[Send] = []
        ends = 0
        while ends < WORKERS:
            item = await self.queue.get()
            if item is None:
                ends += 1
            else:
                sends.append(item)
        await reading
        await self.writer.close(writing)
        return sends, await self.reader.close()


def _first_pass(path: Path, run: Source) -> Screened:
    counted = open_input(str(path))
    counted.digest = recorder = Recorder()
    keeper = Keeper(counted.estimated_lines())
    admission = Admission(
        merchant=None, shard=Shard(), deduper=ExactDeduper(), prior=ByLine(RUN), pending=set()
    )
    for batch in counted.batches():
        keeper.keep(admission.screen(batch), counted.bytes_fed, counted.lines_seen)
    counted.close()
    run.expect(recorder.fingerprint())
    kept = keeper.screened(counted)
    assert kept is not None
    return kept


async def test_every_row_is_queued_once_in_order_then_one_end_per_worker(tmp_path: Path) -> None:
    n = 5000  # several chunks of the input, many times the queue's bound
    pending = {key_of("T1", "r7")}
    h = Harness(tmp_path, [f"r{i},T1" for i in range(n)], pending=pending)
    sends, read = await h.drain()
    assert [s.row.reference for s in sends] == [f"r{i}" for i in range(n)]
    assert [s.row.reference for s in sends if s.maybe_landed] == ["r7"]
    assert read.done and read.lines == n + 1 and read.lines_lost == 0
    assert read.rows == n and h.queue.empty()


async def test_unsent_and_finished_rows_go_to_the_writer_never_to_a_worker(tmp_path: Path) -> None:
    prior = ByLine(RUN)
    prior.add(5, "T1", "done", Outcome.CANCELED)  # line 5: the header is line 1
    lines = ["a,T1", ",T1", "a,T1", "done,T1", "b,T1"]
    h = Harness(tmp_path, lines, prior=prior)
    sends, read = await h.drain()
    assert [s.row.reference for s in sends] == ["a", "b"]
    assert [r.outcome for r in h.report.rows] == [Outcome.INVALID, Outcome.DUPLICATE]
    assert read.rows == 5 and h.tally.rows_already_reported == 1
    assert h.tally.outcomes == {"invalid": 1, "duplicate": 1, "canceled": 1}


async def test_the_queue_bounds_how_far_reading_runs_ahead_and_a_stop_ends_it(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, [f"r{i},T1" for i in range(20_000)])
    reading = asyncio.create_task(h.reader.run())
    first = await h.queue.get()
    assert first is not None and first.row.reference == "r0"
    h.queue.filled.clear()
    await h.queue.filled.wait()  # the reader fills the queue again, then waits
    reading.cancel()  # how the job stops it
    taken = 1
    while not h.queue.empty():
        assert h.queue.get_nowait() is not None
        taken += 1
    read = await h.reader.close()
    assert taken <= READ_AHEAD + 1 and not read.done
    assert read.rows == taken  # read = queued: the rerun reads the rest


async def test_max_references_stops_reading_at_the_cap(tmp_path: Path) -> None:
    h = Harness(tmp_path, [f"r{i},T1" for i in range(10)], max_sends=4)
    sends, read = await h.drain()
    assert [s.row.reference for s in sends] == ["r0", "r1", "r2", "r3"]
    assert len(h.caps) == 1 and "--max-references 4" in h.caps[0]
    assert read.rows == 4 and not read.done


async def test_a_small_file_is_admitted_from_the_first_pass_exactly_as_from_a_second_read(
    tmp_path: Path,
) -> None:
    prior = ByLine(RUN)
    prior.add(5, "T1", "done", Outcome.CANCELED)
    lines = ["a,T1", ",T1", "a,T1", "done,T1", *(f"r{i},T1" for i in range(3000)), "b,T2"]
    pending = {key_of("T1", "r7")}
    runs = []
    for read_once in (False, True):
        h = Harness(tmp_path, lines, prior=prior, pending=pending, read_once=read_once)
        sends, read = await h.drain()
        runs.append(([(s.row, s.maybe_landed) for s in sends], h.report.rows, h.tally, read))
        parsed_by_the_run = h.source.rows_seen
    assert runs[0] == runs[1]
    assert runs[1][3].rows_seen == len(lines) and runs[1][3].done
    assert parsed_by_the_run == 0  # the run read the file's bytes to check them, no more


async def test_a_kept_row_is_not_sent_once_its_block_changed_under_the_run(tmp_path: Path) -> None:
    h = Harness(tmp_path, [f"row-{i:06d},T1" for i in range(20_000)], read_once=True)
    data = h.path.read_bytes()
    at = data.index(b"row-012000")  # in the third 64 KiB block
    assert 2 * BLOCK <= at < 3 * BLOCK
    with h.path.open("r+b") as f:  # edited in place after the count, before the run
        f.seek(at)
        f.write(b"row-000001")
    sends, read = await h.drain()
    assert read.error is not None and "changed during the run" in read.error
    assert not read.done
    header = data.index(b"\n") + 1

    def rows_before(offset: int) -> int:  # rows whose bytes all lie before `offset`
        return (offset - header) // len(b"row-000000,T1\n")

    # nothing of the changed block went out; all of the first block did
    assert rows_before(BLOCK) <= len(sends) <= rows_before(2 * BLOCK)
    assert [s.row.reference for s in sends] == [f"row-{i:06d}" for i in range(len(sends))]


async def test_a_reader_started_past_a_checkpoint_counts_the_rows_before_it_and_reads_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`before` (run.skip): the rows before the checkpoint are settled with the report's
    outcome, not read; the rest are read and sent; the line counts are the whole file's."""
    from collections import Counter

    from worker.input import source as source_module
    from worker.run.skip import Before

    monkeypatch.setattr(source_module, "CHUNK", 256)  # many checkpoints in a small file
    refs = [f"r{n}" for n in range(200)]
    prior = ByLine(RUN)
    harness = Harness(tmp_path, [f"{r},T1" for r in refs], prior=prior)
    marking = open_input(str(harness.path))
    marks = [m for _ in marking.batches() if (m := marking.mark()) is not None]
    marking.close()
    at = marks[len(marks) // 2]
    for line in range(2, at.line):
        prior.add(line, "T1", refs[line - 2], Outcome.CANCELED)
    before = Before(at, Counter({Outcome.CANCELED: at.line - 2}), 0)
    harness.reader = Reader(
        harness.source, harness.admission, harness.queue, harness.writer,
        workers=WORKERS, before=before,
    )  # fmt: skip
    sends, reading = await harness.drain()
    assert reading.error is None, reading
    assert [s.row.line for s in sends] == list(range(at.line, 202))
    assert harness.tally.rows_already_reported == at.line - 2 > 50
    assert (reading.done, reading.rows, reading.lines, reading.rows_seen) == (True, 200, 201, 200)
