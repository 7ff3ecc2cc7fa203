"""Report card: why a run stopped, and what finishes it: a rerun, or a fix first."""

from __future__ import annotations

from worker.observe.report_card import Card, render, termination_line

REASON = "the auth server refused the client credentials (401 invalid_client)"
FIX = "correct BAMBORA_CLIENT_ID and BAMBORA_CLIENT_SECRET"


def card(
    *,
    reason: str | None = None,
    fix: str | None = None,
    exit_code: int = 3,
    resume_command: str | None = None,
) -> Card:
    return Card({}, {}, 0.2, 0, "in.report.csv", exit_code, resume_command, reason, fix)


def test_an_abort_says_why_under_the_first_line_and_a_fix_comes_last() -> None:
    lines = render(card(reason=REASON, fix=FIX)).splitlines()
    assert lines[0] == "cancel-worker: aborted (exit 3)"
    assert lines[1] == f"  reason: {REASON}"
    assert lines[-1] == f"  to fix: {FIX}"
    assert "run the same command again" not in "\n".join(lines)
    line = termination_line(card(reason=REASON, fix=FIX))
    assert f"reason: {REASON}" in line and line.endswith(f"to fix: {FIX}")


def test_without_a_reason_or_a_fix_the_card_is_as_before() -> None:
    lines = render(card(exit_code=130, resume_command="cancel-worker run in.csv")).splitlines()
    assert not any("reason:" in x or "to fix:" in x for x in lines)
    assert lines[-1] == "  to finish, run the same command again: cancel-worker run in.csv"
