"""Reader: turns input bytes into validated rows, one physical line at a time.

It owns the input formats (CSV or JSON Lines, optionally gzip; a file, standard input,
a FIFO or a process substitution), the row rules of the README's "Input" section and
the physical line number of each row. It is a push parser: `RowParser.feed(chunk)`
takes whatever bytes arrived and returns the rows they complete, so a slow pipe's
rows are processed as they arrive, and memory never holds more than one line.

Every physical line is accounted for: it is the header, part of exactly one row, or
blank. A CSV quote may span lines only in the `comment` column, and only for as many
characters as a comment may have; any other quote that does not close on its own
line is a stray: that line becomes an `invalid` row and reading resumes at the next
physical line, so one bad quote can never swallow the rest of a file.

`open_input` checks what can be checked before any request (the file opens, the CSV
header names a reference column) and raises `InputError` (exit 2) otherwise.
Duplicate detection is not here: it needs memory and a policy (`dedup`).
"""

from __future__ import annotations

import codecs
import csv
import os
import stat
import sys
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from worker.model import Outcome, Rejected, Row
from worker.settings import MAX_COMMENT, MAX_MERCHANT, MAX_REFERENCE

REFERENCE_KEYS = ("payment_reference", "reference", "payment")
MERCHANT_KEYS = ("merchant_number", "merchant")
COMMENT_KEYS = ("comment",)
FORMATS = ("csv", "jsonl")
GZIP_MAGIC = b"\x1f\x8b"
#: Read size: large enough that per-chunk overhead vanishes, small enough for latency.
CHUNK = 1 << 16
#: A physical line longer than this is an `invalid` row, skipped without being held:
#: no legal row comes near it (a reference is at most 2,000 characters).
MAX_LINE = 1 << 20
#: How much of an invalid row's reference or merchant the report echoes.
ECHO_LIMIT = 200
#: Separators tried, in order, when the header does not name a reference column.
DELIMITERS = (",", ";", "\t", "|")
_CONTROL = frozenset(chr(c) for c in (*range(0x20), 0x7F))


class InputError(Exception):
    """The input cannot be used at all (exit 2, nothing sent), or broke mid-run."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A row before validation: raw fields, or the reason it could not be parsed."""

    line: int
    reference: str | None
    merchant: str | None
    comment: str | None
    error: str | None = None


# -- bytes to physical lines ---------------------------------------------------------


class Gunzip:
    """Incremental gzip: concatenated members too, as `gzip -c a b` writes them."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(wbits=31)
        self._member_started = False

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            self._member_started = True
            try:
                out.append(self._z.decompress(data))
            except zlib.error as exc:
                raise InputError(f"corrupt gzip data: {exc}") from None
            if not self._z.eof:
                break
            data = self._z.unused_data
            self._z = zlib.decompressobj(wbits=31)
            self._member_started = False
        return b"".join(out)

    def finish(self) -> None:
        if self._member_started:
            raise InputError("the gzip data ends early (truncated file?)")


class TooLong(int):
    """Stands for a physical line longer than `MAX_LINE` bytes (its length)."""


class Lines:
    """Bytes in, complete physical lines out (split on LF only, terminator dropped).

    `count` is every line seen, counted here independently of any parsing, so the
    run can prove at the end that every physical line was accounted for.
    """

    def __init__(self) -> None:
        self._tail = b""
        self._skipping = 0  # bytes of an overlong line thrown away so far
        self.count = 0

    def feed(self, data: bytes) -> list[bytes | TooLong]:
        if not data:
            return []
        parts = data.split(b"\n")
        out: list[bytes | TooLong] = []
        last = parts.pop()
        for i, part in enumerate(parts):
            if i == 0:
                out.append(self._join(part))
            else:
                out.append(part if len(part) <= MAX_LINE else TooLong(len(part)))
        self.count += len(parts)
        if parts:
            self._tail, self._skipping = b"", 0
        self._hold(last)
        return out

    def finish(self) -> list[bytes | TooLong]:
        if not self._tail and not self._skipping:
            return []
        self.count += 1
        line = self._join(b"")
        self._tail, self._skipping = b"", 0
        return [line]

    def _join(self, head: bytes) -> bytes | TooLong:
        if self._skipping:
            return TooLong(self._skipping + len(head))
        line = self._tail + head
        return line if len(line) <= MAX_LINE else TooLong(len(line))

    def _hold(self, part: bytes) -> None:
        if self._skipping:
            self._skipping += len(part)
        elif len(self._tail) + len(part) > MAX_LINE:
            self._skipping = len(self._tail) + len(part)
            self._tail = b""
        else:
            self._tail += part


# -- physical lines to rows ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Columns:
    """Where a CSV's fields are: positions of the known columns, the separator."""

    names: tuple[str, ...]
    reference: int
    merchant: int | None
    comment: int | None
    delimiter: str = ","


