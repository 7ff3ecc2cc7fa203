"""Reader: formats, line numbers and every row rule of the README's "Input"."""

from __future__ import annotations

import gzip
import io
import os
import random
from dataclasses import replace
from pathlib import Path

import pytest

from worker.errors import InputError
from worker.input.jsonl import parse_json_object
from worker.input.lines import MAX_LINE, Lines, TooLong
from worker.input.source import open_input
from worker.input.validate import validate
from worker.model import Outcome, Rejected, Row


def rows(path: Path, merchant: str | None = "M0", fmt: str | None = None) -> list[Row | Rejected]:
    source = open_input(str(path), fmt)
    try:
        return [_plain(validate(p, merchant)) for p in source.rows()]
    finally:
        source.close()


def _plain(item: Row | Rejected) -> Row | Rejected:
    """The row without its echoed columns: these tests are about the row rules."""
    return replace(item, extra=())


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
    assert got[:2] == [Row(2, "T1", "A1", "plain"), Row(4, "T1", "B,2", 'say "hi"')]
    # a reference never spans lines: the opening quote is a stray, and so is the closing
    # one; each line is its own invalid row, and reading goes on at the next line
    assert isinstance(got[2], Rejected) and got[2].line == 5 and "unbalanced" in got[2].detail
    assert isinstance(got[3], Rejected) and got[3].line == 6 and "stray" in got[3].detail
    assert got[4] == Row(7, "M0", "C3", None)  # whitespace stripped, empty merchant falls back


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


def test_stdin_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"payment_reference\nS1\n")
    os.close(write_fd)
    with open(read_fd, "rb") as stdin:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(stdin))
        source = open_input("-")
        assert source.format == "csv" and not source.rereadable
        assert [_plain(validate(p, "M")) for p in source.rows()] == [Row(2, "M", "S1", None)]


def test_streams_without_loading_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write("payment_reference\n")
        for i in range(50_000):
            f.write(f"ref-{i}\n")
    source = open_input(str(path))
    it = source.rows()
    first = next(it)
    # the parser has read a chunk's worth, not the whole file
    assert first.reference == "ref-0"
    assert os.lseek(source.fd, 0, os.SEEK_CUR) < path.stat().st_size
    source.close()


def lines_of(
    source_path: Path, multiline: bool = False
) -> tuple[list[Row | Rejected], int, int, int]:
    source = open_input(str(source_path), multiline=multiline)
    try:
        got = [_plain(validate(p, "M0")) for p in source.rows()]
        return got, source.lines_seen, source.lines_accounted, source.blank_rows
    finally:
        source.close()


def test_a_stray_quote_costs_its_own_line_only(tmp_path: Path) -> None:
    body = [f"q-{i},T1," for i in range(1, 50)]
    body[10] = '"q-10,T1,'  # line 12, as a broken export writes it
    path = write(
        tmp_path, "in.csv", "payment_reference,merchant_number,comment\n" + "\n".join(body) + "\n"
    )
    got, seen, accounted, _ = lines_of(path)
    assert len(got) == 49 and [g.line for g in got] == list(range(2, 51))
    bad = [g for g in got if isinstance(g, Rejected)]
    assert [b.line for b in bad] == [12] and "unbalanced quote" in bad[0].detail
    assert seen == accounted == 50


def test_a_later_quote_does_not_swallow_the_lines_between(tmp_path: Path) -> None:
    data = 'payment_reference,merchant_number,comment\n"a,T1,\nb,T1,\nc,T1,"note"\nd,T1,x\n'
    got, seen, accounted, _ = lines_of(write(tmp_path, "in.csv", data))
    assert isinstance(got[0], Rejected) and got[0].line == 2
    assert got[1:] == [Row(3, "T1", "b", None), Row(4, "T1", "c", "note"), Row(5, "T1", "d", "x")]
    assert seen == accounted == 5


