"""merge-reports: combine shard reports into one, proving nothing is missing or doubled.

Each shard's report is read in its latest-row view (the last row of a reference wins,
as on resume). A reference found in two reports is doubled; a shard index missing
from the set named `*.shard-I-of-N.*` is missing; with `--input`, every row of the
input must have a row. The merged report is written in input-line order.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import orjson

from worker.input.lines import InputError
from worker.input.source import open_input
from worker.model import REPORT_COLUMNS, UNSENT, Outcome
from worker.report.records import ReportError, is_jsonl, read_records

SHARD_NAME = re.compile(r"\.shard-(\d+)-of-(\d+)\.")


class MergeError(Exception):
    pass


class UnreadableReport(Exception):
    """A report (or the input) cannot be read as it is: a usage error (exit 2)."""


def _rows(path: Path) -> list[dict[str, Any]]:
    """A shard's rows, read as strictly as resume reads them (a torn row is an error)."""
    try:
        return list(read_records(path))
    except ReportError as exc:
        raise UnreadableReport(str(exc)) from None
    except OSError as exc:
        raise UnreadableReport(f"cannot read {path}: {exc.strerror or exc}") from None


def _identity(row: dict[str, Any]) -> tuple[str, str] | tuple[str, int]:
    reference = str(row.get("payment_reference") or "")
    if Outcome(row["outcome"]) in UNSENT or not reference:
        return ("line", int(row.get("line") or 0))
    return (str(row.get("merchant_number") or ""), reference)


def merge(out: Path, reports: list[Path], input_path: Path | None = None) -> str:
    counts: dict[int, set[int]] = {}
    for path in reports:
        m = SHARD_NAME.search(path.name)
        if m:
            counts.setdefault(int(m.group(2)), set()).add(int(m.group(1)))
    for n, seen in counts.items():
        missing = sorted(set(range(n)) - seen)
        if missing:
            raise MergeError(f"shard reports missing for shards {missing} of {n}")
    latest: dict[Any, tuple[Path, dict[str, Any]]] = {}
    for path in reports:
        mine: dict[Any, dict[str, Any]] = {}
        for row in _rows(path):
            mine[_identity(row)] = row
        for ident, row in mine.items():
            if ident in latest:
                raise MergeError(f"{ident} appears in both {latest[ident][0]} and {path}")
            latest[ident] = (path, row)
    rows = sorted((r for _, r in latest.values()), key=lambda r: int(r.get("line") or 0))
    if input_path is not None:
        lines = {int(r.get("line") or 0) for r in rows}
        try:
            source = open_input(str(input_path))
        except InputError as exc:
            raise UnreadableReport(str(exc)) from None
        try:
            absent = [p.line for p in source.rows() if p.line not in lines]
        except (InputError, OSError) as exc:
            raise UnreadableReport(f"cannot read {input_path}: {exc}") from None
        finally:
            source.close()
        if absent:
            raise MergeError(f"{len(absent)} input rows have no report row (lines {absent[:10]})")
    if is_jsonl(out):
        with open(out, "wb") as f:
            for r in rows:
                f.write(orjson.dumps(r) + b"\n")
    else:
        with open(out, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(REPORT_COLUMNS), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return f"merged {len(reports)} reports into {out}: {len(rows)} rows, none missing or doubled"
