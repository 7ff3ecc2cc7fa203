"""Report card: the human summary names each amount's scope, the follow-ups and states;
why a run stopped, and what finishes it: a rerun, or a fix first."""

from __future__ import annotations

from worker.observe.report_card import Card, render, termination_line


def card(**kw: object) -> Card:
    base: dict[str, object] = {
        "outcomes": {"canceled": 3, "not_found": 1, "not_cancelable": 2},
        "released": {"EUR": 12_50},
        "elapsed": 2.0,
        "requests": 9,
        "report": "night.report.csv",
        "exit_code": 0,
        "resume_command": None,
    }
    return Card(**(base | kw))  # type: ignore[arg-type]


def test_a_resumed_run_shows_this_runs_release_and_the_whole_reports() -> None:
    text = render(card(released_total={"EUR": 1_012_50, "DKK": 7_00}))
    assert text.splitlines()[0] == "cancel-worker: done (exit 0)"
    assert "released, this run                 12.50 EUR" in text
    assert "released, whole report          1,012.50 EUR" in text
    assert "released, this run                  0.00 DKK" in text
    assert "released, whole report              7.00 DKK" in text
    assert "follow-ups: 3 (not_cancelable, not_found" in text
    line = termination_line(card(released_total={"EUR": 1_012_50}))
    assert "released this run 12.50 EUR; whole report 1,012.50 EUR" in line


def test_amounts_are_shown_in_each_currencys_own_decimals() -> None:
    """The summary showed 150000 JPY as 1,500.00 and 1500 KWD as 15.00 (the report
    card of the same run said 150,000 JPY and 1.500 KWD)."""
    released = {"JPY": 150_000, "KWD": 1_500, "EUR": 12_50}
    text = render(card(released=released, released_total=released))
    assert "released, this run               150,000 JPY" in text
    assert "released, this run                 1.500 KWD" in text
    line = termination_line(card(released=released))
    assert "released this run 12.50 EUR 150,000 JPY 1.500 KWD" in line


def test_check_lists_the_payment_states() -> None:
    text = render(
        card(outcomes={"checked": 5}, released={}, states={"Authorized": 4, "Captured": 1})
    )
    lines = text.splitlines()
    at = lines.index("  payment states:")
    assert [x.split() for x in lines[at + 1 : at + 3]] == [["Authorized", "4"], ["Captured", "1"]]
    assert "released" not in text and "follow-ups" not in text


def test_exit_5_and_1_say_what_to_do() -> None:
    assert "a rerun retries them" in render(card(exit_code=5)).splitlines()[0]
    assert "need a person" in render(card(exit_code=1)).splitlines()[0]


REASON = "the auth server refused the client credentials (401 invalid_client)"
FIX = "correct BAMBORA_CLIENT_ID and BAMBORA_CLIENT_SECRET"


def test_an_abort_says_why_under_the_first_line_and_a_fix_comes_last() -> None:
    stopped = card(outcomes={}, released={}, exit_code=3, reason=REASON, fix=FIX)
    lines = render(stopped).splitlines()
    assert lines[0] == "cancel-worker: aborted (exit 3)"
    assert lines[1] == f"  reason: {REASON}"
    assert lines[-1] == f"  to fix: {FIX}"
    assert "run the same command again" not in "\n".join(lines)
    line = termination_line(stopped)
    assert f"reason: {REASON}" in line and line.endswith(f"to fix: {FIX}")


def test_an_input_that_stopped_reading_is_not_called_rows_for_a_person() -> None:
    why = "input became unreadable after 5954 rows: in.csv changed during the run"
    lines = render(card(exit_code=1, reason=why, fix="run with --allow-changed-input"))
    first, second = lines.splitlines()[:2]
    assert first == "cancel-worker: stopped before the end of the input (see the reason) (exit 1)"
    assert second == f"  reason: {why}" and "need a person" not in lines


def test_without_a_reason_or_a_fix_the_card_is_as_before() -> None:
    lines = render(
        card(outcomes={}, released={}, exit_code=130, resume_command="cancel-worker run in.csv")
    ).splitlines()
    assert not any("reason:" in x or "to fix:" in x for x in lines)
    assert lines[-1] == "  to finish, run the same command again: cancel-worker run in.csv"


def test_one_request_is_singular_and_thousands_are_separated() -> None:
    def text(requests: int) -> str:
        return render(card(outcomes={"canceled": 1_078}, released={}, requests=requests))

    assert "2.0 s, 1 request (0.5/s); report: night.report.csv" in text(1)
    assert "2.0 s, 4,190 requests (2,095.0/s); report: night.report.csv" in text(4_190)
    assert "  canceled      1,078" in text(1)


def test_a_run_under_a_second_shows_its_requests_in_that_second() -> None:
    """5 requests in 0.2 s read 24.2/s, as if past the default --rate 20."""
    assert "0.2 s, 5 requests (5.0/s)" in render(card(elapsed=0.2, requests=5))
