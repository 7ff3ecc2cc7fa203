"""Runs: a report's runs as its run records tell them, read tolerantly.

Records gain keys as the worker grows (a start record written before the first
request, totals, states), so unknown keys are ignored and missing ones are None: a
page built from an older or newer report's records still shows what they hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from worker.report.runs import is_end


def as_text(value: Any) -> str:
    return "" if value is None else str(value)


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Run:
    """One run of the report, from its run records."""

    run_id: str
    mode: str
    started_at: str | None
    finished_at: str | None  # None: a start record and no end record (killed)
    exit_code: int | None
    complete: bool | None
    shard: str
    report: str | None  # in a merged report's records: the shard report it wrote
    input: str | None
    stopped_by: str | None
    requests: int | None
    fix: str | None = None  # what to do before a rerun can finish the night
    target: str | None = None  # the API's URL, or `sandbox` (an older record: None)

    @property
    def killed(self) -> bool:
        return self.finished_at is None


def runs_of(records: Iterable[Mapping[str, Any]]) -> tuple[list[Run], Mapping[str, Any] | None]:
    """Runs from run records, read tolerantly: unknown keys are ignored, missing ones are
    None. A start record (`"event": "start"`) with no end record of its run is a run
    that was killed; merge-reports' totals record (`"mode": "merge"`) is returned apart."""
    runs: dict[str, Run] = {}
    merged: Mapping[str, Any] | None = None
    for n, rec in enumerate(records):
        if rec.get("mode") == "merge":
            merged = rec
            continue
        run_id = as_text(rec.get("run_id")) or f"#{n + 1}"
        key = f"{rec.get('report') or ''}\0{run_id}"
        start = not is_end(rec)
        earlier = runs.get(key)
        run = Run(
            run_id=run_id,
            mode=as_text(rec.get("mode")),
            started_at=rec.get("started_at") or (earlier.started_at if earlier else None),
            finished_at=None if start else as_text(rec.get("finished_at")) or "unknown",
            exit_code=None if start else as_int(rec.get("exit_code")),
            complete=None if start else rec.get("complete"),
            shard=as_text(rec.get("shard")) or "0/1",
            report=rec.get("report"),
            input=rec.get("input"),
            stopped_by=as_text(rec.get("stopped_by")) or None,
            requests=as_int(rec.get("requests")),
            fix=as_text(rec.get("fix")) or None,
            target=as_text(rec.get("target")) or None,
        )
        if start and earlier is not None:
            continue  # an end record came first: keep it
        runs[key] = run
    return list(runs.values()), merged
