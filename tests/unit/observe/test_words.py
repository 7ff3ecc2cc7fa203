"""Counts and durations for people, written one way."""

from __future__ import annotations

import pytest

from worker.observe.words import count, duration


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 references"), (1, "1 reference"), (2, "2 references"), (4190, "4,190 references")],
)
def test_a_count_takes_the_singular_for_one_and_separates_thousands(n: int, text: str) -> None:
    assert count(n, "reference") == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "under a second"),
        (0.49, "under a second"),
        (0.6, "under a second"),
        (1.4, "about 1 s"),
        (12.4, "about 12 s"),
        (240, "about 4 min"),
        (5400, "about 1.5 h"),
    ],
)
def test_a_duration_is_rough_and_never_about_nothing(seconds: float, text: str) -> None:
    assert duration(seconds) == text