def test_one_physical_line_is_one_row_by_default(tmp_path: Path) -> None:
    # issue 18, item 9: the quote left open on line 2 ends there; the `"` of line 4
    # is a character of its comment, not the other half of line 2's quote
    data = (
        "payment_reference,merchant_number,comment\n"
        'Q-1,T1,"unclosed quote\nQ-2,T1,fine\nQ-3,T1,a 5" screen\nQ-4,T1,fine\n'
    )
    got, seen, accounted, _ = lines_of(write(tmp_path, "in.csv", data))
    assert isinstance(got[0], Rejected) and got[0].line == 2
    assert "a quoted field is not closed on this line" in got[0].detail
    assert "column 'comment'" in got[0].detail
    assert got[1:] == [
        Row(3, "T1", "Q-2", "fine"),
        Row(4, "T1", "Q-3", 'a 5" screen'),
        Row(5, "T1", "Q-4", "fine"),
    ]
    assert seen == accounted == 5
    # a comment with a real line break is two lines, two rows, by default
    data = 'payment_reference,merchant_number,comment\na,T1,"two\nlines"\nb,T1,\n'
    got, seen, accounted, _ = lines_of(write(tmp_path, "two.csv", data))
    assert isinstance(got[0], Rejected) and got[0].line == 2
    assert isinstance(got[1], Rejected) and got[1].line == 3  # `lines"`: a stray quote
    assert got[2] == Row(4, "T1", "b", None) and seen == accounted == 4


def test_with_multiline_cells_a_comment_may_span_lines_within_its_limit(tmp_path: Path) -> None:
    data = 'payment_reference,merchant_number,comment\na,T1,"two\nlines"\nb,T1,\n'
    got, seen, accounted, _ = lines_of(write(tmp_path, "in.csv", data), multiline=True)
    assert got == [Row(2, "T1", "a", "two\nlines"), Row(4, "T1", "b", None)]
    assert seen == accounted == 4
    # the issue's file, read as cells that hold line breaks: line 2's comment runs on
    # to the quote of line 4, and the three lines are one row (none lost)
    data = (
        "payment_reference,merchant_number,comment\n"
        'Q-1,T1,"unclosed quote\nQ-2,T1,fine\nQ-3,T1,a 5" screen\nQ-4,T1,fine\n'
    )
    got, seen, accounted, _ = lines_of(write(tmp_path, "q.csv", data), multiline=True)
    assert [g.line for g in got] == [2, 5] and seen == accounted == 5


def test_with_multiline_cells_a_comment_quote_that_never_closes_is_a_stray(
    tmp_path: Path,
) -> None:
    rest = "".join(f"r{i},T1,\n" for i in range(100))
    data = f'payment_reference,merchant_number,comment\na,T1,"oops\n{rest}'
    got, seen, accounted, _ = lines_of(write(tmp_path, "in.csv", data), multiline=True)
    assert isinstance(got[0], Rejected) and got[0].line == 2 and "never closes" in got[0].detail
    assert got[1:] == [Row(3 + i, "T1", f"r{i}", None) for i in range(100)]
    assert seen == accounted == 102
    # at the very end of the file too
    got, seen, accounted, _ = lines_of(
        write(tmp_path, "end.csv", 'payment_reference,comment\nx,"a\ny\n'), multiline=True
    )
    assert isinstance(got[0], Rejected) and got[0].line == 2
    assert got[1] == Row(3, "M0", "y", None) and seen == accounted == 3


def test_blank_rows_are_counted_and_overlong_lines_are_invalid(tmp_path: Path) -> None:
    huge = "x" * (MAX_LINE + 10)
    data = f'payment_reference,merchant_number\n,,\n\n"",\n{huge},T1\nok,T1'
    got, seen, accounted, blank = lines_of(write(tmp_path, "in.csv", data))
    assert blank == 3
    assert isinstance(got[0], Rejected) and got[0].line == 5 and "bytes" in got[0].detail
    assert got[1] == Row(6, "T1", "ok", None)  # the last line has no newline
    assert seen == accounted == 6


