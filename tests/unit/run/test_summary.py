"""Summary: the README's exit table as a pure function of how a run ended."""

from __future__ import annotations

import pytest

from worker.model import Outcome
from worker.run.summary import Ending, Tally, exit_code


def tally(*outcomes: Outcome, read: int | None = None) -> Tally:
    t = Tally(rows_read=len(outcomes) if read is None else read, rows_written=len(outcomes))
    for o in outcomes:
        t.count(o)
    return t


DONE = Ending(input_done=True)


@pytest.mark.parametrize(
    ("end", "t", "code"),
    [
        (DONE, tally(Outcome.CANCELED, Outcome.ALREADY_CANCELED), 0),
        (DONE, tally(Outcome.WOULD_CANCEL, Outcome.CHECKED), 0),
        (DONE, tally(Outcome.CANCELED, Outcome.DUPLICATE), 0),  # duplicates never decide
        # follow-ups are settled: counted, not a failure
        (DONE, tally(Outcome.CANCELED, Outcome.NOT_FOUND, Outcome.NOT_CANCELABLE), 0),
        (DONE, tally(Outcome.CHECKED, Outcome.NOT_FOUND), 0),
        (DONE, tally(Outcome.CANCELED, Outcome.INVALID), 1),
        (DONE, tally(Outcome.CANCELED, Outcome.REJECTED, Outcome.NOT_FOUND), 1),
        (DONE, tally(Outcome.CANCELED, read=2), 1),  # rows_lost
        (Ending(input_done=True, lines_lost=1), tally(Outcome.CANCELED), 1),
        (Ending(input_error="truncated"), tally(Outcome.CANCELED), 1),
        (DONE, tally(Outcome.CANCELED, Outcome.FAILED), 5),
        (DONE, tally(Outcome.FAILED, Outcome.INVALID, Outcome.REJECTED), 5),  # 5 wins over 1
        (Ending(input_error="truncated"), tally(Outcome.FAILED), 5),
        (Ending(signal_code=130), tally(Outcome.FAILED), 130),
        (Ending(guard_reason="403s", input_done=True), tally(Outcome.FAILED), 4),
        (Ending(signal_code=143), tally(Outcome.CANCELED), 143),
        (Ending(signal_code=130, abort_reason="gone"), tally(), 3),  # an abort wins
        (Ending(abort_reason="full disk", input_done=True), tally(Outcome.CANCELED), 3),
    ],
)
def test_exit_codes(end: Ending, t: Tally, code: int) -> None:
    assert exit_code(end, t) == code


@pytest.mark.parametrize(
    ("t", "code"),
    [
        (tally(Outcome.CANCELED, Outcome.NOT_FOUND), 1),
        (tally(Outcome.CANCELED, Outcome.NOT_CANCELABLE), 1),
        (tally(Outcome.CHECKED, Outcome.NOT_FOUND), 1),
        (tally(Outcome.CANCELED, Outcome.ALREADY_CANCELED, Outcome.DUPLICATE), 0),
        (tally(Outcome.NOT_FOUND, Outcome.FAILED), 5),
    ],
)
def test_strict_makes_follow_ups_need_a_person(t: Tally, code: int) -> None:
    assert exit_code(DONE, t, strict=True) == code


def test_every_code_the_rule_can_give_has_a_meaning() -> None:
    """The summary, --help and the deploy checks read `exits.MEANINGS`: a code the
    rule returns without a meaning there would be shown as 'ended'."""
    from worker.exits import MEANINGS, Exit, summary_line

    assert {int(c) for c in MEANINGS} == {0, 1, 2, 3, 4, 5, 130, 143}
    assert all(summary_line(int(c)) != "ended" for c in Exit)
    assert summary_line(99) == "ended"


def test_complete_means_the_input_ended_and_nothing_stopped_the_run() -> None:
    assert DONE.complete
    assert not Ending().complete
    assert not Ending(input_done=True, signal_code=143).complete
    assert not Ending(input_done=True, abort_reason="x").complete
