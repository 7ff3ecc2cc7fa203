"""What `open_input` refuses from the first line, before any request: binary input and
the other format (exit 2, with a hint); and it reads no further ahead than it needs."""

from __future__ import annotations

import gzip
import io
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from worker.errors import InputError
from worker.input.source import Source, open_input
from worker.input.validate import validate
from worker.model import Rejected, Row

CSV_64 = "payment_reference,merchant_number\n" + "".join(f"r{i},T1\n" for i in range(64))
NOT_JSON = r"line 1 is not JSON \('payment_reference,merchant_number'\): is this CSV\? "
NOT_JSON += "use --input-format csv"
LOOKS_JSON = re.escape("line 1 looks like JSON: is this JSON Lines? use --input-format jsonl")


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def read(path: Path, fmt: str | None = None) -> list[Row | Rejected]:
    source = open_input(str(path), fmt)
    try:
        return [validate(p, "M0") for p in source.rows()]
    finally:
        source.close()


def test_csv_named_jsonl_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=NOT_JSON):
        open_input(str(write(tmp_path, "in.jsonl", CSV_64)))
    with pytest.raises(InputError, match=NOT_JSON):
        open_input(str(write(tmp_path, "in.jsonl.gz", gzip.compress(CSV_64.encode()))))
    with pytest.raises(InputError, match=r"in\.txt: line 3 is not JSON"):  # blank lines first
        open_input(str(write(tmp_path, "in.txt", "\n \n" + CSV_64)), "jsonl")
    # the hint is right: the same file read as CSV
    assert len(read(tmp_path / "in.jsonl", "csv")) == 64


def test_a_first_line_that_is_json_or_opens_an_object_stays_a_row(tmp_path: Path) -> None:
    for first in ("[1, 2]", '"payment_reference"', "12345", '{"payment_reference": "x",'):
        got = read(write(tmp_path, "in.jsonl", f'{first}\n{{"payment_reference": "ok"}}\n'))
        assert isinstance(got[0], Rejected) and got[0].line == 1, first
        assert isinstance(got[1], Row) and got[1].reference == "ok"


def test_json_named_csv_is_refused_with_a_hint(tmp_path: Path) -> None:
    jsonl = '{"payment_reference": "A", "merchant_number": "T1"}\n'
    with pytest.raises(InputError, match=LOOKS_JSON):
        open_input(str(write(tmp_path, "in.csv", jsonl)))
    with pytest.raises(InputError, match=LOOKS_JSON):
        open_input(str(write(tmp_path, "in.jsonl", "\ufeff" + jsonl)), "csv")
    with pytest.raises(InputError, match=LOOKS_JSON):
        open_input(str(write(tmp_path, "one.csv", '{"payment_reference": "A"}\n')))
    assert read(tmp_path / "in.csv", "jsonl") == [Row(1, "T1", "A", None)]
    # a CSV column that happens to be named like an object still reads
    got = read(write(tmp_path, "odd.csv", "{tag},payment_reference\nx,R1\n"))
    assert got == [Row(2, "M0", "R1", None, (("{tag}", "x"),))]


@pytest.mark.parametrize(
    ("name", "data", "hint"),
    [
        ("in.csv", b"PK\x03\x04\x14\x00\x06\x00payment_reference\n", "(a ZIP archive"),
        ("in.csv", "payment_reference\nA\n".encode("utf-16"), "(it is UTF-16 text"),
        ("in.jsonl", b"\n\x00\x00\x01garbage\n", ""),
        ("in.txt", bytes(range(0x80, 0x100)) + b"\x01\x02abc\n", ""),
        ("in.csv.gz", gzip.compress(b"\x89PNG\x00\x1a\x00\x00" * 10), ""),
        ("in.csv", b"\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4F", "(xz data: only gzip is read"),
    ],
    ids=["zip", "utf-16", "nul", "undecodable", "gzipped", "xz"],
)
def test_binary_input_is_refused(tmp_path: Path, name: str, data: bytes, hint: str) -> None:
    with pytest.raises(InputError) as caught:
        open_input(str(write(tmp_path, name, data)))
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / name} looks binary, not CSV or JSON Lines")
    assert hint in message and message.isprintable()


