"""Writer: the rows handed over during one of its turns reach the report with one write;
adding never blocks; intents are durable before their cancels go out."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from worker.control.outage import OutageGate
from worker.control.throttle import Throttle
from worker.errors import StorageError
from worker.model import Op, Outcome, Reply, Result, Row
from worker.report.journal import IntentJournal
from worker.run.canceller import Canceller
from worker.run.summary import Tally
from worker.run.writer import WRITE_BATCH, SyncThread, Writer


class Report:
    def __init__(self, full: bool = False) -> None:
        self.calls: list[int] = []
        self.rows_written = 0
        self.full = full

    def write(self, results: list[Result]) -> None:
        if self.full:
            raise StorageError("r.csv: No space left on device")
        self.calls.append(len(results))
        self.rows_written += len(results)


def canceled(i: int) -> Result:
    return Result(i, "T1", f"r{i}", Outcome.CANCELED, http_status=201, amount=100, currency="EUR")


def started(writer: Writer) -> asyncio.Task[None]:
    return asyncio.create_task(writer.run())


async def test_rows_handed_over_together_are_one_write() -> None:
    report, tally = Report(), Tally()
    writer = Writer(report, tally)
    task = started(writer)
    for i in range(100):
        writer.add(canceled(i))
    assert report.calls == []  # not yet: in the writer's next turn
    await writer.close(task)
    assert report.calls == [100] and task.done()
    assert tally.rows_written == 100 and tally.outcomes["canceled"] == 100
    assert tally.released["EUR"] == 100 * 100


async def test_a_large_batch_is_cut_into_writes() -> None:
    report = Report()
    writer = Writer(report, Tally())
    task = started(writer)
    for i in range(WRITE_BATCH * 2 + 3):
        writer.add(canceled(i))
    await writer.close(task)
    assert report.calls == [WRITE_BATCH, WRITE_BATCH, 3]


async def test_rows_settled_by_an_earlier_run_are_counted_not_written() -> None:
    report, tally = Report(), Tally()
    writer = Writer(report, tally)
    task = started(writer)
    writer.settled(Outcome.CANCELED)
    writer.add(canceled(2))
    await writer.close(task)
    assert report.calls == [1]
    assert tally.rows_already_reported == 1 and tally.outcomes["canceled"] == 2


async def test_a_full_disk_counts_the_rows_lost_and_stops_the_run() -> None:
    aborts: list[str] = []
    writer = Writer(Report(full=True), Tally(), Journal(), on_failure=aborts.append)
    task = started(writer)
    writer.add(canceled(1))
    writer.add(canceled(2))  # adding never blocks, even with the disk full
    with pytest.raises(StorageError, match="No space left"):
        await writer.journaled("T1", "next")  # so that cancel is not sent
    writer.add(canceled(3))
    await writer.close(task)
    assert writer.unwritten == 3
    assert aborts == ["the report could not be written: r.csv: No space left on device"]


class Journal:
    def __init__(self, full: bool = False) -> None:
        self.writes: list[list[tuple[str, str]]] = []
        self.full = full

    def append(self, pairs: list[tuple[str, str]], *, answered: bool = False) -> None:
        if self.full:
            raise StorageError("r.csv.journal: No space left on device")
        self.writes.append(pairs)

    def sync(self) -> None:
        pass


async def test_intents_handed_over_together_are_one_journal_write_after_the_rows() -> None:
    journal, report = Journal(), Report()
    writer = Writer(report, Tally(), journal)
    task = started(writer)
    for i in range(3):
        writer.add(canceled(i))
    await asyncio.gather(*(writer.journaled("T1", f"next-{i}") for i in range(3)))
    # each journaled() returned with its intent on disk, all three with one write
    assert report.calls == [3] and journal.writes == [[("T1", f"next-{i}") for i in range(3)]]
    await writer.close(task)


async def test_no_intent_is_written_when_the_report_cannot_be_written() -> None:
    journal = Journal()
    writer = Writer(Report(full=True), Tally(), journal)
    task = started(writer)
    writer.add(canceled(1))
    with pytest.raises(StorageError):
        await writer.journaled("T1", "next")
    assert journal.writes == []
    await writer.close(task)


async def test_a_journal_that_cannot_be_written_stops_the_run() -> None:
    aborts: list[str] = []
    writer = Writer(Report(), Tally(), Journal(full=True), on_failure=aborts.append)
    task = started(writer)
    with pytest.raises(StorageError):
        await writer.journaled("T1", "a")
    assert aborts == [
        "the intent journal could not be written: r.csv.journal: No space left on device"
    ]
    await writer.close(task)


async def test_a_report_that_breaks_in_any_way_stops_the_cancels_waiting_on_it() -> None:
    class Broken(Report):
        def write(self, results: list[Result]) -> None:
            raise ValueError("encoding bug")

    journal = Journal()
    writer = Writer(Broken(), Tally(), journal)
    task = started(writer)
    writer.add(canceled(1))
    with pytest.raises(StorageError, match="ValueError: encoding bug"):
        await writer.journaled("T1", "next")  # fails closed: that cancel is not sent
    assert journal.writes == [] and writer.unwritten == 1
    await writer.close(task)


async def test_a_cancelled_waiter_leaves_the_others_of_its_batch_waiting() -> None:
    journal = Journal()
    writer = Writer(Report(), Tally(), journal)
    one = asyncio.create_task(writer.journaled("T1", "a"))
    two = asyncio.create_task(writer.journaled("T1", "b"))
    await asyncio.sleep(0)  # both wait on the same batch; no writer task yet
    one.cancel()
    task = started(writer)
    await two  # not cancelled with its neighbour
    assert one.cancelled() and journal.writes == [[("T1", "a"), ("T1", "b")]]
    await writer.close(task)


class RecordingSync:
    """Stands in for `fdatasync`: remembers which intents were in the file when it returned."""

    def __init__(self, fail: bool = False) -> None:
        self.synced: set[str] = set()
        self.calls = 0
        self.fail = fail

    def __call__(self, fd: int, path: Path) -> None:
        if self.fail:
            raise StorageError(f"{path}: Input/output error")
        self.calls += 1
        self.synced |= {json.loads(line)[1] for line in path.read_bytes().splitlines()}


@dataclass
class SendingApi:
    """Records each cancel and whether its intent had been synced when it was sent."""

    durable: RecordingSync
    sent: list[tuple[str, bool]] = field(default_factory=list)

    async def call(
        self, op: Op, merchant: str, reference: str, token: str, comment: str | None = None
    ) -> Reply:
        self.sent.append((reference, reference in self.durable.synced))
        await asyncio.sleep(0)  # the answer comes on a later turn, as over a socket
        return Reply(201)


class Token:
    refreshes = 0

    async def get(self) -> str:
        return "jwt"

    def sendable(self, token: str) -> str | None:
        return token

    def invalidate(self, token: str) -> None:
        pass


def cancellers_over(tmp_path: Path, durable: RecordingSync) -> tuple[Canceller, SendingApi, Writer]:
    journal = IntentJournal(tmp_path / "r.csv.journal", durable=durable)
    writer = Writer(Report(), Tally(), journal)
    api = SendingApi(durable)
    health = OutageGate(threshold=3, give_up_after=60)
    canceller = Canceller(api, Token(), Throttle(None), health, max_attempts=3, journal=writer)
    return canceller, api, writer


async def test_no_cancel_is_sent_before_the_sync_of_its_batch_returned(tmp_path: Path) -> None:
    durable = RecordingSync()
    canceller, api, writer = cancellers_over(tmp_path, durable)
    task = started(writer)
    rows = [Row(i, "T1", f"r{i}") for i in range(40)]
    results = await asyncio.gather(*(canceller.process(row) for row in rows))
    assert {r.outcome for r in results} == {Outcome.CANCELED}
    assert sorted(api.sent) == sorted((row.reference, True) for row in rows)
    assert durable.calls < len(rows)  # one sync per batch, not per cancel
    await writer.close(task)


async def test_a_sync_that_fails_sends_nothing(tmp_path: Path) -> None:
    canceller, api, writer = cancellers_over(tmp_path, RecordingSync(fail=True))
    task = started(writer)
    with pytest.raises(StorageError, match="Input/output error"):
        await canceller.process(Row(2, "T1", "r2"))
    assert api.sent == []
    await writer.close(task)


async def test_the_loop_goes_on_during_a_sync_and_the_next_batches_share_one(
    tmp_path: Path,
) -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow_disk(fd: int, path: Path) -> None:
        calls.append(len(path.read_bytes().splitlines()))
        started.set()
        release.wait(10)  # a hang guard; the test releases it

    journal = IntentJournal(tmp_path / "r.csv.journal", durable=slow_disk)
    writer = Writer(Report(), Tally(), journal)
    task = asyncio.create_task(writer.run())
    first = asyncio.create_task(writer.journaled("T1", "a"))
    await asyncio.to_thread(started.wait, 10)  # the sync of "a" runs in a thread...
    later = [asyncio.create_task(writer.journaled("T1", ref)) for ref in ("b", "c")]
    await asyncio.sleep(0)  # ...while the loop serves others: "b" and "c" wait
    assert not first.done() and not any(t.done() for t in later)
    release.set()
    await asyncio.gather(first, *later)
    assert calls == [1, 3]  # "a" alone, then one sync for the two that came meanwhile
    await writer.close(task)


async def test_a_writer_task_that_dies_fails_its_waiters_and_every_later_intent() -> None:
    class Exploding(Report):
        def write(self, results: list[Result]) -> None:
            self.calls.append(len(results))

    journal = Journal()
    writer = Writer(Exploding(), Tally(), journal)
    task = started(writer)
    waiting = asyncio.create_task(writer.journaled("T1", "a"))
    await asyncio.sleep(0)  # the waiter is in the batch the task takes next
    task.cancel()  # however the task ends, nobody is left waiting for it
    with pytest.raises(StorageError, match="the writer stopped"):
        await waiting
    with pytest.raises(StorageError, match="the writer stopped"):
        await writer.journaled("T1", "b")  # and no later cancel goes out
    assert task.cancelled()


async def test_the_sync_thread_runs_each_call_off_the_loop_in_order_and_hands_back_failures() -> (
    None
):
    syncs = SyncThread()
    seen: list[tuple[str, int]] = []
    threads: list[threading.Thread] = []

    def call(name: str) -> None:
        seen.append((name, threading.get_ident()))
        threads.append(threading.current_thread())

    def full() -> None:
        raise StorageError("j.journal: No space left on device")

    try:
        await asyncio.gather(syncs(lambda: call("a")), syncs(lambda: call("b")))
        with pytest.raises(StorageError, match="No space left"):
            await syncs(full)
        await syncs(lambda: call("c"))  # a failure does not end the thread
    finally:
        syncs.close()
    assert [name for name, _ in seen] == ["a", "b", "c"]
    assert len({ident for _, ident in seen}) == 1
    assert seen[0][1] != threading.get_ident()
    assert not threads[0].is_alive()  # close ended it


async def test_a_sync_whose_awaiting_task_was_cancelled_leaves_the_next_ones_be() -> None:
    syncs = SyncThread()
    release = threading.Event()
    try:
        slow = asyncio.create_task(syncs(lambda: release.wait(5) and None))
        await asyncio.sleep(0)
        slow.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await slow
        ran: list[int] = []
        await asyncio.wait_for(syncs(lambda: ran.append(1)), 5)
        assert ran == [1]
    finally:
        syncs.close()


async def test_a_writer_syncs_its_journal_through_the_offload_it_is_given(tmp_path: Path) -> None:
    threads: list[int] = []

    def durable(fd: int, path: Path) -> None:
        threads.append(threading.get_ident())

    syncs = SyncThread()
    journal = IntentJournal(tmp_path / "r.csv.journal", durable=durable)
    writer = Writer(Report(), Tally(), journal, offload=syncs)
    task = started(writer)
    try:
        await asyncio.gather(*(writer.journaled("T1", f"r{i}") for i in range(50)))
        await writer.close(task)
        during_the_run = list(threads)
    finally:
        syncs.close()
        journal.close()
    assert len(list(IntentJournal.keys(tmp_path / "r.csv.journal"))) == 50
    assert during_the_run and threading.get_ident() not in during_the_run


async def test_answered_references_are_written_to_the_journal_after_their_intents(
    tmp_path: Path,
) -> None:
    journal = IntentJournal(tmp_path / "r.csv.journal")
    writer = Writer(Report(), Tally(), journal)
    task = started(writer)
    await writer.journaled("T1", "a")
    await writer.journaled("T1", "b")
    writer.answered("T1", "a")
    await writer.close(task)
    journal.close()
    entries = [(k, i) for k, i in IntentJournal.entries(tmp_path / "r.csv.journal")]
    assert [intent for _, intent in entries] == [True, True, False]
    assert entries[2][0] == entries[0][0]  # a's intent, then its answer


async def test_an_answered_record_that_cannot_be_written_stops_the_run(tmp_path: Path) -> None:
    """Swallowed, a write it could not cut back left half a line, onto which the next
    intent was glued, unreadable: that cancel went out with no intent on record."""

    class Failing(IntentJournal):
        def append(self, pairs: Any, *, answered: bool = False) -> None:
            if answered:
                raise StorageError("r.csv.journal: No space left on device")
            super().append(pairs)

    journal = Failing(tmp_path / "r.csv.journal")
    reasons: list[str] = []
    writer = Writer(Report(), Tally(), journal, on_failure=reasons.append)
    task = started(writer)
    await writer.journaled("T1", "a")
    writer.answered("T1", "a")
    await writer.close(task)
    journal.close()
    assert reasons and "the intent journal could not be written" in reasons[0]
    with pytest.raises(StorageError):
        await writer.journaled("T1", "b")  # no cancel goes out after it
