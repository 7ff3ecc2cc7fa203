"""Records: reading a report back, strictly, for resume and for merge-reports alike.

Only a torn *last* row (no final newline: a power cut mid-write) is forgiven, whatever
it holds: when a quoted cell of it held a line break, the torn row starts on an
earlier line than the torn last line, and all of it is the torn tail. Any other
unreadable row is a `ReportError` (exit 2) naming the file and the line. A report
edited by hand must never make a rerun forget what it already did.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from worker.errors import ReportError
from worker.model import REPORT_COLUMNS, Outcome

#: Far above any field the writer writes (references, merchants and echoes are capped),
#: so that no row it wrote can ever be unreadable on resume.
csv.field_size_limit(1 << 26)


def is_jsonl(path: Path) -> bool:
    return path.name.lower().endswith((".jsonl", ".ndjson"))


def whole_lines(path: Path, f: IO[bytes], torn: list[int]) -> Iterator[bytes]:
    """The file's lines that end in a newline; the length of a torn last line goes to
    `torn` (a torn only line must start like a report: `check_torn_start`)."""
    first = True
    for raw in f:
        if not raw.endswith(b"\n"):
            if first:
                check_torn_start(path, raw)
            torn.append(len(raw))
            return
        first = False
        yield raw


def check_torn_start(path: Path, raw: bytes) -> None:
    """A report whose first line has no newline: its header (or a JSON Lines report's
    first row) cut short by a crash, and then forgiven as a torn tail, only if it is the
    start of what the writer writes there. Any other file (`hello`, a binary) is not a
    report, and must be neither read as an empty one nor cut."""
    start = b'{"line":' if is_jsonl(path) else ",".join(REPORT_COLUMNS).encode()
    text = raw.removeprefix(b"\xef\xbb\xbf")
    if not (start.startswith(text) or text.startswith(start)):
        raise ReportError(
            f"{path} exists but is not a cancel-worker report: its only line, with no "
            "newline, is not the start of one (it was left as it is)"
        )


def _records_csv(path: Path, f: IO[bytes], torn: list[int]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line the record starts on, the record) for each row of a CSV report."""
    line_no = 0
    record: list[bytes] = []  # the physical lines of the record being read
    cut: list[bytes] = []  # the torn last line, if any

    def lines() -> Iterator[str]:
        nonlocal line_no
        for raw in f:
            if not raw.endswith(b"\n"):
                if not line_no:
                    check_torn_start(path, raw)
                torn.append(len(raw))
                cut.append(raw)
                return
            line_no += 1
            record.append(raw)
            yield raw.decode("utf-8", "surrogateescape")

    reader = csv.reader(lines(), strict=True)
    header = _header(path, reader)
    if header is None:
        return
    while True:
        start = line_no + 1
        record.clear()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc):
                raise _unreadable(path, start, str(exc)) from None
            if cut and _torn_cell(len(header), record[1:] + cut):
                # A torn last row whose quoted cell held a line break: the whole row
                # is the torn tail, from its first line to the end of the file.
                torn.append(sum(map(len, record)))
                return
            raise _unreadable(path, start, "a quoted field never closes") from None
        if len(fields) != len(header):
            raise _unreadable(path, start, f"{len(fields)} fields, the header has {len(header)}")
        yield start, dict(zip(header, fields, strict=True))


def _header(path: Path, reader: Iterator[list[str]]) -> list[str] | None:
    """A CSV report's header, checked to be cancel-worker's (None: an empty file)."""
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise _unreadable(path, 1, f"bad header: {exc}") from None
    if header is None:
        return None
    header = [h.lstrip("\ufeff") for h in header]
    if tuple(header[: len(REPORT_COLUMNS)]) != REPORT_COLUMNS:
        raise ReportError(
            f"{path} exists but is not a cancel-worker report "
            f"(header: {','.join(header)[:120]}); choose another --report or move it away"
        )
    return header


def _torn_cell(width: int, rest: list[bytes]) -> bool:
    """Whether the lines after an open quote's first line, up to the end of a report
    without a final newline, are the rest of one quoted cell cut short.

    They are, unless one of them reads as a whole report row on its own: then the open
    quote is a stray typed into the middle (which would swallow those rows), and the
    report is refused rather than cut.
    """
    for raw in rest:
        text = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
        try:
            fields = next(csv.reader([text], strict=True), [])
        except csv.Error:
            continue
        if len(fields) == width and fields[0].isdigit() and fields[3] in _OUTCOMES:
            return False
    return True


def _records_jsonl(
    path: Path, f: IO[bytes], torn: list[int]
) -> Iterator[tuple[int, dict[str, Any]]]:
    return _docs(path, whole_lines(path, f, torn))