def _norm(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def _columns_for(header: list[str], delimiter: str) -> Columns | None:
    names = [_norm(h) for h in header]
    ref = next((names.index(k) for k in REFERENCE_KEYS if k in names), None)
    if ref is None:
        return None
    merchant = next((names.index(k) for k in MERCHANT_KEYS if k in names), None)
    comment = next((names.index(k) for k in COMMENT_KEYS if k in names), None)
    return Columns(tuple(h.strip() for h in header), ref, merchant, comment, delimiter)


def parse_header(line: str, name: str) -> Columns:
    """The CSV header: find the reference column, and the separator when it is not `,`."""
    line = line.removeprefix("\ufeff").rstrip("\r")
    if not line.strip():
        raise InputError(f"{name}: line 1 is blank: a CSV input needs a header row")
    for delimiter in DELIMITERS:
        try:
            header = next(csv.reader([line], delimiter=delimiter, strict=True))
        except csv.Error as exc:
            raise InputError(f"{name}: cannot read the CSV header (line 1): {exc}") from None
        columns = _columns_for(header, delimiter)
        if columns is not None:
            return columns
    found = next(csv.reader([line]))
    raise InputError(
        f"{name}: no reference column; the header (line 1) needs one of "
        f"{', '.join(REFERENCE_KEYS)} (found: {printable(', '.join(found))[:200] or 'nothing'})"
    )


class RowParser:
    """Physical lines to `Parsed` rows, for one format; the header is already known."""

    def __init__(self, fmt: str, columns: Columns | None) -> None:
        self._csv = fmt == "csv"
        self._columns = columns
        self._next = 1  # number of the next physical line
        self._pending: list[str] = []  # lines of a CSV record whose comment spans lines
        self._pending_start = 0
        self._pending_chars = 0
        self.lines = 0  # physical lines accounted for (the CSV header included)
        self.blank = 0

    def rows(self, lines: list[bytes | TooLong]) -> list[Parsed]:
        out: list[Parsed] = []
        todo: deque[tuple[int, bytes | str | TooLong]] = deque()
        for raw in lines:
            if self._next == 1 and self._csv:
                self.lines += 1  # the header, checked by `parse_header` already
            else:
                todo.append((self._next, raw))
            self._next += 1
        self._drain(todo, out)
        return out

    def finish(self) -> list[Parsed]:
        out: list[Parsed] = []
        if self._pending:
            todo: deque[tuple[int, bytes | str | TooLong]] = deque()
            self._stray(todo, out)
            self._drain(todo, out)
        return out

    def _drain(self, todo: deque[tuple[int, bytes | str | TooLong]], out: list[Parsed]) -> None:
        while todo:
            number, raw = todo.popleft()
            if isinstance(raw, TooLong):
                if self._pending:  # no comment is that long: the open quote was a stray
                    todo.appendleft((number, raw))
                    self._stray(todo, out)
                    continue
                self.lines += 1
                out.append(_error(number, f"line is {int(raw):,} bytes; at most {MAX_LINE:,}"))
            elif self._csv:
                self._csv_line(number, raw, todo, out)
            else:
                self._jsonl_line(number, raw, out)

    # JSON Lines ------------------------------------------------------------------

    def _jsonl_line(self, number: int, raw: bytes | str, out: list[Parsed]) -> None:
        self.lines += 1
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
        if number == 1 and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        if not data.strip():
            self.blank += 1
            return
        out.append(parse_json_object(number, data))

    # CSV -------------------------------------------------------------------------

    def _csv_line(
        self,
        number: int,
        raw: bytes | str,
        todo: deque[tuple[int, bytes | str | TooLong]],
        out: list[Parsed],
    ) -> None:
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "surrogateescape")
        if self._pending:
            self._pending.append(text)
            self._pending_chars += len(text) + 1
            record = "\n".join(self._pending)
            fields, error, open_col = self._split(record)
            if open_col is not None:
                if self._pending_chars > MAX_COMMENT:
                    self._stray(todo, out)  # not a comment: a stray quote
                return
            start, span = self._pending_start, len(self._pending)
            self._pending = []
            self.lines += span
            self._record(start, fields, error, out)
            return
        fields, error, open_col = self._split(text)
        if open_col is not None:
            columns = self._columns
            if columns is not None and open_col == columns.comment:
                self._pending, self._pending_start, self._pending_chars = [text], number, 0
                return
            self.lines += 1
            what = self._column_name(open_col)
            out.append(
                _error(
                    number,
                    f"unbalanced quote in {what}: it does not close on its line "
                    f"(the line: {_excerpt(text)})",
                )
            )
            return
        self.lines += 1
        self._record(number, fields, error, out)

    def _stray(self, todo: deque[tuple[int, bytes | str | TooLong]], out: list[Parsed]) -> None:
        """The pending record's first line had a stray quote: report it, reread the rest."""
        start, rest = self._pending_start, self._pending[1:]
        self._pending = []
        self.lines += 1
        out.append(_error(start, "unbalanced quote in comment: it never closes"))
        for offset, text in reversed(list(enumerate(rest, start=start + 1))):
            todo.appendleft((offset, text))

    def _split(self, text: str) -> tuple[list[str], str | None, int | None]:
        """(fields, parse error, index of a quoted field still open at the end)."""
        text = text.removesuffix("\r")
        delimiter = self._columns.delimiter if self._columns else ","
        if '"' not in text:
            return text.split(delimiter), None, None
        try:
            fields = next(csv.reader([text], delimiter=delimiter, strict=True))
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc):
                return [], f"cannot parse CSV: {exc}", None
        else:
            return fields, self._bare_quote(text, fields), None
        fields = next(csv.reader([text], delimiter=delimiter))
        return fields, None, len(fields) - 1

    def _bare_quote(self, text: str, fields: list[str]) -> str | None:
        """A `"` inside an unquoted reference or merchant cell: the other half of a
        quote that opened on an earlier line, or a typo; never a value to send.

        Inside a quoted cell a quote is written doubled, so a quote in the value with
        no `""` anywhere on the line was bare.
        """
        columns = self._columns
        if columns is None or '""' in text:
            return None
        for col in (columns.reference, columns.merchant):
            if col is not None and col < len(fields) and '"' in fields[col]:
                return f"stray quote in {self._column_name(col)}"
        return None

    def _column_name(self, index: int) -> str:
        columns = self._columns
        if columns is not None and index < len(columns.names):
            return f"column {columns.names[index]!r}"
        return f"column {index + 1}"

    def _record(self, number: int, fields: list[str], error: str | None, out: list[Parsed]) -> None:
        if error is not None:
            out.append(_error(number, error))
        elif all(not f.strip() for f in fields):
            self.blank += 1  # a line of only separators, as spreadsheets export
        else:
            columns = self._columns
            assert columns is not None
            out.append(
                Parsed(
                    number,
                    _cell(fields, columns.reference),
                    _cell(fields, columns.merchant),
                    _cell(fields, columns.comment),
                )
            )


