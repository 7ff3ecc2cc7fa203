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

from worker.models import REPORT_COLUMNS
from worker.reader import open_input, parse
from worker.report import is_jsonl

SHARD_NAME = re.compile(r"\.shard-(\d+)-of-(\d+)\.")


class MergeError(Exception):
    pass


def _rows(path: Path) -> list[dict[str, Any]]:
    if is_jsonl(path):
        with open(path, "rb") as f:
            return [orjson.loads(line) for line in f if line.strip()]
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple((reader.fieldnames or [])[: len(REPORT_COLUMNS)]) != REPORT_COLUMNS:
            raise MergeError(f"{path} is not a cancel-worker report")
        return list(reader)


def _identity(row: dict[str, Any]) -> tuple[str, str] | tuple[str, int]:
    reference = str(row.get("payment_reference") or "")
    if row.get("outcome") in ("invalid", "duplicate") or not reference:
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
        source = open_input(str(input_path))
        try:
            absent = [p.line for p in parse(source) if p.line not in lines]
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