def _docs(path: Path, lines: Iterator[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    """A JSON Lines report's rows, each an object with every report column, and its line."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _unreadable(path, number, f"not JSON ({exc.msg})") from None
        if not isinstance(doc, dict) or not _REQUIRED_KEYS.issubset(doc):
            raise _unreadable(path, number, "not a report row (a JSON object with its columns)")
        yield number, doc


_REQUIRED_KEYS = frozenset(REPORT_COLUMNS)


def _unreadable(path: Path, line: int, why: str) -> ReportError:
    return ReportError(
        f"report {path}, line {line}: {why}. The report is the record of what was done, "
        "so the run stops rather than guess; restore or fix that line (or choose another "
        "--report) and rerun"
    )


def read_records(path: Path, torn: list[int] | None = None) -> Iterator[dict[str, Any]]:
    """Every row of a report, strictly (`ReportError` naming the line otherwise).

    A torn last line is skipped and its length appended to `torn`; with `torn` None
    it is an error as well (a report another tool is to trust must be whole).
    """
    found: list[int] = [] if torn is None else torn
    with open(path, "rb") as f:
        records = _records_jsonl(path, f, found) if is_jsonl(path) else _records_csv(path, f, found)
        for line, rec in records:
            yield _checked(path, line, rec)
    if torn is None and found:
        raise ReportError(f"report {path}: its last line is cut short (no final newline)")


def _checked(path: Path, at: int, rec: dict[str, Any]) -> dict[str, Any]:
    """`rec`, read from line `at` of the report, if its outcome and line can be used."""
    outcome = rec.get("outcome")
    if outcome not in _OUTCOMES:
        raise _unreadable(path, at, f"unknown outcome {str(outcome)[:40]!r}")
    line = rec.get("line")
    if isinstance(line, bool) or not (isinstance(line, int) or str(line).isdigit()):
        raise _unreadable(path, at, f"the line column is not a number: {str(line)[:40]!r}")
    return rec


_OUTCOMES = frozenset(o.value for o in Outcome)


#: What resume needs of a report row: its line, merchant, reference and outcome.
Brief = tuple[int, str, str, Outcome]


@dataclass
class Totals:
    """Report-wide sums gathered on the same read: amounts the `canceled` rows released
    (currency -> minor units) and payments per state of the `checked` rows. Both
    outcomes are final, so a reference has at most one such row and a plain sum over
    the rows is the sum over the latest-row view, with no per-reference state."""

    released: Counter[str] = field(default_factory=Counter)
    states: Counter[str] = field(default_factory=Counter)
    #: whether a row repeats its reference's latest outcome already read (a row copied
    #: by hand): asked of the resume state, so one reference is counted once
    repeat: Callable[[Brief], bool] | None = None

    def add(self, brief: Brief, state: object, amount: object, currency: object) -> None:
        outcome = brief[3]
        if self.repeat is not None and self.repeat(brief):
            return
        if outcome is _CANCELED:
            # the common cell (a CSV report's digits) first: once a row on a big rerun
            minor = (
                int(amount)
                if type(amount) is str and amount.isascii() and amount.isdigit()
                else _whole(amount)
            )
            if minor is not None and currency:
                self.released[currency if type(currency) is str else str(currency)] += minor
        elif outcome is _CHECKED and state:
            self.states[str(state)] += 1


#: The outcomes whose rows `Totals` reads more of.
_SUMMED = frozenset({Outcome.CANCELED, Outcome.CHECKED})
#: Looked up once: an enum member costs an attribute lookup each time (once a row).
_CANCELED, _CHECKED = Outcome.CANCELED, Outcome.CHECKED


def _whole(value: object) -> int | None:
    """An amount as written (an int in JSON Lines, text in CSV; empty: none)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


_OUTCOME_OF = {o.value: o for o in Outcome}
#: Read size of `scan_report`, as the input's reader uses (`input.lines.CHUNK`).
SCAN_CHUNK = 1 << 16


def scan_report(
    path: Path,
    torn: list[int],
    progress: Callable[[int, int], None] | None = None,
    totals: Totals | None = None,
) -> Iterator[Brief]:
    """The report's rows as `Brief`s, as strictly as `read_records` reads them, faster.

    One pass in 64 KiB reads; a CSV line without a quote is split on commas directly
    (nearly every row: the fields that may hold quotes or commas come after the four
    read here), and only a line with a quote goes through the csv module. `progress`
    gets (rows so far, bytes read) every 65,536 rows. A torn last line is skipped and
    its length appended to `torn`; so is a torn last row whose quoted cell held a line
    break (all of it, from its first line). `totals`, when given, gathers `Totals`.
    """
    sums = totals if totals is not None else Totals()
    cut: list[bytes] = []
    with open(path, "rb") as f:
        lines = _chunked_lines(path, f, torn, cut)
        scan = (
            _scan_jsonl(path, lines, sums)
            if is_jsonl(path)
            else _scan_csv(path, lines, sums, torn, cut)
        )
        for number, brief in enumerate(scan, start=1):
            if progress is not None and not number & 0xFFFF:
                progress(number, f.tell())
            yield brief


def _chunked_lines(path: Path, f: IO[bytes], torn: list[int], cut: list[bytes]) -> Iterator[bytes]:
    """Whole lines (newline kept) read in large chunks; a torn last line's length goes
    to `torn`, the line itself to `cut`."""
    tail = b""
    whole = False
    while chunk := f.read(SCAN_CHUNK):
        parts = (tail + chunk).split(b"\n")
        tail = parts.pop()
        whole = whole or bool(parts)
        for part in parts:
            yield part + b"\n"
    if tail:
        if not whole:
            check_torn_start(path, tail)
        torn.append(len(tail))
        cut.append(tail)


def _scan_csv(
    path: Path, lines: Iterator[bytes], totals: Totals, torn: list[int], cut: list[bytes]
) -> Iterator[Brief]:
    pushback = _Pushback(lines)
    reader = csv.reader(pushback, strict=True)
    header = _header(path, reader)
    if header is None:
        return
    width, outcome_of = len(header), _OUTCOME_OF
    amount_at = header.index("amount") if "amount" in header else None
    currency_at = header.index("currency") if "currency" in header else None
    state_at = REPORT_COLUMNS.index("payment_state")

    def sum_up(brief: Brief, cells: list[str]) -> None:
        if brief[3] in _SUMMED:
            amount = cells[amount_at] if amount_at is not None else None
            currency = cells[currency_at] if currency_at is not None else None
            totals.add(brief, cells[state_at], amount, currency)

    for raw in pushback.source:
        pushback.line += 1
        start = pushback.line  # where the record starts (a quoted one may go on)
        if b'"' not in raw:
            cells = raw.decode("utf-8", "surrogateescape").rstrip("\r\n").split(",")
            if len(cells) != width:
                why = f"{len(cells)} fields, the header has {width}"
                raise _unreadable(path, pushback.line, why)
            line, outcome = cells[0], outcome_of.get(cells[3])
            if outcome is not None and line.isdigit():  # the common row, checked inline
                brief = int(line), cells[1], cells[2], outcome
                sum_up(brief, cells)
                yield brief
                continue
        else:
            pushback.head, pushback.taken = raw, []
            try:
                cells = next(reader)
            except (csv.Error, StopIteration) as exc:
                if not isinstance(exc, StopIteration) and "unexpected end of data" not in str(exc):
                    raise _unreadable(path, start, str(exc)) from None
                if cut and _torn_cell(width, pushback.taken[1:] + cut):
                    # A torn last row whose quoted cell held a line break: the whole row
                    # is the torn tail, from its first line to the end of the file.
                    torn.append(sum(map(len, pushback.taken)))
                    return
                raise _unreadable(path, start, "a quoted field never closes") from None
            if len(cells) != width:
                raise _unreadable(path, start, f"{len(cells)} fields, the header has {width}")
        brief = _brief(path, start, cells[0], cells[1], cells[2], cells[3])
        sum_up(brief, cells)
        yield brief


class _Pushback:
    """Feeds the csv module one record's lines: `head` first, then as many as it asks."""

    def __init__(self, source: Iterator[bytes]) -> None:
        self.source = source
        self.head: bytes | None = None
        self.line = 0  # physical line of the report last handed out (the header is 1)
        self.taken: list[bytes] = []  # the lines handed out for the current record

    def __iter__(self) -> _Pushback:
        return self

    def __next__(self) -> str:
        if self.head is not None:
            raw, self.head = self.head, None
        else:
            raw = next(self.source)
            self.line += 1
        self.taken.append(raw)
        return raw.decode("utf-8", "surrogateescape")


def _scan_jsonl(path: Path, lines: Iterator[bytes], totals: Totals) -> Iterator[Brief]:
    for at, doc in _docs(path, lines):
        brief = _brief(
            path,
            at,
            doc["line"],
            doc.get("merchant_number") or "",
            doc.get("payment_reference") or "",
            doc["outcome"],
        )
        if brief[3] in _SUMMED:
            totals.add(brief, doc.get("payment_state"), doc.get("amount"), doc.get("currency"))
        yield brief


def _brief(path: Path, at: int, line: Any, merchant: Any, reference: Any, outcome: Any) -> Brief:
    """What resume needs of the row read from line `at` of the report, checked."""
    found = _OUTCOME_OF.get(outcome) if isinstance(outcome, str) else None
    if found is None:
        raise _unreadable(path, at, f"unknown outcome {str(outcome)[:40]!r}")
    if isinstance(line, bool) or not (isinstance(line, int) or str(line).isdigit()):
        raise _unreadable(path, at, f"the line column is not a number: {str(line)[:40]!r}")
    return int(line), str(merchant), str(reference), found