def _excerpt(text: str, limit: int = 60) -> str:
    """A short, printable, quoted look at a bad line, for the operator to find it."""
    shown = printable(text.removesuffix("\r"))
    return repr(shown[:limit] + ("..." if len(shown) > limit else ""))


def _error(number: int, reason: str) -> Parsed:
    return Parsed(number, None, None, None, error=reason)


def _cell(fields: list[str], col: int | None) -> str | None:
    if col is None or col >= len(fields):
        return None
    return fields[col]


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


def parse_json_object(number: int, data: bytes) -> Parsed:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # orjson counts lines and chars inside the one line it saw: only the column helps.
        return _error(number, f"cannot parse JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(obj, dict):
        return _error(number, "line is not a JSON object")
    obj = {_norm(k): v for k, v in obj.items()}
    reference, ref_err = _scalar(obj, REFERENCE_KEYS)
    merchant, merchant_err = _scalar(obj, MERCHANT_KEYS)
    comment, comment_err = _scalar(obj, COMMENT_KEYS)
    return Parsed(
        number, reference, merchant, comment, error=ref_err or merchant_err or comment_err
    )


# -- opening an input ----------------------------------------------------------------


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
    """An opened input: where its bytes come from and how to turn them into rows.

    A regular file can be read twice (the duplicate pre-pass, then the run); standard
    input, a FIFO, a process substitution or a device are read once (`rereadable`
    False), as they arrive. `head` holds the bytes read before the run to check the
    header; `feed`/`finish` (or `rows`, for a file) turn the rest into rows.
    """

    def __init__(self, name: str, fmt: str, stream: IO[bytes], rereadable: bool) -> None:
        self.name = name
        self.format = fmt
        self.stream = stream
        self.rereadable = rereadable
        self.columns: Columns | None = None
        self.head = b""  # raw bytes read ahead, not yet parsed
        self._gunzip: Gunzip | None = None
        self._lines = Lines()
        self._parser: RowParser | None = None

    @property
    def fd(self) -> int:
        return self.stream.fileno()

    @property
    def lines_seen(self) -> int:
        """Physical lines read so far, counted from the bytes alone."""
        return self._lines.count

    @property
    def lines_accounted(self) -> int:
        """Physical lines that became the header, a row, part of a row, or a blank line."""
        return self._parser.lines if self._parser else self._lines.count

    @property
    def blank_rows(self) -> int:
        return self._parser.blank if self._parser else 0

    def start(self, gunzip: Gunzip | None) -> None:
        self._lines = Lines()
        self._gunzip = gunzip
        self._parser = RowParser(self.format, self.columns)

    def feed(self, data: bytes) -> list[Parsed]:
        """Rows completed by `data` (raw bytes as read, gzip or not)."""
        assert self._parser is not None
        if self._gunzip is not None:
            data = self._gunzip.feed(data)
        return self._parser.rows(self._lines.feed(data))

    def finish(self) -> list[Parsed]:
        """Rows left at the end of the input (a last line without a newline)."""
        assert self._parser is not None
        if self._gunzip is not None:
            self._gunzip.finish()
        return self._parser.rows(self._lines.finish()) + self._parser.finish()

    def rows(self) -> Iterator[Parsed]:
        """Every row of a file that does not block (a regular file), read in chunks."""
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Parsed]]:
        """The rows of each chunk read, in order, from a file that does not block."""
        head, self.head = self.head, b""
        yield self.feed(head)
        while data := os.read(self.fd, CHUNK):
            yield self.feed(data)
        yield self.finish()

    def estimated_lines(self) -> int:
        """Lines a regular file holds, judged from its size and its first lines.

        Sizes the duplicate filter without a counting pass over the file. A low guess
        only raises the filter's false-positive rate (more exact candidates); it never
        makes an answer wrong.
        """
        size = os.fstat(self.fd).st_size
        sample = self.head
        if sample[:2] == GZIP_MAGIC:
            try:
                sample = Gunzip().feed(sample)
            except InputError:
                sample = b""
            trailer = os.pread(self.fd, 4, max(size - 4, 0))
            # gzip stores the plain size modulo 2**32; text compresses about 4x at least
            size = max(int.from_bytes(trailer, "little"), size * 4)
        per_line = len(sample) / max(sample.count(b"\n"), 1) if sample else 32.0
        return int(size / max(per_line, 1.0) * 1.2) + 1

    def close(self) -> None:
        if self.stream is not sys.stdin.buffer:
            self.stream.close()


