"""Reader: formats, line numbers and every row rule of CONTRACT.md "Input"."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from worker.models import Outcome, Rejected, Row
from worker.reader import InputError, open_input, parse, validate


def rows(path: Path, merchant: str | None = "M0", fmt: str | None = None) -> list[Row | Rejected]:
    source = open_input(str(path), fmt)
    try:
        return [validate(p, merchant) for p in parse(source)]
    finally:
        source.close()


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_csv_bom_crlf_quotes_blank_lines_and_line_numbers(tmp_path: Path) -> None:
    data = (
        "\ufeffpayment_reference,merchant_number,comment\r\n"
        "A1,T1,plain\r\n"
        "\r\n"
        '"B,2",T1,"say ""hi"""\r\n'
        '"multi\r\nline",T1,\r\n'
        "  C3  ,  ,\r\n"
    )
    got = rows(write(tmp_path, "in.csv", data))
    assert got == [
        Row(2, "T1", "A1", "plain"),
        Row(4, "T1", "B,2", 'say "hi"'),
        Row(5, "T1", "multi\r\nline", None),
        Row(7, "M0", "C3", None),  # whitespace stripped, empty merchant falls back
    ]


def test_csv_alternative_column_names_and_case(tmp_path: Path) -> None:
    got = rows(write(tmp_path, "in.csv", " Reference ,Merchant,extra\nR1,T9,x\n"))
    assert got == [Row(2, "T9", "R1", None)]
    got = rows(write(tmp_path, "p.csv", "payment\nR2\n"))
    assert got == [Row(2, "M0", "R2", None)]


def test_csv_without_reference_column_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no reference column"):
        open_input(str(write(tmp_path, "in.csv", "order,merchant\n1,2\n")))
    with pytest.raises(InputError, match="empty"):
        open_input(str(write(tmp_path, "empty.csv", "")))
    with pytest.raises(InputError, match="cannot open"):
        open_input(str(tmp_path / "missing.csv"))


def test_reference_and_comment_length_limits(tmp_path: Path) -> None:
    ok, too_long = "r" * 2000, "r" * 2001
    data = f"payment_reference,comment\n{ok},\n{too_long},\nx,{'c' * 256}\ny,{'c' * 257}\n"
    got = rows(write(tmp_path, "in.csv", data))
    assert isinstance(got[0], Row) and got[0].reference == ok
    assert isinstance(got[1], Rejected) and "2001" in got[1].detail
    assert isinstance(got[2], Row)
    assert isinstance(got[3], Rejected) and got[3].outcome is Outcome.INVALID
    assert "257" in got[3].detail


def test_missing_merchant_is_invalid(tmp_path: Path) -> None:
    got = rows(write(tmp_path, "in.csv", "payment_reference\nA\n"), merchant=None)
    assert isinstance(got[0], Rejected) and "merchant" in got[0].detail


def test_unicode_and_bad_utf8(tmp_path: Path) -> None:
    data = "payment_reference\nZürich-€-1\n".encode() + b"bad\xff\xferef\nok\n"
    got = rows(write(tmp_path, "in.csv", data))
    assert got[0] == Row(2, "M0", "Zürich-€-1", None)
    assert isinstance(got[1], Rejected) and "UTF-8" in got[1].detail and got[1].line == 3
    assert got[2] == Row(4, "M0", "ok", None)


def test_unterminated_quote_is_an_invalid_row_not_a_crash(tmp_path: Path) -> None:
    got = rows(write(tmp_path, "in.csv", 'payment_reference\nA\n"B\n'))
    assert got[0] == Row(2, "M0", "A", None)
    assert isinstance(got[1], Rejected) and got[1].line == 3


def test_jsonl_lines_types_and_errors(tmp_path: Path) -> None:
    data = (
        '{"payment_reference": "J1", "merchant_number": "T1"}\n'
        "\n"
        "not json\n"
        "[1, 2]\n"
        '{"reference": 12345, "merchant": 77}\n'
        '{"payment_reference": true}\n'
        '{"payment_reference": "J1", "merchant_number": "T1", "comment": "again"}\n'
        '{"merchant_number": "T1"}\n'
    )
    got = rows(write(tmp_path, "in.jsonl", data))
    assert got[0] == Row(1, "T1", "J1", None)
    assert isinstance(got[1], Rejected) and got[1].line == 3 and "JSON" in got[1].detail
    assert isinstance(got[2], Rejected) and got[2].line == 4
    assert got[3] == Row(5, "77", "12345", None)
    assert isinstance(got[4], Rejected) and got[4].line == 6
    assert got[5] == Row(7, "T1", "J1", "again")  # duplicates are dedup's business
    assert isinstance(got[6], Rejected) and "empty" in got[6].detail


def test_gzip_by_magic_and_format_override(tmp_path: Path) -> None:
    payload = gzip.compress(b'{"payment_reference": "G1"}\n')
    assert rows(write(tmp_path, "in.jsonl.gz", payload)) == [Row(1, "M0", "G1", None)]
    # a .txt name: sniffed as JSON Lines from the first byte
    assert rows(write(tmp_path, "in.txt", '{"payment_reference": "S1"}\n')) == [
        Row(1, "M0", "S1", None)
    ]
    # an explicit override wins over the name
    path = write(tmp_path, "in.jsonl", "payment_reference\nC1\n")
    assert rows(path, fmt="csv") == [Row(2, "M0", "C1", None)]


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BufferedReader(io.BytesIO(b"payment_reference\nS1\n")))
    monkeypatch.setattr("sys.stdin", fake)
    source = open_input("-")
    assert source.format == "csv" and not source.rereadable
    assert [validate(p, "M") for p in parse(source)] == [Row(2, "M", "S1", None)]


def test_streams_without_loading_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write("payment_reference\n")
        for i in range(50_000):
            f.write(f"ref-{i}\n")
    source = open_input(str(path))
    it = parse(source)
    first = next(it)
    # the parser has read a buffer's worth, not the whole file
    assert first.reference == "ref-0"
    assert source.stream.tell() < path.stat().st_size
    source.close()
