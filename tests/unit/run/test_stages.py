"""Stages: when a run's intent journal goes, and when it must stay."""

from __future__ import annotations

from typing import Any

from worker.run.ledger import Ledger
from worker.run.stages import _settle_journal
from worker.run.summary import Reading, Tally


class Journal:
    def __init__(self) -> None:
        self.ended: list[str] = []

    def discard(self) -> None:
        self.ended.append("discarded")

    def close(self) -> None:
        self.ended.append("kept")


def settle(open_intents: int = 0, **tally: Any) -> list[str]:
    journal = Journal()
    done = Tally(rows_written=2)
    done.outcomes.update(tally)
    _settle_journal(journal, Ledger(), Reading(done=True, rows=2), done, 0, open_intents)
    return journal.ended


def test_a_complete_clean_run_discards_its_journal() -> None:
    assert settle(canceled=2) == ["discarded"]


def test_failed_rows_or_intents_a_retry_reopens_keep_the_journal() -> None:
    assert settle(canceled=1, failed=1) == ["kept"]
    # a killed --retry-outcomes run's cancels, taken as settled by a plain rerun: the
    # retry after it must query them, so their journal lines stay
    assert settle(open_intents=1, canceled=2) == ["kept"]
