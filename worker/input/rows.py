"""Rows: physical lines to `Parsed` rows, for CSV (with its header) or JSON Lines.

Every physical line is accounted for: it is the header, part of exactly one row, or
blank. By default one physical line is one row: a quote still open at the end of its
line makes that line an `invalid` row and reading resumes at the next line, whatever
follows, so one stray quote can never take the lines after it (a reference never
spans lines, and real void files never need a cell that does). With `multiline`
(`--multiline-cells`, for files whose quoted comments really hold line breaks) a quote
may span lines in the `comment` column only, and only for as many characters as a
comment may have; any other open quote is a stray, as by default.
"""

from __future__ import annotations

import codecs
import csv
from collections import deque

from worker.input.header import Columns
from worker.input.jsonl import parse_json_object
from worker.input.lines import MAX_LINE, TooLong
from worker.input.parsed import Parsed, error_row, excerpt
from worker.input.repeated import HEADER_START, RepeatedHeader, may_name_a_column
from worker.settings import MAX_COMMENT

#: Why a CSV line with a carriage return of its own is `invalid`: only LF ends a line,
#: so a file saved with old Mac line ends (CR alone) would hide rows inside a cell.
LONE_CR = (
    "a carriage return (\\r) inside the line, not before its line feed: lines that end "
    "with CR alone (old Mac line ends?) are not read as lines; convert the file (tr '\\r' '\\n')"
)


def _lone_cr(text: str) -> bool:
    """A carriage return that is not the CR of a CRLF line break."""
    return "\r" in text and "\r" in text.replace("\r\n", "")


def _quoted_cells(text: str, delimiter: str) -> list[bool]:
    """For each cell of a CSV line the csv module parsed strictly: did it open with a
    quote? A quoted cell runs to its closing quote (`""` inside it is one quote); in an
    unquoted cell a quote is text, and the next delimiter ends it."""
    quoted: list[bool] = []
    at, end = 0, len(text)
    while True:
        opens = text[at : at + 1] == '"'
        quoted.append(opens)
        if opens:
            at += 1
            while at < end:
                if text[at] == '"':
                    if text[at + 1 : at + 2] != '"':
                        at += 1
                        break
                    at += 1
                at += 1
        nxt = text.find(delimiter, at)
        if nxt < 0:
            return quoted
        at = nxt + 1


