"""Rows: the ten report cells the page needs, read fast, as plain tuples.

The page reads every row of a report that may hold millions; `records.read_records`
builds a dict per row and checks it for resume, which cost half of the page's time.
This reader checks what the page relies on (the header, each row's width, a known
outcome) and hands on tuples in `FIELDS` order. Like resume, it leaves out a torn last
line (no final newline): a rerun redoes that row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import orjson

from worker.errors import ReportError
from worker.model import REPORT_COLUMNS, Outcome
from worker.report.records import is_jsonl, whole_lines

#: The cells of a row the page uses, in the order `read_rows` yields them.
FIELDS = (
    "outcome",
    "merchant_number",
    "payment_reference",
    "run_id",
    "finished_at",
    "amount",
    "currency",
    "line",
    "payment_state",
    "detail",
)
Cells = tuple[Any, ...]
_OUTCOMES = frozenset(o.value for o in Outcome)


def _bad(path: Path, line: int, why: str) -> ReportError:
    return ReportError(f"report {path}, line {line}: {why}")


def _csv(path: Path, f: IO[bytes]) -> Iterator[Cells]:
    reader = csv.reader(raw.decode("utf-8", "replace") for raw in whole_lines(path, f, []))
    try:
        header = [h.lstrip("\ufeff") for h in next(reader, [])]
    except csv.Error as exc:
        raise _bad(path, 1, f"bad header: {exc}") from None
    if not header:
        return
    if tuple(header[: len(REPORT_COLUMNS)]) != REPORT_COLUMNS:
        raise ReportError(
            f"{path} is not a cancel-worker report (header: {','.join(header)[:120]})"
        )
    width = len(header)
    absent = width  # a column the report does not have (an older one: no amount) reads ""
    pick = itemgetter(*(header.index(n) if n in header else absent for n in FIELDS))
    try:
        for row in reader:
            if len(row) != width:
                raise _bad(path, reader.line_num, f"{len(row)} fields, the header has {width}")
            row.append("")
            cells = pick(row)
            if cells[0] not in _OUTCOMES:
                raise _bad(path, reader.line_num, f"unknown outcome {cells[0][:40]!r}")
            yield cells
    except csv.Error as exc:
        raise _bad(path, reader.line_num, str(exc)) from None


def _jsonl(path: Path, f: IO[bytes]) -> Iterator[Cells]:
    for number, raw in enumerate(whole_lines(path, f, []), start=1):
        if not raw.strip():
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _bad(path, number, f"not JSON ({exc.msg})") from None
        if not isinstance(doc, dict) or doc.get("outcome") not in _OUTCOMES:
            raise _bad(path, number, "not a report row (a JSON object with a known outcome)")
        yield tuple(doc.get(n) for n in FIELDS)


def read_rows(path: Path) -> Iterator[Cells]:
    """Each row's `FIELDS`; raises ReportError naming the line of a row it cannot use."""
    with open(path, "rb") as f:
        yield from (_jsonl(path, f) if is_jsonl(path) else _csv(path, f))
