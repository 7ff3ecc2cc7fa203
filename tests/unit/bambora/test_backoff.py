"""Backoff: `Retry-After` exactly when the trouble carries one, else capped full jitter."""

from __future__ import annotations

import random

import pytest
import tenacity.wait
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from worker.bambora.backoff import BACKOFF, MAX_BACKOFF, RetryLater


def failed_try(exc: BaseException, attempt: int) -> RetryCallState:
    """The state tenacity hands its `wait` after try number `attempt` raised `exc`."""
    state = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


@pytest.fixture
def bounds(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """Every (low, high) the jitter draws from; the draw itself returns `high`."""
    seen: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        seen.append((low, high))
        return high

    monkeypatch.setattr(tenacity.wait.random, "uniform", uniform)
    return seen


@pytest.mark.parametrize("after", [0.0, 0.25, 7.5, 45.0, 60.0])
@pytest.mark.parametrize("attempt", [1, 3, 12])
def test_retry_after_is_the_wait_exactly(
    bounds: list[tuple[float, float]], after: float, attempt: int
) -> None:
    # 45 and 60: above the backoff cap, yet honoured; the server said when.
    assert BACKOFF(failed_try(RetryLater(after), attempt)) == after
    assert bounds == []  # no jitter drawn


def test_a_negative_retry_after_means_now(bounds: list[tuple[float, float]]) -> None:
    assert BACKOFF(failed_try(RetryLater(-3.0), 1)) == 0.0


@pytest.mark.parametrize(
    ("attempt", "high"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (6, 16.0), (7, 30.0), (8, 30.0), (40, 30.0)],
)
def test_without_retry_after_full_jitter_up_to_the_capped_exponential(
    bounds: list[tuple[float, float]], attempt: int, high: float
) -> None:
    assert BACKOFF(failed_try(RetryLater(None), attempt)) == high
    assert bounds == [(0, high)]  # full jitter: from zero
    assert high <= MAX_BACKOFF


def test_any_other_exception_gets_the_jitter(bounds: list[tuple[float, float]]) -> None:
    assert BACKOFF(failed_try(TimeoutError(), 2)) == 1.0
    assert bounds == [(0, 1.0)]


def test_the_jitter_really_varies_within_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tenacity.wait.random, "uniform", random.Random(3).uniform)
    waits = [BACKOFF(failed_try(RetryLater(), 5)) for _ in range(200)]
    assert all(0 <= w <= 8.0 for w in waits)
    assert len(set(waits)) > 100


async def test_as_tenacity_wait_it_sleeps_what_each_failure_asks(
    bounds: list[tuple[float, float]],
) -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    failures = [RetryLater(3.0), RetryLater(None), RetryLater(0.5)]
    retrying = AsyncRetrying(
        wait=BACKOFF,
        retry=retry_if_exception_type(RetryLater),
        stop=stop_after_attempt(5),
        sleep=sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            if failures:
                raise failures.pop(0)
    assert sleeps == [3.0, 1.0, 0.5]  # Retry-After, jitter at try 2 (bound 1 s), Retry-After


def test_the_reason_is_the_message_and_after_is_kept() -> None:
    exc = RetryLater(2.0, "token endpoint answered 503")
    assert str(exc) == "token endpoint answered 503" and exc.after == 2.0
    assert str(RetryLater()) == "transient trouble" and RetryLater().after is None
