"""Report files for the page tests: rows as the writer writes them, run records as
`run` (and the branches to come) append them."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from worker.model import EXTRA_COLUMNS, REPORT_COLUMNS

COLUMNS = [*REPORT_COLUMNS, *EXTRA_COLUMNS, "comment"]


def row(
    line: int,
    ref: str,
    outcome: str,
    *,
    merchant: str = "T1",
    amount: int | None = None,
    currency: str = "",
    state: str = "",
    detail: str = "",
    at: str = "2026-11-27T01:00:10.000Z",
    run_id: str = "r1",
    comment: str = "",
) -> dict[str, Any]:
    return {
        "line": line,
        "merchant_number": merchant,
        "payment_reference": ref,
        "outcome": outcome,
        "http_status": "",
        "error_type": "",
        "payment_state": state,
        "attempts": 1,
        "detail": detail,
        "finished_at": at,
        "amount": "" if amount is None else amount,
        "currency": currency,
        "run_id": run_id,
        "comment": comment,
    }


def write_report(
    path: Path, rows: Iterable[Mapping[str, Any]], records: Iterable[Mapping[str, Any]] = ()
) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    runs = path.with_name(path.name + ".runs.jsonl")
    runs.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def end_record(run_id: str, **kw: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "run_id": run_id,
        "mode": "run",
        "started_at": "2026-11-27T01:00:00.000Z",
        "finished_at": "2026-11-27T01:30:00.000Z",
        "input": "payments.csv",
        "shard": "0/1",
        "exit_code": 0,
        "complete": True,
        "requests": 10,
    }
    record.update(kw)
    return record
