"""Admission: validate -> shard -> dedup -> resume, one decision per row."""

from __future__ import annotations

from pathlib import Path

from worker.input.admission import Admission, Reported, Send
from worker.input.dedup import ExactDeduper
from worker.input.parsed import Parsed
from worker.input.shard import shard_of
from worker.keys import key_of
from worker.model import Outcome, Result, Row
from worker.report.index import SpillStore
from worker.report.resume import RUN, ByKey, PriorRows, TornRow
from worker.settings import Shard


def admission(
    prior: PriorRows | None = None, pending: set[bytes] | None = None, shard: Shard | None = None
) -> Admission:
    return Admission(
        merchant="M0",
        shard=shard or Shard(),
        deduper=ExactDeduper(),
        prior=prior or ByKey(RUN, SpillStore(Path("unused"), 1 << 20)),
        pending=pending or set(),
    )


def test_a_valid_row_is_sent_and_its_repeat_is_a_duplicate() -> None:
    admit = admission()
    assert admit(Parsed(2, "a", "T1", None)) == Send(Row(2, "T1", "a"))
    dup = admit(Parsed(3, " a ", "T1", None))
    assert isinstance(dup, Result) and dup.outcome is Outcome.DUPLICATE and dup.line == 3


def test_an_invalid_row_is_reported_unsent_and_does_not_count_for_dedup() -> None:
    admit = admission()
    bad = admit(Parsed(2, "", "T1", None))
    assert isinstance(bad, Result) and bad.outcome is Outcome.INVALID
    assert isinstance(admit(Parsed(3, "x", None, None, error="cannot parse")), Result)


def test_resume_skips_what_an_earlier_run_finished_and_reported() -> None:
    prior = ByKey(RUN, SpillStore(Path("unused"), 1 << 20))
    prior.add(2, "T1", "a", Outcome.CANCELED)
    prior.add(4, "T1", "", Outcome.INVALID)
    prior.add(5, "T1", "", Outcome.INVALID)
    admit = admission(prior, pending={key_of("T1", "b")})
    assert admit(Parsed(2, "a", "T1", None)) == Reported(Outcome.CANCELED)
    assert admit(Parsed(3, "b", "T1", None)) == Send(Row(3, "T1", "b"), maybe_landed=True)
    assert admit(Parsed(4, "", "T1", None)) == Reported(Outcome.INVALID)
    # line 5 changed since (it was fixed): reported afresh, by content, not by line
    assert admit(Parsed(5, "c", "T1", None)) == Send(Row(5, "T1", "c"))
    again = admit(Parsed(5, "", "T9", None))
    assert isinstance(again, Result) and again.outcome is Outcome.INVALID


def test_rows_of_another_shard_are_skipped() -> None:
    shard = Shard(0, 2)
    admit = admission(shard=shard)
    refs = [f"r{i}" for i in range(40)]
    kept = [r for r in refs if admit(Parsed(2, r, "T1", None)) is not None]
    assert kept == [r for r in refs if shard_of("T1", r, 2) == 0] and 0 < len(kept) < 40


def test_the_rows_torn_report_rows_may_be_are_queried_first() -> None:
    """A report row cut off after its run finished (by hand, or a disk) may have been
    that reference's outcome: send it only after a query."""
    admit = Admission(
        merchant="M0",
        shard=Shard(),
        deduper=ExactDeduper(),
        prior=ByKey(RUN, SpillStore(Path("unused"), 1 << 20)),
        pending=set(),
        torn=(TornRow("3", True), TornRow("1", False)),
    )
    assert admit(Parsed(2, "a", "T1", None)) == Send(Row(2, "T1", "a"))
    assert admit(Parsed(3, "b", "T1", None)) == Send(Row(3, "T1", "b"), maybe_landed=True)
    assert admit(Parsed(12, "c", "T1", None)) == Send(Row(12, "T1", "c"), maybe_landed=True)


def test_a_settled_row_the_journal_names_with_a_reopenable_outcome_is_an_open_intent() -> None:
    """A killed `--retry-outcomes rejected` run sent cancels for rejected rows; a plain
    rerun takes them as settled, and must not let the journal that names them go."""
    prior = ByKey(RUN, SpillStore(Path("unused"), 1 << 20))
    prior.add(2, "T1", "a", Outcome.REJECTED)
    prior.add(3, "T1", "b", Outcome.CANCELED)
    admit = admission(prior, pending={key_of("T1", "a"), key_of("T1", "b")})
    assert admit(Parsed(2, "a", "T1", None)) == Reported(Outcome.REJECTED)
    assert admit(Parsed(3, "b", "T1", None)) == Reported(Outcome.CANCELED)
    assert admit.open_intents == 1  # canceled is never sent again: only `a` stays open


def test_an_open_intent_counts_on_a_moved_line_too() -> None:
    prior = ByKey(RUN, SpillStore(Path("unused"), 1 << 20))
    prior.add(2, "T1", "a", Outcome.REJECTED)
    admit = admission(prior, pending={key_of("T1", "a")})
    moved = admit(Parsed(5, "a", "T1", None))  # a changed input holds it on line 5 now
    assert isinstance(moved, Result) and moved.outcome is Outcome.REJECTED
    assert admit.open_intents == 1
