"""Validate: the fast path for the common row decides exactly as the rules one by one."""

from __future__ import annotations

import itertools

import pytest

from worker.input.parsed import Parsed
from worker.input.validate import _checked, validate
from worker.model import Outcome, Rejected, Row
from worker.settings import MAX_COMMENT, MAX_MERCHANT, MAX_REFERENCE

REFERENCES = [
    "order-1",
    " padded ",
    "",
    "   ",
    "x" * MAX_REFERENCE,
    "x" * (MAX_REFERENCE + 1),
    "Zürich-1",
    "tab\there",
    "bell\x07",
    "del\x7f",
    "bad\udcff",
    "a b",
    None,
]
MERCHANTS = ["T1", "", " T2 ", "9" * MAX_MERCHANT, "9" * (MAX_MERCHANT + 1), "M\x01", "Ü", None]
COMMENTS = [None, "", "end of day", "c" * MAX_COMMENT, "c" * (MAX_COMMENT + 1), "é", "x\udcfe"]


@pytest.mark.parametrize("default", [None, "D1"])
def test_the_fast_path_agrees_with_every_rule(default: str | None) -> None:
    for ref, merchant, comment, error in itertools.product(
        REFERENCES, MERCHANTS, COMMENTS, [None, "cannot parse"]
    ):
        parsed = Parsed(7, ref, merchant, comment, error=error, extra=(("id", "1"),))
        stripped_ref = (ref or "").strip()
        stripped_merchant = (merchant or "").strip() or (default or "").strip()
        expected = _checked(parsed, stripped_ref, stripped_merchant, comment or None)
        assert validate(parsed, default) == expected, (ref, merchant, comment, error)


def test_a_plain_row_passes_and_a_control_character_does_not() -> None:
    assert validate(Parsed(2, " r1 ", "T1", None), None) == Row(2, "T1", "r1")
    bad = validate(Parsed(3, "r\x1b[31m", "T1", None), None)
    assert isinstance(bad, Rejected) and bad.outcome is Outcome.INVALID
    assert bad.detail and "control character" in bad.detail
