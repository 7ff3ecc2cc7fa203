"""Guard rail: the first K answered references all 403/404 stop the run, once."""

from __future__ import annotations

from worker.control.guard import RejectionGuard
from worker.model import NO_PAYMENT_STATE, Outcome, Result


def answered(outcome: Outcome, status: int | None = 404, attempts: int = 1) -> Result:
    return Result(1, "T1", "r", outcome, http_status=status, attempts=attempts)


def test_k_wrong_place_answers_in_a_row_stop_the_run_once_with_the_statuses() -> None:
    guard = RejectionGuard(3)
    assert guard.observe(answered(Outcome.NOT_FOUND)) is None
    assert guard.observe(answered(Outcome.REJECTED, 403)) is None
    reason = guard.observe(answered(Outcome.NOT_FOUND))
    assert reason is not None and "the first 3 references" in reason
    assert "HTTP 404 x2" in reason and "HTTP 403 x1" in reason
    assert guard.observe(answered(Outcome.NOT_FOUND)) is None  # said once


def test_one_other_outcome_disarms_it_for_good() -> None:
    guard = RejectionGuard(2)
    assert guard.observe(answered(Outcome.NOT_FOUND)) is None
    assert guard.observe(answered(Outcome.CANCELED, 201)) is None
    assert all(guard.observe(answered(Outcome.NOT_FOUND)) is None for _ in range(10))


def test_failed_and_unsent_rows_neither_count_nor_disarm() -> None:
    guard = RejectionGuard(2)
    assert guard.observe(answered(Outcome.FAILED, 503)) is None
    assert guard.observe(answered(Outcome.INVALID, None, attempts=0)) is None
    assert guard.observe(answered(Outcome.NOT_FOUND)) is None
    assert guard.observe(answered(Outcome.NOT_FOUND)) is not None


def test_references_failed_on_stateless_200s_count_as_a_wrong_place() -> None:
    """A BAMBORA_API_URL that answers a web page to everything: every reference ends
    failed on queries without a payment state (a night of retries, exit 5, before)."""
    guard = RejectionGuard(2)
    page = Result(1, "T1", "r", Outcome.FAILED, 200, NO_PAYMENT_STATE, attempts=10)
    assert guard.observe(page) is None
    reason = guard.observe(page)
    assert reason is not None and "HTTP 200 without a payment state x2" in reason
    assert "a BAMBORA_API_URL that is not the API" in reason


def test_a_payment_that_answered_its_state_once_is_not_a_web_page() -> None:
    """The last answer alone counted: Authorized three times, then one HTML page."""
    guard = RejectionGuard(1)
    flaky = Result(1, "T1", "r", Outcome.FAILED, 200, NO_PAYMENT_STATE, "Authorized", 8)
    assert guard.observe(flaky) is None


def test_zero_turns_it_off() -> None:
    guard = RejectionGuard(0)
    assert all(guard.observe(answered(Outcome.NOT_FOUND)) is None for _ in range(50))


def test_what_to_do_next_is_an_option_the_command_has() -> None:
    for check, scope, then in (
        (False, "cancel_payment", "rerun with --retry-outcomes rejected,not_found"),
        (True, "read_payment", "run check again with a new --report"),
    ):
        guard = RejectionGuard(1, check=check)
        reason = guard.observe(answered(Outcome.NOT_FOUND))
        assert reason is not None and f"without the {scope} scope" in reason
        assert f"then {then}" in reason
        assert ("--retry-outcomes" in reason) is not check  # check has no such option