class RowParser:
    """Physical lines to `Parsed` rows, for one format; the header is already known."""

    def __init__(self, fmt: str, columns: Columns | None, multiline: bool = False) -> None:
        self._csv = fmt == "csv"
        #: the column whose quoted cell may span lines (`--multiline-cells`), if any
        self._spans = columns.comment if columns is not None and multiline else None
        self._columns = columns
        self._others = columns.others if columns else ()
        self._delimiter = columns.delimiter if columns else ","
        self._cells = (
            (columns.reference, columns.merchant, columns.comment) if columns else (0, None, None)
        )
        self._header = columns.header_line if columns else 1  # Excel's `sep=;` line first
        self._repeated = RepeatedHeader(columns) if columns else None
        self._next = 1  # number of the next physical line
        self._pending: list[str] = []  # lines of a CSV record whose comment spans lines
        self._pending_start = 0
        self._pending_chars = 0
        self.lines = 0  # physical lines accounted for (the CSV header included)
        self.blank = 0

    @property
    def pending(self) -> bool:
        """A record whose comment spans lines is open (`--multiline-cells`)."""
        return bool(self._pending)

    def resume_at(self, line: int, accounted: int, blank: int) -> None:
        """Go on at physical line `line`, the lines before it counted as a first read
        of the same bytes counted them (`Source.resume_at`)."""
        self._next, self.lines, self.blank = line, accounted, blank

    def rows(self, lines: list[bytes | TooLong]) -> list[Parsed]:
        out: list[Parsed] = []
        todo: deque[tuple[int, bytes | str | TooLong]] = deque()
        plain = self._csv and self._columns is not None
        for raw in lines:
            number = self._next
            self._next += 1
            if number <= self._header and self._csv:
                self.lines += 1  # the header, checked by `parse_header` already
            elif todo or self._pending or not plain or type(raw) is not bytes or b'"' in raw:
                todo.append((number, raw))
            else:
                # The common line, no quote in it: split it here, without the machinery
                # for quotes that span lines (measured: most of the parser's time).
                self.lines += 1
                text = raw.decode("utf-8", "surrogateescape").removesuffix("\r")
                if "\r" in text:
                    self._record(number, [], LONE_CR, out)
                else:
                    self._record(number, text.split(self._delimiter), None, out)
            if todo and not self._pending:
                self._drain(todo, out)
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
                out.append(error_row(number, f"line is {int(raw):,} bytes; at most {MAX_LINE:,}"))
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
            self._pending_chars += len(text) + 1  # as the comment counts: a CRLF is two
            record = "\n".join(self._pending)
            fields, error, open_col = self._split(record)
            if open_col is not None:
                if self._pending_chars > MAX_COMMENT:
                    self._stray(todo, out)  # not a comment: a stray quote
                return
            spans = self._spans
            closed_late = (
                len(fields[spans]) > MAX_COMMENT  # as `validate` counts it
                if error is None and spans is not None and spans < len(fields)
                else self._pending_chars > MAX_COMMENT  # closed, then not CSV: judged by lines
            )
            if closed_late:  # a quote that closes past a comment's length was no comment's
                self._stray(todo, out, f"it does not close within {MAX_COMMENT} characters")
                return
            start, span = self._pending_start, len(self._pending)
            self._pending = []
            self.lines += span
            self._record(start, fields, error, out)
            return
        fields, error, open_col = self._split(text)
        if open_col is not None:
            if open_col == self._spans:  # the comment's characters count from its quote
                self._pending, self._pending_start = [text], number
                self._pending_chars = len(fields[open_col])
                return
            self.lines += 1
            what, line = self._column_name(open_col), text.removesuffix("\r")
            why = (
                f"unbalanced quote in {what}: a quoted field is not closed on this line "
                f"(the line: {excerpt(line)})"
            )
            # the cells before the open quote are whole: the report names the payment
            ref, merchant, _ = self._cells
            out.append(
                Parsed(
                    number,
                    fields[ref] if ref < open_col else None,
                    fields[merchant] if merchant is not None and merchant < open_col else None,
                    None,
                    error=why,
                )
            )
            return
        self.lines += 1
        self._record(number, fields, error, out)

    def _stray(
        self,
        todo: deque[tuple[int, bytes | str | TooLong]],
        out: list[Parsed],
        why: str = "it never closes",
    ) -> None:
        """The pending record's first line had a stray quote: report it, reread the rest."""
        start, rest = self._pending_start, self._pending[1:]
        self._pending = []
        self.lines += 1
        out.append(error_row(start, f"unbalanced quote in comment: {why}"))
        for offset, text in reversed(list(enumerate(rest, start=start + 1))):
            todo.appendleft((offset, text))

    def _split(self, text: str) -> tuple[list[str], str | None, int | None]:
        """(fields, parse error, index of a quoted field still open at the end)."""
        text = text.removesuffix("\r")
        delimiter = self._columns.delimiter if self._columns else ","
        if '"' not in text:
            return ([], LONE_CR, None) if "\r" in text else (text.split(delimiter), None, None)
        # A quote still open is judged when it closes (a comment may span lines, its CRLF
        # breaks with it); a complete record with a CR of its own is invalid, all of it.
        try:
            fields = next(csv.reader([text], delimiter=delimiter, strict=True))
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc):
                return [], LONE_CR if _lone_cr(text) else f"cannot parse CSV: {exc}", None
        else:
            if _lone_cr(text):
                return [], LONE_CR, None
            return fields, self._bare_quote(text, fields), None
        fields = next(csv.reader([text], delimiter=delimiter))
        return fields, None, len(fields) - 1

    def _bare_quote(self, text: str, fields: list[str]) -> str | None:
        """A `"` inside an unquoted reference or merchant cell: the other half of a
        quote that opened on an earlier line, or a typo; never a value to send. (The
        csv module takes such a quote as text; a quoted cell writes its quotes doubled.)
        """
        columns = self._columns
        if columns is None:
            return None
        wanted = [
            col
            for col in (columns.reference, columns.merchant)
            if col is not None and col < len(fields) and '"' in fields[col]
        ]
        if wanted:
            quoted = _quoted_cells(text, columns.delimiter)
            for col in wanted:
                if col >= len(quoted) or not quoted[col]:
                    return f"stray quote in {self._column_name(col)}"
        return None

    def _column_name(self, index: int) -> str:
        columns = self._columns
        if columns is not None and index < len(columns.names):
            return f"column {excerpt(columns.names[index])}"
        return f"column {index + 1}"

    def _record(self, number: int, fields: list[str], error: str | None, out: list[Parsed]) -> None:
        ref, merchant, comment = self._cells
        n = len(fields)
        first = fields[ref] if ref < n else ""
        other = fields[merchant] if merchant is not None and merchant < n else ""
        if (
            error is None
            and self._repeated is not None
            and (
                (first[:1] in HEADER_START and may_name_a_column(first))
                or (other[:1] in HEADER_START and may_name_a_column(other))
            )
        ):
            error = self._repeated.check(number, fields)
        elif first == "sep=" and error is None and not "".join(fields[1:]):
            error = "an Excel sep= line inside the file (files joined together?): not a payment"
        if error is not None:
            out.append(error_row(number, error))
        elif (not first or first.isspace()) and not "".join(fields).strip():
            self.blank += 1  # a line of only separators, as spreadsheets export
        else:
            others = self._others
            names = self._columns.names if self._columns and others else ()
            out.append(
                Parsed(
                    number,
                    first if ref < n else None,
                    fields[merchant] if merchant is not None and merchant < n else None,
                    fields[comment] if comment is not None and comment < n else None,
                    extra=tuple([(names[i], fields[i]) for i in others if i < n]) if others else (),
                )
            )
