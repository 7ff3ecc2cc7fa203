"""Job: its lifecycle in-process, with a fake processor and a fake report writer.

Each test runs in well under a second: the input is a small real file, the
processor answers when the test says so, and nothing sleeps waiting for a timer.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from worker.control.guard import RejectionGuard
from worker.errors import CredentialsRefused, StorageError
from worker.input.admission import Admission, Send
from worker.input.dedup import ExactDeduper
from worker.input.source import open_input
from worker.model import Outcome, Result, Row
from worker.observe.progress import Snapshot
from worker.report.resume import RUN, ByLine, PriorRows
from worker.run import writer as writer_module
from worker.run.job import Job
from worker.run.ledger import Ledger, Stop
from worker.run.reader import READ_AHEAD, Reader
from worker.run.summary import Reading, Tally
from worker.run.writer import Writer
from worker.settings import Shard


class Quiet:
    def update(self, snap: Snapshot) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class FakeProcessor:
    """Cancels at once, or holds the rows named in `hold` until `release` is set."""

    hold: set[str] = field(default_factory=set)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: list[str] = field(default_factory=list)
    fail_with: Exception | None = None
    held: asyncio.Event = field(default_factory=asyncio.Event)  # every held row started

    async def process(self, row: Row, *, maybe_landed: bool = False) -> Result:
        self.started.append(row.reference)
        if sum(r in self.hold for r in self.started) == len(self.hold):
            self.held.set()
        if self.fail_with is not None:
            raise self.fail_with
        if row.reference in self.hold:
            await self.release.wait()
        return Result(row.line, row.merchant, row.reference, Outcome.CANCELED, http_status=201)


@dataclass
class FakeWriter:
    rows: list[Result] = field(default_factory=list)
    rows_written: int = 0
    full: bool = False
    calls: int = 0

    def write(self, results: list[Result]) -> None:
        if self.full:
            raise StorageError("r.csv: No space left on device")
        self.calls += 1
        self.rows.extend(results)
        self.rows_written += len(results)


@dataclass
class FakeJournal:
    references: list[str] = field(default_factory=list)
    calls: int = 0

    def append(self, pairs: list[tuple[str, str]], *, answered: bool = False) -> None:
        self.calls += 1
        self.references.extend(ref for _, ref in pairs)

    def sync(self) -> None:
        pass


@dataclass
class AnsweringProcessor(FakeProcessor):
    """Journals through the writer as the canceller does, then yields once, as a request does."""

    writer: Writer | None = None
    journaled: list[str] = field(default_factory=list)

    async def process(self, row: Row, *, maybe_landed: bool = False) -> Result:
        if self.writer is not None:
            await self.writer.journaled(row.merchant, row.reference)
        await asyncio.sleep(0)
        return await super().process(row, maybe_landed=maybe_landed)


def _storage(ledger: Ledger, why: str) -> None:
    ledger.stop(Stop.abort(why, graceful=True))


def complete(job: Job, read: Reading) -> bool:
    ledger = job.ledger
    return read.done and not (ledger.abort or ledger.guard or ledger.signal)


def make_job(
    tmp_path: Path,
    refs: list[str],
    processor: FakeProcessor,
    writer: FakeWriter,
    *,
    concurrency: int = 2,
    grace: float = 5.0,
    exits: list[int] | None = None,
    journal: FakeJournal | None = None,
    prior: PriorRows | None = None,
    clock: Callable[[], float] = time.monotonic,
    max_sends: int | None = None,
    guard: RejectionGuard | None = None,
) -> Job:
    """`processor.writer` is set to the job's writer when it has that field."""
    path = tmp_path / "in.csv"
    path.write_text("payment_reference,merchant_number\n" + "".join(f"{r},T1\n" for r in refs))
    admission = Admission(
        merchant=None,
        shard=Shard(),
        deduper=ExactDeduper(),
        prior=prior or ByLine(RUN),
        pending=set(),
    )
    ledger = Ledger()
    # as stages.run_stages: a failed write lets the requests on the wire finish
    stages = Writer(writer, Tally(), journal, on_failure=lambda why: _storage(ledger, why))
    if isinstance(processor, AnsweringProcessor):
        processor.writer = stages
    queue: asyncio.Queue[Send | None] = asyncio.Queue(READ_AHEAD)
    reader = Reader(
        open_input(str(path)),
        admission,
        queue,
        stages,
        workers=concurrency,
        max_sends=max_sends,
        on_cap=lambda why: ledger.stop(Stop.guard(why, closes_gate=False)),
    )
    return Job(
        reader=reader,
        queue=queue,
        processor=processor,
        writer=stages,
        ledger=ledger,
        concurrency=concurrency,
        grace_seconds=grace,
        hard_exit=(exits if exits is not None else []).append,
        clock=clock,
        guard=guard,
    )


