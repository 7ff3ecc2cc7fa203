"""Validate: the fast path for the common row decides exactly as the rules one by one."""

from __future__ import annotations

import itertools
import sys
import unicodedata

import pytest

from worker.input.parsed import Parsed
from worker.input.validate import BLANK, _checked, validate
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
    "edge\x1e",
    "\x0bvt",
    "nel\x85",
    "zw\u200bsp",
    "\u00a0nbsp\u3000",
    None,
]
MERCHANTS = ["T1", "", " T2 ", "9" * MAX_MERCHANT, "9" * (MAX_MERCHANT + 1), "M\x01", "Ü", None]
COMMENTS = [
    None,
    "",
    "  ",
    "end of day",
    "c" * MAX_COMMENT,
    "c" * (MAX_COMMENT + 1),
    "é",
    "x\udcfe",
]


@pytest.mark.parametrize("default", [None, "D1"])
def test_the_fast_path_agrees_with_every_rule(default: str | None) -> None:
    for ref, merchant, comment, error in itertools.product(
        REFERENCES, MERCHANTS, COMMENTS, [None, "cannot parse"]
    ):
        parsed = Parsed(7, ref, merchant, comment, error=error, extra=(("id", "1"),))
        stripped_ref = (ref or "").strip(BLANK)
        stripped_merchant = (merchant or "").strip(BLANK) or (default or "").strip(BLANK)
        blank = not comment or comment.isspace()
        expected = _checked(parsed, stripped_ref, stripped_merchant, None if blank else comment)
        assert validate(parsed, default) == expected, (ref, merchant, comment, error)


def test_a_plain_row_passes_and_a_control_character_does_not() -> None:
    assert validate(Parsed(2, " r1 ", "T1", None), None) == Row(2, "T1", "r1")
    bad = validate(Parsed(3, "r\x1b[31m", "T1", None), None)
    assert isinstance(bad, Rejected) and bad.outcome is Outcome.INVALID
    assert bad.detail and "control character" in bad.detail


def test_blank_is_every_space_separator_and_the_tab() -> None:
    spaces = {chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Zs"}
    assert set(BLANK) == spaces | {"\t"}


@pytest.mark.parametrize(
    ("cell", "code"),
    [
        ("A1\x1e", "U+001E"),  # str.strip() would drop it and cancel A1
        ("\x1cA2", "U+001C"),
        ("\x0bA3", "U+000B"),
        ("A4\n", "U+000A"),
        ("NEL\x85X", "U+0085"),  # C1 controls
        ("CSI\x9bX", "U+009B"),
        ("LS\u2028X", "U+2028"),  # line and paragraph separators
        ("PS\u2029X", "U+2029"),
        ("ZW\u200bX", "U+200B"),  # invisible formatting characters
        ("BOM\ufeffX", "U+FEFF"),
        ("\u200eRTL", "U+200E"),
    ],
)
def test_a_control_separator_or_invisible_character_anywhere_is_invalid(
    cell: str, code: str
) -> None:
    """Each of these was sent (the edge ones stripped off first), to another payment."""
    for parsed in (Parsed(5, cell, "T1", None), Parsed(5, "r1", cell, None)):
        bad = validate(parsed, None)
        assert isinstance(bad, Rejected) and bad.outcome is Outcome.INVALID, parsed
        assert bad.detail and code in bad.detail


def test_spaces_of_any_width_and_tabs_around_a_cell_are_stripped() -> None:
    parsed = Parsed(2, "\u00a0\tr1\u2003 ", "\u3000T1\t", None)
    assert validate(parsed, None) == Row(2, "T1", "r1")


def test_a_comment_cell_of_only_spaces_is_empty_so_the_default_comment_applies() -> None:
    """`k3,"  "` was sent with comment "  " instead of --comment's."""
    row = validate(Parsed(2, "k3", "T1", "  "), None)
    assert isinstance(row, Row) and row.comment is None
