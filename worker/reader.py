"""Reader: turns an input file into validated rows, one at a time, with line numbers.

It owns the input format (CSV or JSON Lines, optionally gzip, or stdin), the row
rules of CONTRACT.md "Input" and the physical line number of each row. It never
holds more than one row in memory: a ten-million-row file streams through.

`open_input` checks what can be checked before any request (the file opens, the
CSV header names a reference column) and raises `InputError` (exit 2) otherwise.
Duplicate detection is not here: it needs memory and a policy (`dedup`).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from worker.config import MAX_COMMENT, MAX_REFERENCE
from worker.models import Outcome, Rejected, Row

REFERENCE_KEYS = ("payment_reference", "reference", "payment")
MERCHANT_KEYS = ("merchant_number", "merchant")
COMMENT_KEYS = ("comment",)
FORMATS = ("csv", "jsonl")
GZIP_MAGIC = b"\x1f\x8b"

# Big enough for any legal row, small enough that an unbalanced quote cannot swallow
# the rest of a huge file into memory before csv gives up on it.
csv.field_size_limit(1 << 20)


class InputError(Exception):
    """The input cannot be used at all (exit 2, nothing sent)."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A row before validation: raw fields, or the reason it could not be parsed."""

    line: int
    reference: str | None
    merchant: str | None
    comment: str | None
    error: str | None = None


def detect_format(name: str, explicit: str | None, head: bytes) -> str:
    """Format by `--input-format`, else by name, else by the first non-blank byte."""
    if explicit:
        if explicit not in FORMATS:
            raise InputError(f"--input-format must be csv or jsonl, got {explicit!r}")
        return explicit
    lowered = name.lower()
    if lowered.endswith(".gz"):
        lowered = lowered[:-3]
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    stripped = head.lstrip(codecs.BOM_UTF8).lstrip()
    return "jsonl" if stripped.startswith(b"{") else "csv"


class Source:
    """An opened input: a binary stream positioned at the start, plus what we know of it."""

    def __init__(self, name: str, fmt: str, stream: IO[bytes], gzipped: bool) -> None:
        self.name = name
        self.format = fmt
        self.stream = stream
        self.gzipped = gzipped
        self.header: list[str] | None = None
        self.columns: tuple[int, int | None, int | None] | None = None
        self.csv_rows: Iterator[list[str]] | None = None
        self.csv_line: Callable[[], int] = lambda: 0

    @property
    def rereadable(self) -> bool:
        return self.name != "-"

    def close(self) -> None:
        if self.stream is not sys.stdin.buffer:
            self.stream.close()


def _open_binary(name: str) -> tuple[IO[bytes], bool]:
    """Open a path (or stdin); transparently gunzip when the bytes say gzip."""
    raw: IO[bytes]
    if name == "-":
        raw = sys.stdin.buffer
    else:
        try:
            raw = open(name, "rb")  # noqa: SIM115 - the Source owns and closes it
        except OSError as exc:
            raise InputError(f"cannot open input {name}: {exc.strerror or exc}") from None
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[type-var]
    try:
        magic = buffered.peek(2)[:2]
    except OSError as exc:
        raise InputError(f"cannot read input {name}: {exc.strerror or exc}") from None
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered, mode="rb"), True  # type: ignore[return-value]
    return buffered, False


def open_input(name: str, explicit_format: str | None = None) -> Source:
    """Open and pre-check the input; raises InputError for an unusable file."""
    if name != "-" and not name:
        raise InputError("no input file given")
    stream, gzipped = _open_binary(name)
    peekable = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[type-var]
    try:
        head = peekable.peek(4096)[:4096]
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot read input {name}: {exc}") from None
    fmt = detect_format(name, explicit_format, head)
    source = Source(name, fmt, peekable, gzipped)
    if fmt == "csv":
        _read_csv_header(source)
    return source