async def test_every_row_is_processed_and_written_once(tmp_path: Path) -> None:
    refs = [f"r{i}" for i in range(50)] + ["", "r1"]  # an invalid and a duplicate row
    writer = FakeWriter()
    job = make_job(tmp_path, refs, FakeProcessor(), writer)
    read = await job.run(Quiet(), 60, None)
    assert complete(job, read) and read.lines == 53 and read.lines_lost == 0
    outcomes = sorted(r.outcome.value for r in writer.rows)
    assert outcomes == ["canceled"] * 50 + ["duplicate", "invalid"]
    assert read.rows == job.writer.tally.rows_written == 52


async def test_writes_per_reference_do_not_grow(tmp_path: Path) -> None:
    # The regression guard for the report and journal costs: counted writes, not time.
    n, concurrency = 2000, 8
    writer, journal = FakeWriter(), FakeJournal()
    refs = [f"r{i}" for i in range(n)]
    job = make_job(
        tmp_path, refs, AnsweringProcessor(), writer, concurrency=concurrency, journal=journal
    )
    read = await job.run(Quiet(), 60, None)
    assert complete(job, read) and sorted(journal.references) == sorted(refs)
    # what one loop turn hands over shares a write: about one per `concurrency` rows
    assert journal.calls <= n // concurrency + 2
    assert writer.calls <= n // concurrency + 2 and writer.rows_written == n


@dataclass
class JournalCheckingProcessor(AnsweringProcessor):
    journal: FakeJournal = field(default_factory=FakeJournal)

    async def process(self, row: Row, *, maybe_landed: bool = False) -> Result:
        assert self.writer is not None
        await self.writer.journaled(row.merchant, row.reference)
        assert row.reference in self.journal.references  # on disk before the "send"
        await asyncio.sleep(0)
        return await FakeProcessor.process(self, row, maybe_landed=maybe_landed)


async def test_no_cancel_starts_before_its_intent_is_journaled(tmp_path: Path) -> None:
    processor = JournalCheckingProcessor()
    writer = FakeWriter()
    refs = [f"r{i}" for i in range(300)]
    job = make_job(tmp_path, refs, processor, writer, concurrency=4, journal=processor.journal)
    read = await job.run(Quiet(), 60, None)
    assert complete(job, read) and [r.outcome for r in writer.rows] == [Outcome.CANCELED] * 300


async def test_a_full_disk_leaves_at_most_concurrency_processed_rows_unwritten(
    tmp_path: Path,
) -> None:
    class FillingWriter(FakeWriter):
        def write(self, results: list[Result]) -> None:
            self.full = self.full or self.rows_written >= 100
            super().write(results)

    writer, processor = FillingWriter(), AnsweringProcessor()
    refs = [f"r{i}" for i in range(1000)]
    job = make_job(tmp_path, refs, processor, writer, concurrency=8, journal=FakeJournal())
    await job.run(Quiet(), 60, None)
    assert job.ledger.abort is not None and "No space left" in job.ledger.abort.reason
    assert 1 <= len(processor.started) - writer.rows_written <= 8


async def test_sigterm_lets_in_flight_rows_finish_and_sends_nothing_new(tmp_path: Path) -> None:
    processor = FakeProcessor(hold={"r0", "r1"})
    writer = FakeWriter()
    job = make_job(tmp_path, [f"r{i}" for i in range(100)], processor, writer)
    run = asyncio.create_task(job.run(Quiet(), 60, None))
    await processor.held.wait()  # both workers busy with a held row
    job.interrupt(signal.SIGTERM)
    processor.release.set()
    read = await run
    assert job.ledger.signal is not None and job.ledger.signal.code == 143
    assert not complete(job, read)
    assert processor.started == ["r0", "r1"]
    assert sorted(r.reference for r in writer.rows) == ["r0", "r1"]  # drained, not lost


