"""Blank rows (skipped and counted, CSV as JSON Lines) and an input that has no rows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from worker.errors import InputError
from worker.input.source import open_input
from worker.input.validate import validate
from worker.model import Rejected, Row


def read_all(path: Path) -> tuple[list[Row | Rejected], int, int, int, int]:
    """(rows, rows_seen, blank_rows, lines_seen, lines_accounted) after a full read; the
    rows without the columns they echo: these tests are about which lines are rows."""
    source = open_input(str(path))
    try:
        got = [replace(validate(p, "M0"), extra=()) for p in source.rows()]
        return got, source.rows_seen, source.blank_rows, source.lines_seen, source.lines_accounted
    finally:
        source.close()


def write(tmp_path: Path, name: str, data: str) -> Path:
    path = tmp_path / name
    path.write_text(data, encoding="utf-8")
    return path


BLANK_CSV = ['""', ",,", ",,,", '"","",""', '"",,', "  ,\t, ", '" ",,', "", "\r"]


@pytest.mark.parametrize("blank", BLANK_CSV)
def test_a_row_of_empty_cells_is_blank_in_csv(tmp_path: Path, blank: str) -> None:
    data = f"payment_reference,merchant_number,comment\nA,T1,\n{blank}\nB,T1,\n"
    got, seen, blanks, lines, accounted = read_all(write(tmp_path, "in.csv", data))
    assert got == [Row(2, "T1", "A", None), Row(4, "T1", "B", None)]
    assert (seen, blanks, lines, accounted) == (2, 1, 4, 4)


def test_blank_rows_in_other_separators_and_one_column(tmp_path: Path) -> None:
    for sep in (";", "\t", "|"):
        data = f'payment_reference{sep}merchant_number\n{sep}\n{sep}{sep}\n""{sep}""\nA{sep}T1\n'
        got, seen, blanks, *_ = read_all(write(tmp_path, "in.csv", data))
        assert (got, seen, blanks) == ([Row(5, "T1", "A", None)], 1, 3), repr(sep)
    got, seen, blanks, *_ = read_all(write(tmp_path, "one.csv", 'payment\n""\n\nA\n"  "\n'))
    assert (got, seen, blanks) == ([Row(4, "M0", "A", None)], 1, 3)


def test_an_empty_json_object_is_an_invalid_row_not_a_blank_one(tmp_path: Path) -> None:
    data = '{}\n\n   \t\n{"payment_reference": ""}\n{"payment_reference": "A"}\n'
    got, seen, blanks, lines, accounted = read_all(write(tmp_path, "in.jsonl", data))
    assert [type(g) for g in got] == [Rejected, Rejected, Row]
    assert isinstance(got[0], Rejected) and got[0].line == 1 and "empty" in got[0].detail
    assert (seen, blanks, lines, accounted) == (3, 2, 5, 5)


def test_an_input_without_rows_is_told_by_rows_seen(tmp_path: Path) -> None:
    _, seen, blanks, *_ = read_all(write(tmp_path, "header.csv", "payment_reference\n"))
    assert (seen, blanks) == (0, 0)
    _, seen, blanks, *_ = read_all(write(tmp_path, "blank.csv", "payment_reference,m\n,\n\n"))
    assert (seen, blanks) == (0, 2)
    # invalid rows are rows: the input is not empty, its rows are bad
    _, seen, blanks, *_ = read_all(write(tmp_path, "bad.csv", 'payment_reference\n"x\n'))
    assert (seen, blanks) == (1, 0)
    # a file of blank lines only has not even a header: refused when opened
    for name in ("blank.jsonl", "blank2.csv"):
        with pytest.raises(InputError, match="is empty"):
            open_input(str(write(tmp_path, name, "\n \r\n\t\n")))


def test_rows_seen_counts_as_the_rows_arrive(tmp_path: Path) -> None:
    data = "payment_reference\n" + "".join(f"r{i}\n" for i in range(30_000)) + "last"
    source = open_input(str(write(tmp_path, "big.csv", data)))
    assert source.rows_seen == 0
    batches = source.batches()
    first = next(batches) + next(batches)
    assert source.rows_seen == len(first) > 0
    for _ in batches:
        pass
    assert source.rows_seen == 30_001
    source.close()
