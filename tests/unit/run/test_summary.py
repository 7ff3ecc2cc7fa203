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
        (DONE, tally(Outcome.CANCELED, Outcome.NOT_FOUND), 1),
        (DONE, tally(Outcome.CANCELED, Outcome.INVALID), 1),
        (DONE, tally(Outcome.CANCELED, read=2), 1),  # rows_lost
        (Ending(input_done=True, lines_lost=1), tally(Outcome.CANCELED), 1),
        (Ending(input_error="truncated"), tally(Outcome.CANCELED), 1),
        (Ending(signal_code=143), tally(Outcome.CANCELED), 143),
        (Ending(signal_code=130, abort_reason="gone"), tally(), 3),  # an abort wins
        (Ending(abort_reason="full disk", input_done=True), tally(Outcome.CANCELED), 3),
    ],
)
def test_exit_codes(end: Ending, t: Tally, code: int) -> None:
    assert exit_code(end, t) == code


def test_complete_means_the_input_ended_and_nothing_stopped_the_run() -> None:
    assert DONE.complete
    assert not Ending().complete
    assert not Ending(input_done=True, signal_code=143).complete
    assert not Ending(input_done=True, abort_reason="x").complete