@dataclass
class NotFoundProcessor(FakeProcessor):
    async def process(self, row: Row, *, maybe_landed: bool = False) -> Result:
        done = await super().process(row, maybe_landed=maybe_landed)
        return Result(done.line, row.merchant, row.reference, Outcome.NOT_FOUND, 404, attempts=1)


async def test_rows_that_end_after_a_stop_do_not_trip_the_guard_rail(tmp_path: Path) -> None:
    """Rows finishing after SIGTERM tripped the rail, and its exit 4 (final for the
    Kubernetes samples) hid the signal's 143."""
    processor = NotFoundProcessor(hold={"r0", "r1"})
    job = make_job(
        tmp_path, [f"r{i}" for i in range(10)], processor, FakeWriter(), guard=RejectionGuard(2)
    )
    run = asyncio.create_task(job.run(Quiet(), 60, None))
    await processor.held.wait()
    job.interrupt(signal.SIGTERM)
    processor.release.set()
    await run
    assert job.ledger.guard is None
    assert job.ledger.signal is not None and job.ledger.signal.code == 143


async def test_a_second_signal_abandons_in_flight_rows_at_once(tmp_path: Path) -> None:
    processor = FakeProcessor(hold={"r0"})
    exits: list[int] = []
    job = make_job(tmp_path, ["r0", "r1"], processor, FakeWriter(), concurrency=1, exits=exits)
    run = asyncio.create_task(job.run(Quiet(), 60, None))
    await processor.held.wait()
    job.interrupt(signal.SIGINT)
    await asyncio.sleep(0)
    job.interrupt(signal.SIGINT)
    await asyncio.wait_for(run, 5)  # never waits for the held row
    assert job.ledger.signal is not None and job.ledger.signal.code == 130 and exits == [130]


async def test_the_grace_period_ends_a_request_that_never_answers(tmp_path: Path) -> None:
    processor = FakeProcessor(hold={"r0"})
    job = make_job(tmp_path, ["r0"], processor, FakeWriter(), concurrency=1, grace=0.05)
    run = asyncio.create_task(job.run(Quiet(), 60, None))
    await processor.held.wait()
    job.interrupt(signal.SIGTERM)
    await asyncio.wait_for(run, 5)
    assert job.ledger.signal is not None and job.ledger.signal.code == 143


async def test_refused_credentials_abort_and_stop_sending(tmp_path: Path) -> None:
    refused = CredentialsRefused("refused (401)", fix="correct the client id")
    processor = FakeProcessor(fail_with=refused)
    writer = FakeWriter()
    job = make_job(tmp_path, [f"r{i}" for i in range(100)], processor, writer)
    await job.run(Quiet(), 60, None)
    assert job.ledger.abort is not None and job.ledger.abort.reason == "refused (401)"
    assert job.ledger.abort.fix == "correct the client id"
    assert len(processor.started) <= 2 and writer.rows == []


async def test_a_full_disk_stops_the_run_without_blocking_anyone(tmp_path: Path) -> None:
    writer = FakeWriter(full=True)
    processor = FakeProcessor()
    # far more rows than the queues hold: a writer that stopped taking rows would hang
    job = make_job(tmp_path, [f"r{i}" for i in range(3000)], processor, writer)
    await asyncio.wait_for(job.run(Quiet(), 60, None), 10)
    assert job.ledger.abort is not None and "No space left" in job.ledger.abort.reason
    assert job.writer.unwritten >= 1 and len(processor.started) < 3000


@pytest.mark.parametrize("every", [0.001])
async def test_progress_is_reported_while_running(tmp_path: Path, every: float) -> None:
    seen: list[Snapshot] = []
    twice = asyncio.Event()

    class Recorder(Quiet):
        def update(self, snap: Snapshot) -> None:
            seen.append(snap)
            if len(seen) >= 2:
                twice.set()

    processor = FakeProcessor(hold={"r5"})
    job = make_job(tmp_path, [f"r{i}" for i in range(10)], processor, FakeWriter())
    run = asyncio.create_task(job.run(Recorder(), every, 10))
    await twice.wait()
    processor.release.set()
    await run
    assert seen[-1].done == 10 and seen[-1].total == 10


