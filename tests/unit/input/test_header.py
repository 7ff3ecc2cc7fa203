"""The CSV header: the separator (detected, or `--delimiter`) and what a header that
cannot be used is told (exit 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.errors import InputError
from worker.input.source import open_input
from worker.input.validate import validate
from worker.model import Rejected, Row


def write(tmp_path: Path, name: str, data: str) -> Path:
    path = tmp_path / name
    path.write_text(data, encoding="utf-8")
    return path


def read(path: Path, delimiter: str | None = None) -> list[Row | Rejected]:
    source = open_input(str(path), None, delimiter)
    try:
        return [validate(p, "M0") for p in source.rows()]
    finally:
        source.close()


def refusal(path: Path, delimiter: str | None = None) -> str:
    with pytest.raises(InputError) as caught:
        open_input(str(path), None, delimiter)
    return str(caught.value)


def test_an_explicit_delimiter_is_the_only_one_tried(tmp_path: Path) -> None:
    assert read(write(tmp_path, "c.csv", "payment_reference:merchant_number\nA:T1,x\n"), ":") == [
        Row(2, "T1,x", "A", None)
    ]
    tsv = write(tmp_path, "t.csv", "payment_reference\tmerchant_number\nA\tT1;x\n")
    assert read(tsv, "tab") == read(tsv, "\\t") == read(tsv, "\t") == [Row(2, "T1;x", "A", None)]
    # it wins over detection, which would have found `,` here
    message = refusal(write(tmp_path, "in.csv", "payment_reference,merchant_number\nA,T1\n"), "|")
    assert message.endswith(
        "found 'payment_reference,merchant_number' read with --delimiter '|', which looks "
        "','-separated: pass --delimiter ',' or leave --delimiter out"
    )
    # JSON Lines has no separator: the option does not matter there
    assert read(write(tmp_path, "in.jsonl", '{"reference": "J"}\n'), ";") == [
        Row(1, "M0", "J", None)
    ]


@pytest.mark.parametrize("bad", ["", "ab", '"', "\n", "\r", ";;"])
def test_a_delimiter_must_be_one_character(tmp_path: Path, bad: str) -> None:
    # checked before the input is opened: the file does not even exist
    message = refusal(tmp_path / "missing.csv", bad)
    assert message.startswith("--delimiter must be one character (or tab)")
    assert message.isprintable()


def test_no_reference_column_says_what_the_header_looks_like(tmp_path: Path) -> None:
    keys = "the header (line 1) needs one of payment_reference, reference, payment"
    message = refusal(write(tmp_path, "in.csv", "order;amount;merchant\n1;2;3\n"))
    assert message == (
        f"{tmp_path / 'in.csv'}: no reference column; {keys}; found 'order;amount;merchant', "
        "which looks ';'-separated (for another separator pass --delimiter CHAR)"
    )
    message = refusal(write(tmp_path, "in.csv", "order\tamount,x\tmerchant\n"))
    assert message.endswith(
        "which looks tab-separated (for another separator pass --delimiter CHAR)"
    )
    message = refusal(write(tmp_path, "in.csv", "order:amount:merchant\n"))
    assert "which holds none of , ; tab | (for another separator pass --delimiter CHAR)" in message
    message = refusal(write(tmp_path, "in.csv", "order;amount\n"), ";")
    assert message.endswith("found 'order;amount' read with --delimiter ';'")


def test_a_quoted_header_with_another_separator_is_detected(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", '"payment_reference";"merchant_number"\n"A";"T1"\nB;T2\n')
    assert read(path) == [Row(2, "T1", "A", None), Row(3, "T2", "B", None)]
    message = refusal(write(tmp_path, "bad.csv", '"payment_reference"x,merchant\n'))
    assert re.search(r"cannot read the CSV header \(line 1\): ',' expected", message)


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ("payment_reference,merchant_number,payment_reference", "'payment_reference' twice"),
        ("Payment_Reference,merchant_number,payment_reference ", "'Payment_Reference' twice"),
        ("payment_reference,merchant,merchant", "'merchant' twice"),
        ("payment_reference,comment,merchant_number,comment", "'comment' twice"),
    ],
)
def test_a_known_column_named_twice_is_refused(tmp_path: Path, header: str, named: str) -> None:
    """Which of the two holds the reference to cancel was a guess (the first was sent)."""
    path = write(tmp_path, "in.csv", f"{header}\nA,1,B,C\n")
    message = refusal(path)
    assert named in message and "rename or remove one" in message


def test_an_alias_beside_the_canonical_name_is_only_echoed(tmp_path: Path) -> None:
    """`payment_reference` is the reference column; `reference` is accepted in its
    absence only (the contract's order), so beside it it is another input column."""
    path = write(tmp_path, "in.csv", "reference,payment_reference,merchant_number\nR,P,T1\n")
    (row,) = read(path)
    assert isinstance(row, Row) and row.reference == "P"


def test_the_header_row_again_is_invalid_not_a_payment(tmp_path: Path) -> None:
    """`cat a.csv b.csv`: the second header was sent as reference `payment_reference`
    of merchant `merchant_number` (a BOM before it too)."""
    header = "payment_reference,merchant_number"
    path = write(
        tmp_path, "in.csv", f"{header}\nA1,T1\n\ufeff{header}\nA2,T1\nPayment_Reference,T1\n"
    )
    rows = read(path)
    assert [type(r).__name__ for r in rows] == ["Row", "Rejected", "Row", "Row"]
    bad = rows[1]
    assert isinstance(bad, Rejected) and bad.line == 3 and "repeats the header row" in bad.detail


def test_a_line_with_an_open_quote_names_the_payment_its_whole_cells_hold(tmp_path: Path) -> None:
    """The cells before the open quote are whole: the invalid row names its reference
    and merchant (the report showed them empty, and --merchant's default for merchant)."""
    path = write(tmp_path, "in.csv", 'payment_reference,merchant_number,comment\nQ-1,T1,"open\n')
    (bad,) = read(path)
    assert isinstance(bad, Rejected) and (bad.reference, bad.merchant) == ("Q-1", "T1")
    assert bad.detail is not None and "unbalanced quote" in bad.detail
    path = write(tmp_path, "ref.csv", 'payment_reference,merchant_number\n"Q-2,T1\n')
    (bad,) = read(path)
    assert isinstance(bad, Rejected) and bad.reference == ""  # the quote opened in it


def test_a_repeated_header_in_another_case_or_excels_sep_line_again_is_invalid(
    tmp_path: Path,
) -> None:
    """`cat` of two exports: the second's header in its own case, or its `sep=;` line,
    was sent as payment `Payment_Reference` or `sep=`."""
    data = (
        "sep=;\npayment_reference;merchant_number\nA1;T1\n"
        "sep=;\nPayment_Reference;Merchant_Number\nA2;T1\n"
    )
    rows = read(write(tmp_path, "in.csv", data))
    assert [type(r).__name__ for r in rows] == ["Row", "Rejected", "Rejected", "Row"]
    assert "sep= line" in (rows[1].detail or "") and "repeats the header" in (rows[2].detail or "")


def test_a_repeated_header_in_its_quoting_spacing_or_aliases_is_invalid(tmp_path: Path) -> None:
    """Only the header spelled as the first was caught: ` payment_reference ,
    merchant_number ` was sent as payment `payment_reference` of merchant
    `merchant_number`, and so was `Payment,Merchant`."""
    header = "payment_reference,merchant_number"
    data = f'{header}\nA1,T1\n"payment_reference","merchant_number"\n'
    data += " payment_reference , merchant_number \nPayment,Merchant\nA2,T1\n"
    rows = read(write(tmp_path, "in.csv", data))
    assert [type(r).__name__ for r in rows] == ["Row", "Rejected", "Rejected", "Rejected", "Row"]
    assert all("repeats the header row" in r.detail for r in rows if isinstance(r, Rejected))


@pytest.mark.parametrize(
    "again",
    [
        "merchant_number,payment_reference",
        "payment_reference;merchant_number",
        "merchant,payment",
        # another column that is no plain name does not hide it
        "merchant_number,payment_reference,Amount (EUR)",
        "payment_reference;merchant_number;Amount (EUR)",
    ],
)
def test_a_second_header_with_its_columns_elsewhere_stops_the_file(
    tmp_path: Path, again: str
) -> None:
    """`cat` of two exports whose columns differ: every row after the second header was
    read in the first one's places (`T1,A2` sent as reference T1 of merchant A2)."""
    data = f"payment_reference,merchant_number\nA1,T1\n{again}\nT1,A2\n"
    with pytest.raises(InputError, match=r"line 3 is another header, .* other places"):
        read(write(tmp_path, "in.csv", data))


def test_a_second_header_found_by_its_merchant_cell_stops_the_file(tmp_path: Path) -> None:
    """Only the reference cell was looked at: `amount,payment_reference,merchant_number`
    under `payment_reference,merchant_number,amount` sent `amount` as a reference."""
    data = "payment_reference,merchant_number,amount\nA1,T1,5\n"
    data += "amount,payment_reference,merchant_number\n6,A2,T2\n"
    with pytest.raises(InputError, match=r"line 3 is another header"):
        read(write(tmp_path, "in.csv", data))


@pytest.mark.parametrize(
    ("data", "outcomes"),
    [
        # a reference named like the only known column, beside data: a payment
        ("payment_reference,amount\nA1,1\npayment_reference,12\n", ["Row", "Row"]),
        # the header again, its extra column spelled otherwise: still the header
        (
            "payment_reference,merchant_number,amount\nA1,T1,5\n"
            "payment_reference,merchant_number,Amount (EUR)\n",
            ["Row", "Rejected"],
        ),
        # names where the first header has its columns, the comment a word: the header
        (
            "payment_reference,merchant_number,comment\nA1,T1,x\npayment,merchant_number,urgent\n",
            ["Row", "Rejected"],
        ),
        # the header again whole, its only known column the reference beside a column
        # name that is no plain word: the header, not payment `Reference`
        ("Reference,Amount (EUR)\nR1,5\nReference,Amount (EUR)\n", ["Row", "Rejected"]),
        # a row cut short after a merchant-like cell: an invalid row, not a traceback
        ("merchant_number,payment_reference\nT1,A1\nmerchant\n", ["Row", "Rejected"]),
    ],
)
def test_rows_near_the_header_rule(tmp_path: Path, data: str, outcomes: list[str]) -> None:
    """A differential fuzz against the version before the rule found each of these."""
    assert [type(r).__name__ for r in read(write(tmp_path, "in.csv", data))] == outcomes


def test_a_second_header_in_another_separator_found_by_its_merchant_cell(tmp_path: Path) -> None:
    data = "merchant_number,payment_reference\nT1,A1\nmerchant_number;payment_reference\n"
    with pytest.raises(InputError, match="line 3 is another header"):
        read(write(tmp_path, "in.csv", data))


def test_a_lone_column_name_beside_other_cells_is_still_a_payment(tmp_path: Path) -> None:
    data = "payment_reference,merchant_number\nPayment_Reference,T1\nmerchant,T2\n"
    rows = read(write(tmp_path, "in.csv", data))
    assert [(r.reference, r.merchant) for r in rows] == [
        ("Payment_Reference", "T1"),
        ("merchant", "T2"),
    ]


def test_a_space_or_hyphen_in_a_column_name_counts_as_an_underscore(tmp_path: Path) -> None:
    """`Merchant Number` was no merchant column: both rows went to --merchant's T5."""
    path = write(tmp_path, "in.csv", "Payment-Reference,Merchant Number\nA1,T1\nA2,T2\n")
    rows = [validate(p, "T5") for p in open_input(str(path)).rows()]
    assert [(r.reference, r.merchant) for r in rows] == [("A1", "T1"), ("A2", "T2")]


@pytest.mark.parametrize(
    ("header", "row"),
    [
        ("payment_reference,merchant_number", '"payment;2024-001",T1'),
        ("merchant_number,payment_reference,note", "T1,reference,payment"),
        ("payment_reference,merchant_number", "payment,T1"),
        ("payment_reference,merchant_number,comment", "payment,,urgent"),
        # a merchant number where the first header has its merchant column: data
        ("payment_reference,merchant_number,initiated_by", "Payment,12345,Merchant"),
        ("payment_reference,merchant_number,comment", "payment,12345,comment"),
    ],
)
def test_a_payment_that_only_starts_like_a_header_is_sent(
    tmp_path: Path, header: str, row: str
) -> None:
    """A reference `payment;2024-001`, or cells that are column names beside a merchant
    number, stopped the whole file (exit 2): a header is names in every cell."""
    (item,) = read(write(tmp_path, "in.csv", f"{header}\n{row}\n"))
    assert isinstance(item, Row)