def test_invalid_rows_echo_at_most_200_characters(tmp_path: Path) -> None:
    ref = "r" * 5000
    got, *_ = lines_of(write(tmp_path, "in.jsonl", f'{{"payment_reference": "{ref}"}}\n'))
    assert isinstance(got[0], Rejected) and got[0].reference == "r" * 200
    assert "5000 characters" in got[0].detail


def test_line_breaks_and_control_characters_never_reach_a_request(tmp_path: Path) -> None:
    data = (
        '{"payment_reference": "a\\nb"}\n'
        '{"payment_reference": "c\\u0000"}\n'
        '{"payment_reference": "ok"}\n'
    )
    got, *_ = lines_of(write(tmp_path, "in.jsonl", data))
    assert [type(g) for g in got] == [Rejected, Rejected, Row]


def test_json_errors_name_the_column_not_a_line_inside_the_line(tmp_path: Path) -> None:
    got, *_ = lines_of(write(tmp_path, "in.jsonl", '{"a": 1}\n\n{"payment_reference": "x",\n'))
    assert isinstance(got[1], Rejected) and got[1].line == 3
    assert "line 1" not in got[1].detail and "column" in got[1].detail


def test_semicolon_and_tab_separated_files(tmp_path: Path) -> None:
    for sep in (";", "\t", "|"):
        path = write(tmp_path, "in.csv", f"payment_reference{sep}merchant_number\nA{sep}T1\n")
        assert rows(path) == [Row(2, "T1", "A", None)]


