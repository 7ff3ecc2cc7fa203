"""The preview and its question: what a person reads before anything is sent, at 80 columns."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from worker.model import Mode
from worker.run import preview
from worker.settings import Settings


def prepared(counts: Counter[str] | None, **settings: Any) -> Any:
    s = Settings(mode=Mode.RUN, input="payments.csv", report=Path("payments.report.csv"))
    fields = {"api_url": "https://api.bambora.com", **settings}
    return SimpleNamespace(settings=Settings(**{**s.__dict__, **fields}), to_send=counts)


def test_every_line_fits_80_columns_and_numbers_read_one_way() -> None:
    counts = Counter({f"T{i:06d}": 1_000 * (i + 1) for i in range(7)})
    text = preview.render(prepared(counts, rate=20.0))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, lines
    assert lines[0] == "about to cancel 28,000 references from payments.csv"
    assert "  2 more merchants: 3,000" in lines
    assert "  at most 20 requests/s: about 23 min" in lines
    assert "  API: api.bambora.com" in lines  # the https default port is not shown
    assert "  report: payments.report.csv" in lines


def test_one_reference_a_port_and_a_short_run() -> None:
    text = preview.render(prepared(Counter({"T1": 1}), rate=1.0, api_url="http://127.0.0.1:19702"))
    assert "about to cancel 1 reference from payments.csv" in text
    assert "  merchant T1: 1" in text
    assert "at most 1 request/s: about 1 s" in text
    assert "  API: 127.0.0.1:19702" in text
    assert "about 0 s" not in preview.render(prepared(Counter({"T1": 1}), rate=1000.0))
    assert ": under a second" in preview.render(prepared(Counter({"T1": 1}), rate=1000.0))


def test_standard_input_is_not_counted_and_ipv6_keeps_its_brackets() -> None:
    text = preview.render(prepared(None, input="-", api_url="https://[2001:db8::1]:8443"))
    assert text.splitlines()[:2] == [
        "about to cancel the references read from -",
        "  (read once, as they arrive: not counted first)",
    ]
    assert "  API: [2001:db8::1]:8443" in text


def test_the_sandbox_is_named_whatever_api_url_the_environment_holds() -> None:
    text = preview.render(prepared(Counter({"T1": 3}), sandbox=True, api_url="https://192.0.2.2"))
    assert "  API: the embedded sandbox on loopback (no real payment is touched)" in text
    assert "192.0.2.2" not in text and max(map(len, text.splitlines())) <= 80


@pytest.mark.parametrize(
    ("total", "answer", "ok"),
    [(4212, "4212", True), (4212, "4,212", True), (4212, "4211", False), (3, "y", True)],
)
def test_the_question_ends_in_one_colon_and_takes_the_count(
    total: int, answer: str, ok: bool
) -> None:
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        return answer

    assert preview.confirmed(prepared(Counter({"T1": total})), ask) is ok
    [question] = asked
    assert question.count(":") <= 1 and not question.endswith(": : ")
    if total > preview.SMALL_RUN:
        assert question == "type 4,212 to cancel them, anything else stops: "


@pytest.mark.parametrize(("answer", "ok"), [("y", False), ("yes", False), ("cancel", True)])
def test_a_stream_of_unknown_count_is_never_confirmed_by_y(answer: str, ok: bool) -> None:
    """`run <(psql ...)`: its count is known only once read; one `y` sent 40 cancels."""
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        return answer

    assert preview.confirmed(prepared(None), ask) is ok
    assert asked == ["type cancel to cancel every reference it holds, anything else stops: "]
