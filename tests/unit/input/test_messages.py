"""Error messages that quote the input: safe on a terminal and short, whatever the input."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import InputError
from worker.input.parsed import EXCERPT_LIMIT, excerpt
from worker.input.source import open_input
from worker.input.validate import validate
from worker.model import Rejected


def safe(message: str) -> bool:
    """Nothing a terminal would act on, and writable as UTF-8."""
    return message.isprintable() and message.encode("utf-8", "strict") is not None


def refusal(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        open_input(str(path))
    return str(caught.value)


def test_excerpt_escapes_controls_and_undecodable_bytes_and_is_capped() -> None:
    raw = b"\x1b[2J\x1b]0;owned\x07 Z\xc3\xbcrich \xff\xfe\t'\\\r\n\xe2\x80\xae"
    shown = excerpt(raw.decode("utf-8", "surrogateescape"))
    assert shown == "'\\x1b[2J\\x1b]0;owned\\x07 Zürich \\xff\\xfe\\t\\'\\\\\\r\\n\\u202e'"
    assert safe(shown)
    long = excerpt("é" * 1000)
    assert long.endswith("'...") and len(long) <= EXCERPT_LIMIT + 5
    assert excerpt("\x00" * 1000).startswith("'\\x00\\x00") and len(excerpt("\x00" * 1000)) < 90


def test_a_header_without_reference_is_quoted_safely(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"\x1b[31morder\xe9,amount," + b"x" * 5000 + b"\nA,1\n")
    message = refusal(path)
    assert "no reference column" in message and safe(message)
    assert "\\x1b[31morder\\xe9,amount" in message and len(message) < 400


def test_an_unbalanced_quote_quotes_its_line_and_column_safely(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(
        b'payment_reference,"mer\x1bchant",comment\nA,"T1\x07\x9b' + b"y" * 500 + b"\nB,T1,\n"
    )
    source = open_input(str(path))
    bad, _ = [validate(p, None) for p in source.rows()]
    source.close()
    assert isinstance(bad, Rejected) and "unbalanced quote" in bad.detail
    assert safe(bad.detail) and len(bad.detail) < 250
    assert "column 'mer\\x1bchant'" in bad.detail and "T1\\x07\\x9b" in bad.detail
