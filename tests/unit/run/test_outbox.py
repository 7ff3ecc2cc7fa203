"""Outbox: a loop turn's finished rows reach the report with one write; adding never blocks."""

from __future__ import annotations

import asyncio

import pytest

from worker.model import Outcome, Result
from worker.report.storage import StorageError
from worker.run.outbox import WRITE_BATCH, Outbox
from worker.run.summary import Tally


class Writer:
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


async def test_rows_of_one_loop_turn_are_one_write() -> None:
    writer, tally = Writer(), Tally()
    outbox = Outbox(writer, tally)
    for i in range(100):
        outbox.add(canceled(i))
    assert writer.calls == []  # not yet: after this turn of the loop
    await asyncio.sleep(0)
    assert writer.calls == [100]
    assert tally.rows_written == 100 and tally.outcomes["canceled"] == 100
    assert tally.released["EUR"] == 100 * 100


async def test_a_large_turn_is_cut_into_batches() -> None:
    writer = Writer()
    outbox = Outbox(writer, Tally())
    for i in range(WRITE_BATCH * 2 + 3):
        outbox.add(canceled(i))
    await asyncio.sleep(0)
    assert writer.calls == [WRITE_BATCH, WRITE_BATCH, 3]


async def test_a_full_disk_counts_the_rows_lost_and_stops_the_run() -> None:
    aborts: list[str] = []
    outbox = Outbox(Writer(full=True), Tally())
    outbox.listen(aborts.append)
    outbox.add(canceled(1))
    outbox.add(canceled(2))  # adding never blocks, even with the disk full
    outbox.flush()
    assert outbox.unwritten == 2
    assert aborts == ["the report could not be written: r.csv: No space left on device"]
    with pytest.raises(StorageError, match="No space left"):
        await outbox.record("T1", "next")  # so that cancel is not sent


class Journal:
    def __init__(self, full: bool = False) -> None:
        self.writes: list[list[tuple[str, str]]] = []
        self.full = full

    def record(self, pairs: list[tuple[str, str]]) -> None:
        if self.full:
            raise StorageError("r.csv.journal: No space left on device")
        self.writes.append(pairs)


async def test_a_turns_intents_are_one_journal_write_after_its_rows() -> None:
    journal, writer = Journal(), Writer()
    outbox = Outbox(writer, Tally(), journal)
    for i in range(3):
        outbox.add(canceled(i))
    await asyncio.gather(*(outbox.record("T1", f"next-{i}") for i in range(3)))
    # each record() returned with its intent on disk, all three with one write
    assert writer.calls == [3] and journal.writes == [[("T1", f"next-{i}") for i in range(3)]]


async def test_no_intent_is_written_when_the_report_cannot_be_written() -> None:
    journal = Journal()
    outbox = Outbox(Writer(full=True), Tally(), journal)
    outbox.add(canceled(1))
    with pytest.raises(StorageError):
        await outbox.record("T1", "next")
    assert journal.writes == []


async def test_a_journal_that_cannot_be_written_stops_the_run() -> None:
    aborts: list[str] = []
    outbox = Outbox(Writer(), Tally(), Journal(full=True))
    outbox.listen(aborts.append)
    with pytest.raises(StorageError):
        await outbox.record("T1", "a")
    assert aborts == [
        "the intent journal could not be written: r.csv.journal: No space left on device"
    ]


async def test_a_writer_that_breaks_in_any_way_stops_the_cancels_waiting_on_it() -> None:
    class Broken(Writer):
        def write(self, results: list[Result]) -> None:
            raise ValueError("encoding bug")

    journal = Journal()
    outbox = Outbox(Broken(), Tally(), journal)
    outbox.add(canceled(1))
    with pytest.raises(StorageError, match="ValueError: encoding bug"):
        await outbox.record("T1", "next")  # fails closed: that cancel is not sent
    assert journal.writes == [] and outbox.unwritten == 1