@pytest.mark.parametrize("refs", [2_000, 40_000], ids=["read whole at open", "read later"])
def test_truncated_and_corrupt_gzip(tmp_path: Path, refs: int) -> None:
    rng = random.Random(refs)  # references that compress badly: a file of several reads
    body = b"".join(b"r%d-%x\n" % (i, rng.getrandbits(48)) for i in range(refs))
    whole = gzip.compress(b"payment_reference\n" + body)
    path = write(tmp_path, "in.csv.gz", whole[: len(whole) // 2])

    def read_all() -> None:
        source = open_input(str(path))
        try:
            list(source.rows())
        finally:
            source.close()

    with pytest.raises(InputError, match="ends early"):
        read_all()
    # several gzip members one after the other (gzip -c a b) read as one file
    two = gzip.compress(b"payment_reference\nA\n") + gzip.compress(b"B\n")
    assert rows(write(tmp_path, "two.csv.gz", two)) == [
        Row(2, "M0", "A", None),
        Row(3, "M0", "B", None),
    ]


def test_lines_counts_every_line_across_chunk_boundaries() -> None:
    lines = Lines()
    out: list[bytes | TooLong] = []
    for piece in (b"ab", b"c\nde", b"\n\n", b"f"):
        out += lines.feed(piece)
    out += lines.finish()
    assert out == [b"abc", b"de", b"", b"f"] and lines.count == 4


def test_the_other_columns_of_a_row_travel_with_it(tmp_path: Path) -> None:
    csv_path = write(
        tmp_path, "in.csv", "order,payment_reference,Amount,merchant\no-1,A,12.50,T1\n"
    )
    source = open_input(str(csv_path))
    (row,) = [validate(p, None) for p in source.rows()]
    source.close()
    assert row.extra == (("order", "o-1"), ("Amount", "12.50"))
    jsonl = write(
        tmp_path, "in.jsonl", '{"reference": "J", "merchant": "T1", "n": 3, "tags": ["a"]}\n'
    )
    source = open_input(str(jsonl))
    (row,) = [validate(p, None) for p in source.rows()]
    source.close()
    assert row.extra == (("n", 3), ("tags", ["a"]))  # JSON values as they were read


@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_an_excel_sep_line_names_the_separator_and_the_header_follows(
    tmp_path: Path, bom: str
) -> None:
    data = f"{bom}sep=;\r\npayment_reference;merchant_number;comment\r\nA1;T1;a, b\r\nA2;;\r\n"
    path = write(tmp_path, "in.csv", data)
    got = rows(path)
    assert got == [Row(3, "T1", "A1", "a, b"), Row(4, "M0", "A2", None)]
    source = open_input(str(path))
    try:
        assert source.columns is not None and source.columns.delimiter == ";"
        list(source.rows())
        assert source.lines_seen == source.lines_accounted == 4  # the sep line is accounted
    finally:
        source.close()


def test_an_excel_sep_line_before_a_header_without_references_names_line_2(
    tmp_path: Path,
) -> None:
    with pytest.raises(InputError, match=r"the header \(line 2\) needs one of"):
        rows(write(tmp_path, "in.csv", "sep=,\nid,amount\n1,2\n"))


def test_a_carriage_return_of_its_own_makes_its_line_invalid(tmp_path: Path) -> None:
    # Only LF ends a line: a CR alone (old Mac line ends) would hide rows in a cell
    data = (
        "payment_reference,merchant_number,order_id\n"
        "cr4-1,T1,o1\rcr4-2,T1,o2\rcr4-3,T1,o3\n"
        'q-1,T1,"x"\r"y"\n'  # the same, on the quoted path
        "ok-1,T1,o4\r\n"  # a CRLF line end is a line end
    )
    got, seen, accounted, _ = lines_of(write(tmp_path, "in.csv", data))
    assert [g.line for g in got] == [2, 3, 4] and seen == accounted == 4
    for bad in got[:2]:
        assert isinstance(bad, Rejected) and "carriage return" in bad.detail
    assert got[2] == Row(4, "T1", "ok-1", None)
    with pytest.raises(InputError, match=r"header \(line 1\) holds a carriage return"):
        open_input(str(write(tmp_path, "mac.csv", "payment_reference,m\rA,T1\rB,T1\r")))


def test_with_multiline_cells_a_crlf_inside_a_quoted_comment_is_its_line_break(
    tmp_path: Path,
) -> None:
    data = 'payment_reference,merchant_number,comment\r\na,T1,"two\r\nlines"\r\nb,T1,\r\n'
    got, seen, accounted, _ = lines_of(write(tmp_path, "in.csv", data), multiline=True)
    assert got == [Row(2, "T1", "a", "two\r\nlines"), Row(4, "T1", "b", None)]
    assert seen == accounted == 4


def test_a_stray_quote_in_a_reference_is_invalid_whatever_else_the_line_quotes(
    tmp_path: Path,
) -> None:
    data = (
        "payment_reference,merchant_number,comment\n"
        'QB-2",T1,"he said ""ok"""\n'  # the other half of a quote, and a proper one after
        'bq"1,T1,"say ""hi"""\n'
        'M-1,T"1,"a ""b"""\n'
        '"ab""c",T1,"say ""hi"""\n'  # a quoted reference holding a quote: written doubled
    )
    got = rows(write(tmp_path, "in.csv", data))
    columns = ("payment_reference", "payment_reference", "merchant_number")
    for bad, column in zip(got[:3], columns, strict=True):
        assert isinstance(bad, Rejected) and bad.detail == f"stray quote in column '{column}'"
    assert got[3] == Row(5, "T1", 'ab"c', 'say "hi"')


def test_with_multiline_cells_the_comment_limit_counts_from_its_quote(tmp_path: Path) -> None:
    data = (
        "payment_reference,merchant_number,comment\n"
        f'm8-1,T1,"{"a" * 250}\n'  # 250 characters on its first line alone
        'm8-2,T1,5" screen\n'
    )
    got, seen, accounted, _ = lines_of(write(tmp_path, "in.csv", data), multiline=True)
    assert isinstance(got[0], Rejected) and "does not close within 256" in got[0].detail
    assert got[1] == Row(3, "T1", "m8-2", '5" screen') and seen == accounted == 3
    # counted as the comment's length is: a CRLF line break inside it is two characters
    for b, rows in ((54, [2, 4]), (55, [2, 3, 4])):
        crlf = (
            "payment_reference,merchant_number,comment\r\n"
            f'm9-1,T1,"{"a" * 200}\r\n{"b" * b}"\r\n'  # 256, then 257 characters
            "m9-2,T1,ok\r\n"
        )
        got, seen, accounted, _ = lines_of(write(tmp_path, "crlf.csv", crlf), multiline=True)
        assert [g.line for g in got] == rows and seen == accounted == 4
        assert isinstance(got[0], Row) == (b == 54)


def test_with_multiline_cells_a_lone_cr_inside_a_comment_makes_the_whole_row_invalid(
    tmp_path: Path,
) -> None:
    data = (
        "payment_reference,merchant_number,comment\n"
        'R1,T1,"first line\nsecond\rpart\nR9,T1,tail"\nR2,T1,ok\n'
    )
    got, seen, accounted, _ = lines_of(write(tmp_path, "in.csv", data), multiline=True)
    # the comment's lines are one row, invalid; none of its text is read as a row (R9)
    assert isinstance(got[0], Rejected) and got[0].line == 2 and "carriage return" in got[0].detail
    assert got[1:] == [Row(5, "T1", "R2", "ok")] and seen == accounted == 5


def test_jsonl_numbers_that_are_not_whole_are_invalid_with_the_reason(tmp_path: Path) -> None:
    data = (
        '{"payment_reference": 1.5, "merchant_number": "T1"}\n'
        '{"payment_reference": 123456789012345678901234567890, "merchant_number": "T1"}\n'
        '{"payment_reference": 42, "merchant_number": 7}\n'
    )
    got = rows(write(tmp_path, "in.jsonl", data))
    for bad in got[:2]:
        assert isinstance(bad, Rejected) and "must be a string or a whole number" in bad.detail
    assert got[2] == Row(3, "7", "42", None)


def test_an_empty_delimiter_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--delimiter must be one character"):
        open_input(str(write(tmp_path, "in.csv", "payment_reference\nA\n")), delimiter="")


@pytest.mark.parametrize(
    "line",
    [
        b'{"payment_reference": "FIRST", "merchant_number": "1", "payment_reference": "LAST"}',
        b'{"payment_reference": "P2", "merchant_number": "111", "merchant_number": "222"}',
        b'{"Payment_Reference": "A", "payment_reference": "B", "merchant_number": "1"}',
        # the same spelling twice, other than the canonical one (sent B)
        b'{"payment reference": "A", "payment reference": "B", "merchant": "1"}',
        b'{"Payment_Reference": "A", "Payment_Reference": "B", "merchant": "1"}',
    ],
)
def test_a_json_row_naming_a_known_key_twice_is_invalid(line: bytes) -> None:
    """JSON readers keep the last value, the CSV reader the first: a guess either way."""
    parsed = parse_json_object(3, line)
    assert parsed.error is not None and "twice" in parsed.error


def test_a_key_text_inside_a_value_is_not_a_second_key() -> None:
    line = b'{"payment_reference": "A", "merchant_number": "1", "note": "\\"payment_reference\\""}'
    parsed = parse_json_object(3, line)
    assert parsed.error is None and parsed.reference == "A"


def test_a_json_row_with_bytes_that_are_not_utf8_is_read_as_a_csv_row_is() -> None:
    """In an ignored key it is echoed (the CSV row was sent, the JSON row was invalid);
    in the reference the row is invalid, in both formats."""
    echoed = parse_json_object(
        1, b'{"payment_reference": "OK", "merchant_number": "1", "x": "caf\xe9"}'
    )
    assert echoed.error is None and echoed.reference == "OK"
    assert validate(echoed, None) == Row(1, "1", "OK", None, echoed.extra)
    bad = parse_json_object(2, b'{"payment_reference": "B\xe9", "merchant_number": "1"}')
    rejected = validate(bad, None)
    assert isinstance(rejected, Rejected) and rejected.detail == "row is not valid UTF-8"
    twice = b'{"payment_reference": "A\xe9", "merchant_number": "1", "payment_reference": "B"}'
    assert "twice" in (parse_json_object(3, twice).error or "")
    assert parse_json_object(4, b'{"payment_reference": "A", \xe9}').error is not None


def test_odd_json_lines_stay_one_invalid_row_each() -> None:
    """The fallback for bytes that are not UTF-8 must not read what orjson refuses for
    other reasons (NaN, nesting deeper than it allows), nor crash on it."""
    deep = b'{"payment_reference": "A", "merchant_number": "1", "x": ' + b"[" * 100_000
    deep += b"]" * 100_000 + b', "x\\xe9": 1}'
    nan = b'{"payment_reference": "A", "merchant_number": "1", "x": NaN, "y": "caf\\xc3\\xa9"}'
    nan_latin = b'{"payment_reference": "A", "merchant_number": "1", "x": NaN, "y": "caf\\xe9"}'
    for line in (deep, nan, nan_latin):
        assert parse_json_object(1, line).error is not None, line[:60]
    twice = b'{"payment_reference": "A", "merchant_number": "1", "payment_reference": '
    assert parse_json_object(2, twice + b"[" * 100_000 + b"]" * 100_000 + b"}").error


def test_an_invalid_json_number_is_shown_as_written_not_as_the_default_merchant() -> None:
    parsed = parse_json_object(1, b'{"payment_reference": "X", "merchant_number": 1.0}')
    bad = validate(parsed, "77")
    assert isinstance(bad, Rejected) and bad.merchant == "1.0" and bad.reference == "X"


def test_the_fallback_reads_a_number_past_64_bits_as_orjson_does() -> None:
    line = b'{"payment_reference": 123456789012345678901234567890, "merchant_number": "1", '
    line += b'"x": "\xe9"}'
    assert parse_json_object(1, line).error is not None  # orjson: a float, made invalid


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_read_resumed_at_any_mark_goes_on_as_the_whole_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Every checkpoint a read marks (after each chunk: small chunks here) starts a read
    that parses only the rest, numbering and counting as the whole read does."""
    from worker.input import source as source_module

    monkeypatch.setattr(source_module, "CHUNK", 37)
    rnd = random.Random(5)
    if fmt == "csv":
        lines = ["payment_reference,merchant_number,comment"]
        pick = [
            "r{n},T1,",
            "",
            ",,",
            'r{n},T1,"open',
            "r{n},T1,a\r",
            "r{n};T1",
            "  ",
            "x\rr{n},T1,",
        ]
    else:
        lines = []
        pick = ['{{"payment_reference":"r{n}","merchant_number":"T1"}}', "", "{{", "[1]", " "]
    lines += [rnd.choice(pick).format(n=n) for n in range(300)]
    path = tmp_path / f"in.{fmt}"
    path.write_bytes("\n".join(lines).encode() + (b"\n" if fmt == "csv" else b""))

    whole = open_input(str(path))
    marks, parsed = [], []
    for batch in whole.batches():
        parsed += batch
        if (mark := whole.mark()) is not None:
            marks.append(mark)
    counts = (whole.lines_seen, whole.lines_accounted, whole.blank_rows, whole.rows_seen)
    whole.close()
    assert len(marks) > 40
    for mark in marks:
        resumed = open_input(str(path))
        resumed.resume_at(mark)
        rest = [p for batch in resumed.batches() for p in batch]
        assert rest == [p for p in parsed if p.line >= mark.line]
        assert (resumed.lines_seen, resumed.lines_accounted) == counts[:2]
        assert (resumed.blank_rows, resumed.rows_seen) == counts[2:]
        resumed.close()


def test_no_mark_in_a_gzip_file_or_with_cells_spanning_lines(tmp_path: Path) -> None:
    text = "payment_reference,merchant_number\n" + "".join(f"r{n},T1\n" for n in range(50))
    packed = tmp_path / "in.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    plain = tmp_path / "in.csv"
    plain.write_text(text)
    for source in (open_input(str(packed)), open_input(str(plain), multiline=True)):
        for _ in source.batches():
            assert source.mark() is None
        source.close()
    source = open_input(str(plain))
    assert all(source.mark() is not None for _ in source.batches())
    source.close()