async def test_after_a_resume_the_eta_counts_only_this_runs_rows(tmp_path: Path) -> None:
    now = [100.0]
    prior = ByLine(RUN)  # an earlier run canceled r0-r7 (lines 2-9)
    for i in range(8):
        prior.add(i + 2, "T1", f"r{i}", Outcome.CANCELED)
    processor = FakeProcessor(hold={"r9"})
    refs = [f"r{i}" for i in range(10)]
    # one worker: r8 is settled and its row handed over before r9 starts and is held
    job = make_job(
        tmp_path, refs, processor, FakeWriter(), concurrency=1, prior=prior, clock=lambda: now[0]
    )
    run = asyncio.create_task(job.run(Quiet(), 60.0, 10))
    await processor.held.wait()
    now[0] += 4.0
    snap = job.snapshot(10)
    assert (snap.done, snap.settled_before) == (9, 8)
    assert snap.eta_seconds == 4.0  # one row in 4 s, one left; counting r0-r7 said 0.4 s
    processor.release.set()
    await run


async def test_a_reader_that_breaks_stops_the_run_instead_of_leaving_workers_waiting(
    tmp_path: Path,
) -> None:
    writer = FakeWriter()
    job = make_job(tmp_path, [f"r{i}" for i in range(10)], FakeProcessor(), writer)

    def broken(items: object, keys: object) -> list[object]:
        raise RuntimeError("a bug in admission")

    job._reader._admission.decide = broken  # type: ignore[method-assign]
    read = await asyncio.wait_for(job.run(Quiet(), 60, None), 10)
    assert job.ledger.abort is not None and "a bug in admission" in job.ledger.abort.reason
    assert not read.done and writer.rows == []


async def test_a_stop_while_the_queue_is_empty_does_not_wait_out_the_grace_period(
    tmp_path: Path,
) -> None:
    """A stream that has nothing more yet: the worker whose request ends after the
    stop must not go back to wait on the queue (the grace period would pass)."""
    processor = FakeProcessor(hold={"r0"})
    job = make_job(tmp_path, ["r0"], processor, FakeWriter(), concurrency=1, grace=60)
    stalled = asyncio.Event()

    async def one_then_nothing() -> None:  # a pipe whose producer went quiet
        row = Row(2, "T1", "r0")
        await job._queue.put(Send(row))
        await stalled.wait()

    job._reader.run = one_then_nothing  # type: ignore[method-assign]
    run = asyncio.create_task(job.run(Quiet(), 60, None))
    await processor.held.wait()
    job.interrupt(signal.SIGTERM)
    for _ in range(5):  # a few loop turns: the job is in its shutdown, waiting on the worker
        await asyncio.sleep(0)
    processor.release.set()  # the request in flight answers after the stop
    await asyncio.wait_for(run, 5)  # not 60 s
    assert [r.reference for r in job.writer._report.rows] == ["r0"]  # type: ignore[attr-defined]


async def test_a_writer_that_breaks_mid_run_ends_the_run_as_an_abort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = FakeWriter()
    job = make_job(tmp_path, [f"r{i}" for i in range(50)], FakeProcessor(), writer)

    def broken_count(batch: list[Result], tally: Tally) -> None:
        raise KeyError("a bug in the counting")

    monkeypatch.setattr(writer_module, "_count", broken_count)
    read = await asyncio.wait_for(job.run(Quiet(), 60, None), 10)
    assert job.ledger.abort is not None and "the writer stopped" in job.ledger.abort.reason
    assert job.writer.unwritten + writer.rows_written >= 1 and read.lines >= 1


async def test_the_cap_stops_reading_and_what_was_read_is_still_sent(tmp_path: Path) -> None:
    writer = FakeWriter()
    refs = [f"r{i}" for i in range(20)]
    job = make_job(tmp_path, refs, FakeProcessor(), writer, max_sends=5)
    read = await asyncio.wait_for(job.run(Quiet(), 60, None), 10)
    assert sorted(r.reference for r in writer.rows) == [f"r{i}" for i in range(5)]
    assert job.ledger.guard is not None and job.ledger.guard.code == 4
    assert not job.ledger.gate.stopped and not read.done and read.rows == 5
