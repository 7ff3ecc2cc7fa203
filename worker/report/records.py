"""Records: reading a report back, strictly, for resume and for merge-reports alike.

Only a torn *last* row (no final newline: a power cut mid-write) is forgiven, whatever
it holds: when a quoted cell of it held a line break, the torn row starts on an
earlier line than the torn last line, and all of it is the torn tail. Any other
unreadable row is a `ReportError` (exit 2) naming the file and the line. A report
edited by hand must never make a rerun forget what it already did.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from worker.model import REPORT_COLUMNS, Outcome

#: Far above any field the writer writes (references, merchants and echoes are capped),
#: so that no row it wrote can ever be unreadable on resume.
csv.field_size_limit(1 << 26)


class ReportError(Exception):
    """The report cannot be used (exit 2 before any request)."""


def is_jsonl(path: Path) -> bool:
    return path.name.lower().endswith((".jsonl", ".ndjson"))


def _whole_lines(f: IO[bytes], torn: list[int]) -> Iterator[bytes]:
    """The file's lines that end in a newline; the length of a torn last line goes to `torn`."""
    for raw in f:
        if not raw.endswith(b"\n"):
            torn.append(len(raw))
            return
        yield raw


def _records_csv(path: Path, f: IO[bytes], torn: list[int]) -> Iterator[dict[str, str]]:
    line_no = 0
    record: list[bytes] = []  # the physical lines of the record being read
    cut: list[bytes] = []  # the torn last line, if any

    def lines() -> Iterator[str]:
        nonlocal line_no
        for raw in f:
            if not raw.endswith(b"\n"):
                torn.append(len(raw))
                cut.append(raw)
                return
            line_no += 1
            record.append(raw)
            yield raw.decode("utf-8", "surrogateescape")

    reader = csv.reader(lines(), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise _unreadable(path, 1, f"bad header: {exc}") from None
    if header is None:
        return
    header = [h.lstrip("\ufeff") for h in header]
    if tuple(header[: len(REPORT_COLUMNS)]) != REPORT_COLUMNS:
        raise ReportError(
            f"{path} exists but is not a cancel-worker report "
            f"(header: {','.join(header)[:120]}); choose another --report or move it away"
        )
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
        yield dict(zip(header, fields, strict=True))


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


def _records_jsonl(path: Path, f: IO[bytes], torn: list[int]) -> Iterator[dict[str, Any]]:
    for number, raw in enumerate(_whole_lines(f, torn), start=1):
        if not raw.strip():
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _unreadable(path, number, f"not JSON ({exc.msg})") from None
        if not isinstance(doc, dict) or not _REQUIRED_KEYS.issubset(doc):
            raise _unreadable(path, number, "not a report row (a JSON object with its columns)")
        yield doc


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
        for number, rec in enumerate(records, start=1):
            yield _checked(path, number, rec)
    if torn is None and found:
        raise ReportError(f"report {path}: its last line is cut short (no final newline)")


def _checked(path: Path, number: int, rec: dict[str, Any]) -> dict[str, Any]:
    outcome = rec.get("outcome")
    if outcome not in _OUTCOMES:
        raise ReportError(f"report {path}, row {number}: unknown outcome {str(outcome)[:40]!r}")
    line = rec.get("line")
    if isinstance(line, bool) or not (isinstance(line, int) or str(line).isdigit()):
        raise ReportError(f"report {path}, row {number}: line is not a number: {str(line)[:40]!r}")
    return rec


_OUTCOMES = frozenset(o.value for o in Outcome)