def test_latin1_text_is_not_binary(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no reference column.*R\\xe9f\\xe9rence"):
        open_input(str(write(tmp_path, "in.csv", "Référence;Montant\nA;1\n".encode("cp1252"))))
    got = read(write(tmp_path, "ok.csv", "payment_reference;Bénéficiaire\nA;é\n".encode("cp1252")))
    assert got[0].line == 2 and got[0].reference == "A"


# --- read-ahead on a pipe: no further than the line the checks need --------------------


@pytest.fixture
def pipe(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bytes], None]]:
    """Standard input as a pipe whose writer stays open: `send` writes to it."""
    read_fd, write_fd = os.pipe()
    stdin = open(read_fd, "rb")  # noqa: SIM115
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(stdin))

    def send(data: bytes) -> None:
        os.write(write_fd, data)

    try:
        yield send
    finally:
        os.close(write_fd)  # ends a read that waits, should a test have failed
        stdin.close()


def opened_in_background(fmt: str | None) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []

    def target() -> None:
        try:
            result.append(open_input("-", fmt))
        except InputError as exc:
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def test_a_pipe_is_read_up_to_the_first_json_line_only(pipe: Callable[[bytes], None]) -> None:
    pipe(b"\n  \n")
    thread, result = opened_in_background(None)
    thread.join(0.3)
    assert thread.is_alive()  # only blank lines yet: not "empty", the format is not known
    pipe(b'{"payment_reference": "P1"}\n')
    thread.join(5)
    assert not thread.is_alive()
    (source,) = result
    assert isinstance(source, Source) and source.format == "jsonl"
    assert source.head == b'\n  \n{"payment_reference": "P1"}\n'


def test_a_pipe_of_csv_read_as_jsonl_is_refused_at_once(pipe: Callable[[bytes], None]) -> None:
    pipe(b"payment_reference,merchant_number\nA,T1\n")  # and the producer goes on
    thread, result = opened_in_background("jsonl")
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(result[0], InputError) and "is this CSV?" in str(result[0])


def test_a_pipe_of_csv_with_a_blank_first_line_is_refused_at_once(
    pipe: Callable[[bytes], None],
) -> None:
    pipe(b"\n")
    thread, result = opened_in_background("csv")
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(result[0], InputError) and "line 1 is blank" in str(result[0])


def test_a_csv_file_of_blank_lines_is_empty_not_headless(tmp_path: Path) -> None:
    # the read-ahead stops after line 1 of a CSV; a regular file says it has no more
    with pytest.raises(InputError, match=r"blank\.csv is empty"):
        open_input(str(write(tmp_path, "blank.csv", "\n \r\n\t\n")))


def test_a_small_gzip_file_cut_short_says_so_not_that_its_header_is_odd(tmp_path: Path) -> None:
    packed = gzip.compress(b"payment_reference,merchant_number\nA,T1\n")
    for cut in (25, len(packed) - 4):  # inside the header's data; only the trailer lost
        with pytest.raises(InputError, match=r"cut\.csv\.gz: the gzip data ends early"):
            open_input(str(write(tmp_path, "cut.csv.gz", packed[:cut])))
    assert len(read(write(tmp_path, "whole.csv.gz", packed))) == 1


def test_a_json_lines_file_with_old_mac_line_ends_is_refused_at_its_first_line(
    tmp_path: Path,
) -> None:
    """CR-only: one long line, one invalid row, its references never counted (exit 1);
    now exit 2 with the command that converts it, as for a CSV. CRLF still reads."""
    rows = [b'{"payment_reference": "C%d", "merchant_number": "1"}' % i for i in range(3)]
    cr = tmp_path / "cr.jsonl"
    cr.write_bytes(b"\r".join(rows) + b"\r")
    with pytest.raises(InputError, match=r"carriage return .* \(tr "):
        open_input(str(cr), None, None)
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(b"\r\n".join(rows) + b"\r\n")
    source = open_input(str(crlf), None, None)
    try:
        assert [p.reference for p in source.rows()] == ["C0", "C1", "C2"]
    finally:
        source.close()


def test_a_carriage_return_between_json_tokens_is_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "ws.jsonl"
    path.write_bytes(b'{"payment_reference": "A",\r"merchant_number": "1"}\n')
    source = open_input(str(path), None, None)
    try:
        assert [p.reference for p in source.rows()] == ["A"]
    finally:
        source.close()