def _text(stream: IO[bytes]) -> io.TextIOWrapper:
    # surrogateescape keeps undecodable bytes visible to validation instead of aborting
    # the whole file: such a row becomes `invalid`, the rest still goes through.
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _norm(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def _read_csv_header(source: Source) -> None:
    text = _text(source.stream)
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, None)
    except (csv.Error, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot read the CSV header of {source.name}: {exc}") from None
    if header is None:
        raise InputError(f"{source.name} is empty: a CSV input needs a header row")
    names = [_norm(h) for h in header]
    ref_col = next((names.index(k) for k in REFERENCE_KEYS if k in names), None)
    if ref_col is None:
        raise InputError(
            f"{source.name}: no reference column; the header needs one of "
            f"{', '.join(REFERENCE_KEYS)} (found: {', '.join(h for h in header) or 'nothing'})"
        )
    merchant_col = next((names.index(k) for k in MERCHANT_KEYS if k in names), None)
    comment_col = next((names.index(k) for k in COMMENT_KEYS if k in names), None)
    source.header = header
    source.columns = (ref_col, merchant_col, comment_col)
    source.csv_rows = reader
    source.csv_line = lambda: reader.line_num


def parse(source: Source) -> Iterator[Parsed]:
    """Yield every row of the input, parsed but not validated, with its line number."""
    if source.format == "csv":
        yield from _parse_csv(source)
    else:
        yield from _parse_jsonl(source)


def _cell(fields: list[str], col: int | None) -> str | None:
    if col is None or col >= len(fields):
        return None
    return fields[col]


def _parse_csv(source: Source) -> Iterator[Parsed]:
    assert source.columns is not None and source.csv_rows is not None
    reader, line_num = source.csv_rows, source.csv_line
    ref_col, merchant_col, comment_col = source.columns
    next_line = line_num() + 1
    while True:
        start = next_line
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            next_line = line_num() + 1
            yield Parsed(start, None, None, None, error=f"cannot parse CSV: {exc}")
            continue
        next_line = line_num() + 1
        if not fields or all(not f.strip() for f in fields):
            continue  # blank line (or only separators): not a row
        yield Parsed(
            start, _cell(fields, ref_col), _cell(fields, merchant_col), _cell(fields, comment_col)
        )


def _scalar(obj: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The first present key's value as text; numbers allowed, other types are an error."""
    for key in keys:
        if key in obj:
            value = obj[key]
            if value is None:
                return None, None
            if isinstance(value, bool):
                return None, f"{key} must be a string, got a boolean"
            if isinstance(value, str):
                return value, None
            if isinstance(value, int):
                return str(value), None
            return None, f"{key} must be a string, got {type(value).__name__}"
    return None, None


def _parse_jsonl(source: Source) -> Iterator[Parsed]:
    for number, raw in enumerate(source.stream, start=1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield Parsed(number, None, None, None, error=f"cannot parse JSON: {exc}")
            continue
        if not isinstance(obj, dict):
            yield Parsed(number, None, None, None, error="line is not a JSON object")
            continue
        obj = {_norm(k): v for k, v in obj.items()}
        reference, ref_err = _scalar(obj, REFERENCE_KEYS)
        merchant, merchant_err = _scalar(obj, MERCHANT_KEYS)
        comment, comment_err = _scalar(obj, COMMENT_KEYS)
        error = ref_err or merchant_err or comment_err
        yield Parsed(number, reference, merchant, comment, error=error)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable(text: str | None) -> str:
    """Text safe to write anywhere: undecodable bytes shown as U+FFFD."""
    if text is None:
        return ""
    return text.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(text) else text


def validate(parsed: Parsed, default_merchant: str | None) -> Row | Rejected:
    """Apply CONTRACT.md's row rules; `Rejected` rows are reported and never sent."""
    reference = (parsed.reference or "").strip()
    merchant = (parsed.merchant or "").strip() or (default_merchant or "").strip()
    comment = parsed.comment if parsed.comment else None

    def reject(reason: str) -> Rejected:
        return Rejected(
            parsed.line, printable(merchant), printable(reference), Outcome.INVALID, reason
        )

    if parsed.error:
        return reject(parsed.error)
    if _has_surrogates(reference) or _has_surrogates(merchant) or _has_surrogates(comment or ""):
        return reject("row is not valid UTF-8")
    if not reference:
        return reject("empty payment reference")
    if len(reference) > MAX_REFERENCE:
        return reject(f"payment reference is {len(reference)} characters; at most 2000")
    if comment is not None and len(comment) > MAX_COMMENT:
        return reject(f"comment is {len(comment)} characters; at most 256")
    if not merchant:
        return reject("no merchant number: add a merchant_number column or use --merchant")
    return Row(parsed.line, merchant, reference, comment)
