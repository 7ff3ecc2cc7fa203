"""Intake: rows admitted a chunk at a time and pulled by the workers."""

from __future__ import annotations

from pathlib import Path

from worker.input.admission import Admission, Send
from worker.input.dedup import ExactDeduper
from worker.input.source import open_input
from worker.keys import key_of
from worker.model import Outcome, Result
from worker.report.resume import RUN, ByLine, PriorRows
from worker.run.intake import READ_AHEAD, Intake
from worker.run.summary import Ending, Tally
from worker.settings import Shard


class Harness:
    def __init__(
        self,
        tmp_path: Path,
        lines: list[str],
        *,
        prior: PriorRows | None = None,
        pending: set[bytes] | None = None,
        max_sends: int | None = None,
    ) -> None:
        path = tmp_path / "in.csv"
        path.write_text("payment_reference,merchant_number\n" + "".join(f"{x}\n" for x in lines))
        admission = Admission(
            merchant=None,
            shard=Shard(),
            deduper=ExactDeduper(),
            prior=prior or ByLine(RUN),
            pending=pending or set(),
        )
        self.unsent: list[Result] = []
        self.caps: list[str] = []
        self.tally, self.end = Tally(), Ending()
        self.stopping = False
        self.intake = Intake(
            open_input(str(path)),
            admission,
            unsent=self.unsent.append,
            tally=self.tally,
            end=self.end,
            stopping=lambda: self.stopping,
            max_sends=max_sends,
            over_cap=self.caps.append,
        )

    async def drain(self) -> list[Send]:
        sends = []
        while (send := await self.intake.next()) is not None:
            sends.append(send)
        await self.intake.close()
        return sends


async def test_every_row_is_handed_out_once_in_order(tmp_path: Path) -> None:
    n = 5000  # several chunks of the input
    pending = {key_of("T1", "r7")}
    h = Harness(tmp_path, [f"r{i},T1" for i in range(n)], pending=pending)
    sends = await h.drain()
    assert [s.row.reference for s in sends] == [f"r{i}" for i in range(n)]
    assert [s.row.reference for s in sends if s.maybe_landed] == ["r7"]
    assert h.end.input_done and h.end.lines_read == n + 1 and h.end.lines_lost == 0
    assert h.tally.rows_read == n


async def test_unsent_and_finished_rows_never_reach_a_worker(tmp_path: Path) -> None:
    prior = ByLine(RUN)
    prior.add(5, "T1", "done", Outcome.CANCELED)  # line 5: the header is line 1
    lines = ["a,T1", ",T1", "a,T1", "done,T1", "b,T1"]
    h = Harness(tmp_path, lines, prior=prior)
    sends = await h.drain()
    assert [s.row.reference for s in sends] == ["a", "b"]
    assert [r.outcome for r in h.unsent] == [Outcome.INVALID, Outcome.DUPLICATE]
    assert h.tally.rows_read == 5 and h.tally.rows_already_reported == 1


async def test_a_stop_hands_out_nothing_more(tmp_path: Path) -> None:
    h = Harness(tmp_path, [f"r{i},T1" for i in range(20_000)])
    first = await h.intake.next()
    assert first is not None and first.row.reference == "r0"
    h.stopping = True
    taken = 1
    while await h.intake.next() is not None:  # what was admitted already, no more
        taken += 1
    await h.intake.close()
    assert taken <= READ_AHEAD and not h.end.input_done
    assert h.tally.rows_read == taken  # read = handed out: the rerun reads the rest


async def test_max_references_stops_reading_at_the_cap(tmp_path: Path) -> None:
    h = Harness(tmp_path, [f"r{i},T1" for i in range(10)], max_sends=4)
    sends = await h.drain()
    assert [s.row.reference for s in sends] == ["r0", "r1", "r2", "r3"]
    assert len(h.caps) == 1 and "--max-references 4" in h.caps[0]
    assert h.tally.rows_read == 4 and not h.end.input_done
