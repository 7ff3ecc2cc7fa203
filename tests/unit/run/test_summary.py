"""Summary: the exit table as a pure function of the one `RunReport` a run ends with."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from worker.model import Mode, Outcome
from worker.run.summary import Calls, Reading, RunReport


def run(
    *outcomes: Outcome,
    read: int | None = None,
    reading: Reading | None = None,
    strict: bool = False,
    **ending: object,
) -> RunReport:
    counted: Counter[str] = Counter(o.value for o in outcomes)
    decisive = Counter({k: v for k, v in counted.items() if k != Outcome.DUPLICATE.value})
    rows = len(outcomes) if read is None else read
    return RunReport(
        mode=Mode.RUN,
        strict=strict,
        reading=reading or Reading(done=True, rows=rows),
        rows_written=len(outcomes),
        rows_already_reported=0,
        rows_unwritten=0,
        outcomes=counted,
        decisive=decisive,
        released={},
        released_total={},
        states={},
        calls=Calls(),
        token_refreshes=0,
        held_seconds=0.0,
        elapsed=1.0,
        **ending,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("report", "code"),
    [
        (run(Outcome.CANCELED, Outcome.ALREADY_CANCELED), 0),
        (run(Outcome.WOULD_CANCEL, Outcome.CHECKED), 0),
        (run(Outcome.CANCELED, Outcome.DUPLICATE), 0),  # duplicates never decide
        # follow-ups are settled: counted, not a failure
        (run(Outcome.CANCELED, Outcome.NOT_FOUND, Outcome.NOT_CANCELABLE), 0),
        (run(Outcome.CHECKED, Outcome.NOT_FOUND), 0),
        (run(Outcome.CANCELED, Outcome.INVALID), 1),
        (run(Outcome.CANCELED, Outcome.REJECTED, Outcome.NOT_FOUND), 1),
        (run(Outcome.CANCELED, read=2), 1),  # rows_lost
        (run(Outcome.CANCELED, reading=Reading(done=True, rows=1, lines_lost=1)), 1),
        (run(Outcome.CANCELED, reading=Reading(error="truncated", rows=1)), 1),
        (run(Outcome.CANCELED, Outcome.FAILED), 5),
        (run(Outcome.FAILED, Outcome.INVALID, Outcome.REJECTED), 5),  # 5 wins over 1
        (run(Outcome.FAILED, reading=Reading(error="truncated", rows=1)), 5),
        (run(Outcome.FAILED, signal_code=130), 130),
        (run(Outcome.FAILED, guard_reason="403s"), 4),
        (run(Outcome.CANCELED, signal_code=143), 143),
        (run(signal_code=130, abort_reason="gone"), 3),  # an abort wins
        (run(Outcome.CANCELED, abort_reason="full disk"), 3),
    ],
)
def test_exit_codes(report: RunReport, code: int) -> None:
    assert report.exit_code == code


@pytest.mark.parametrize(
    ("report", "code"),
    [
        (run(Outcome.CANCELED, Outcome.NOT_FOUND), 1),
        (run(Outcome.CANCELED, Outcome.NOT_CANCELABLE), 1),
        (run(Outcome.CHECKED, Outcome.NOT_FOUND), 1),
        (run(Outcome.CANCELED, Outcome.ALREADY_CANCELED, Outcome.DUPLICATE), 0),
        (run(Outcome.NOT_FOUND, Outcome.FAILED), 5),
    ],
)
def test_strict_makes_follow_ups_need_a_person(report: RunReport, code: int) -> None:
    assert replace(report, strict=True).exit_code == code


def test_every_code_the_rule_can_give_has_a_meaning() -> None:
    """The summary, --help and the deploy checks read `exits.MEANINGS`: a code the
    rule returns without a meaning there would be shown as 'ended'."""
    from worker.exits import MEANINGS, Exit, summary_line

    assert {int(c) for c in MEANINGS} == {0, 1, 2, 3, 4, 5, 130, 143}
    assert all(summary_line(int(c)) != "ended" for c in Exit)
    assert summary_line(99) == "ended"


def test_complete_means_the_input_ended_and_nothing_stopped_the_run() -> None:
    assert run().complete
    assert not run(reading=Reading()).complete
    assert not run(signal_code=143).complete
    assert not run(abort_reason="x").complete
    assert not run(guard_reason="x").complete
