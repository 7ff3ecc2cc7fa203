"""Planted bugs: each breaks one guarantee on purpose, to show the simulator catches it.

`BUGS` maps a name to (the invariant that must catch it, how to plant it with a
`pytest.MonkeyPatch`). `test_sim.py` plants each one and searches the CI seeds for a
history that breaks that invariant.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from worker import decide as decide_module
from worker.exits import Exit
from worker.model import RUN_FINAL, Op, Outcome, Reply, Result
from worker.report import journal, resume, runs, writer
from worker.report.journal import IntentJournal
from worker.report.writer import ReportWriter
from worker.run import canceller, stages, summary
from worker.run.writer import Writer

Plant = Callable[[pytest.MonkeyPatch], None]


def skip_journal_fsync(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(IntentJournal, "sync", lambda self: None)


#: How late the planted bug hands an intent to the writer: longer than any wait for a
#: rate slot in the simulated nights, so the cancel goes out first.
LATE_INTENT = 30.0


def send_before_intent(mp: pytest.MonkeyPatch) -> None:
    async def journaled(self: Writer, merchant: str, reference: str) -> None:
        def hand_over() -> None:
            self._intents.append((merchant, reference))
            self._wake.set()

        asyncio.get_running_loop().call_later(LATE_INTENT, hand_over)  # not awaited

    mp.setattr(Writer, "journaled", journaled)


def no_query_first(mp: pytest.MonkeyPatch) -> None:
    real = canceller.Canceller.process

    async def process(self: Any, row: Any, *, maybe_landed: bool = False) -> Result:
        return await real(self, row, maybe_landed=False)

    mp.setattr(canceller.Canceller, "process", process)


def rows_written_twice(mp: pytest.MonkeyPatch) -> None:
    real = ReportWriter.write

    def write(self: ReportWriter, results: Iterable[Result]) -> None:
        results = list(results)
        real(self, results)
        real(self, results)  # a retry of a write that had succeeded

    mp.setattr(ReportWriter, "write", write)


def canceled_rows_not_final(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(resume, "RUN", resume.ResumePolicy(RUN_FINAL - {Outcome.CANCELED}))


def refusal_taken_for_cancel(mp: pytest.MonkeyPatch) -> None:
    def decide(step: decide_module.Step, reply: Reply) -> decide_module.Decision:
        if step.op is Op.CANCEL and reply.status == 422:
            return decide_module.Final(Outcome.CANCELED)
        return decide_module.decide(step, reply)

    mp.setattr(canceller, "decide", decide)


def released_forgets_earlier_runs(mp: pytest.MonkeyPatch) -> None:
    def tally(released_earlier: Any, states: Any) -> summary.Tally:
        return summary.Tally(states=states)  # what earlier runs released: dropped

    mp.setattr(stages, "Tally", tally)


def detail_not_masked(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(writer, "mask", lambda text: text)


def failed_rows_exit_0(mp: pytest.MonkeyPatch) -> None:
    real = summary.RunReport.exit_code.fget
    assert real is not None

    def exit_code(self: summary.RunReport) -> int:
        code = real(self)
        return 0 if code == Exit.FAILED_ROWS else code

    mp.setattr(summary.RunReport, "exit_code", property(exit_code))


def run_record_torn_line_kept(mp: pytest.MonkeyPatch) -> None:
    # The first real bug the simulator found (seed 43 of its first version).
    mp.setattr(runs, "cut_torn_line", lambda fd, chunk=4096: 0)


def journal_torn_line_kept(mp: pytest.MonkeyPatch) -> None:
    # The second (seed 1224 of its first version, then 3646, 20577 now): rare, three
    # crashes in a row.
    mp.setattr(journal, "cut_torn_line", lambda fd, chunk=4096: 0)


BUGS: dict[str, tuple[str, Plant]] = {
    "skip the journal fsync": ("double-cancel", skip_journal_fsync),
    "send before the intent is journaled": ("double-cancel", send_before_intent),
    "no query before a journaled cancel": ("double-cancel", no_query_first),
    "a report write retried after it succeeded": ("one-final-row", rows_written_twice),
    "canceled rows not final on resume": ("final-resent", canceled_rows_not_final),
    "a 422 to a cancel taken for canceled": ("canceled-match", refusal_taken_for_cancel),
    "released_total forgets earlier runs": ("released-total", released_forgets_earlier_runs),
    "report cells not masked": ("secret", detail_not_masked),
    "failed rows exit 0": ("exit-code", failed_rows_exit_0),
    "a run record's torn last line kept": ("prepare", run_record_torn_line_kept),
}
#: Bugs too rare for the CI budget: each is checked on a seed found to catch it.
RARE: dict[str, tuple[str, Plant]] = {
    "an intent journal's torn last line kept": ("double-cancel", journal_torn_line_kept),
}
