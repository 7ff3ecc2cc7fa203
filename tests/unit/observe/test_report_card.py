"""The report card's counts read one way: singular for one, thousands separated."""

from __future__ import annotations

from worker.observe.report_card import Card, render


def card(requests: int, elapsed: float = 2.0) -> str:
    return render(Card({"canceled": 1_078}, {}, elapsed, requests, "r.csv", 0, None))


def test_one_request_is_singular_and_thousands_are_separated() -> None:
    assert "2.0 s, 1 request (0.5/s); report: r.csv" in card(1)
    assert "2.0 s, 4,190 requests (2,095.0/s); report: r.csv" in card(4_190)
    assert "  canceled      1,078" in card(1)