def _is_rereadable(name: str, stream: IO[bytes]) -> bool:
    if name == "-":
        return False
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def open_input(name: str, explicit_format: str | None = None) -> Source:
    """Open the input once and check it; raises InputError for an unusable file.

    Reads until the first line (the CSV header) is complete and no further, so that on
    a pipe the check does not wait for more than the producer has written. What it
    read stays in `Source.head` and is parsed first.
    """
    if not name:
        raise InputError("no input file given")
    try:
        stream: IO[bytes] = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot open input {name}: {exc.strerror or exc}") from None
    try:
        return _check(name, explicit_format, stream)
    except BaseException:
        if stream is not sys.stdin.buffer:
            stream.close()
        raise


def _check(name: str, explicit_format: str | None, stream: IO[bytes]) -> Source:
    raw = b""
    try:
        # os.read returns what a pipe holds now instead of waiting for a full buffer.
        while True:
            data = os.read(stream.fileno(), CHUNK)
            raw += data
            if not data or _first_line_done(raw):
                break
    except OSError as exc:
        raise InputError(f"cannot read input {name}: {exc.strerror or exc}") from None
    gzipped = raw[:2] == GZIP_MAGIC
    try:
        plain = Gunzip().feed(raw) if gzipped else raw
    except InputError as exc:
        raise InputError(f"cannot read input {name}: {exc}") from None
    if not plain.strip():
        raise InputError(f"{name} is empty")
    fmt = detect_format(name, explicit_format, plain[:4096])
    source = Source(name, fmt, stream, _is_rereadable(name, stream))
    if fmt == "csv":
        header = plain.split(b"\n", 1)[0]
        if len(header) > MAX_LINE:
            raise InputError(f"{name}: the header (line 1) is over {MAX_LINE:,} bytes long")
        source.columns = parse_header(header.decode("utf-8", "surrogateescape"), name)
    source.head = raw
    source.start(Gunzip() if gzipped else None)
    return source


def _first_line_done(raw: bytes) -> bool:
    """Enough bytes to check the input: its first line is complete (or impossibly long)."""
    try:
        plain = Gunzip().feed(raw) if raw[:2] == GZIP_MAGIC else raw
    except InputError:
        return True  # corrupt: reported by the caller's own decompression
    return b"\n" in plain or len(plain) > MAX_LINE


# -- validation ----------------------------------------------------------------------


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


def _echo(text: str) -> str:
    """What an invalid row's report echoes of a cell: printable, and at most ECHO_LIMIT."""
    return printable(text[:ECHO_LIMIT])


def _control(text: str) -> bool:
    return not _CONTROL.isdisjoint(text)


def validate(parsed: Parsed, default_merchant: str | None) -> Row | Rejected:
    """Apply the README's row rules; `Rejected` rows are reported and never sent."""
    reference = (parsed.reference or "").strip()
    merchant = (parsed.merchant or "").strip() or (default_merchant or "").strip()
    comment = parsed.comment if parsed.comment else None

    def reject(reason: str) -> Rejected:
        return Rejected(parsed.line, _echo(merchant), _echo(reference), Outcome.INVALID, reason)

    if parsed.error:
        return reject(parsed.error)
    if _has_surrogates(reference) or _has_surrogates(merchant) or _has_surrogates(comment or ""):
        return reject("row is not valid UTF-8")
    if not reference:
        return reject("empty payment reference")
    if len(reference) > MAX_REFERENCE:
        return reject(
            f"payment reference is {len(reference)} characters; at most {MAX_REFERENCE}"
            + (f" (the report shows the first {ECHO_LIMIT})" if len(reference) > ECHO_LIMIT else "")
        )
    if len(merchant) > MAX_MERCHANT:
        return reject(f"merchant number is {len(merchant)} characters; at most {MAX_MERCHANT}")
    if _control(reference) or _control(merchant):
        return reject(
            "payment reference or merchant number holds a line break or control character"
        )
    if comment is not None and len(comment) > MAX_COMMENT:
        return reject(f"comment is {len(comment)} characters; at most {MAX_COMMENT}")
    if not merchant:
        return reject("no merchant number: add a merchant_number column or use --merchant")
    return Row(parsed.line, merchant, reference, comment)
