"""Run records: `<report>.runs.jsonl`, one JSON object per run that wrote the report.

A report is the record of one input's night, so each run appends what it was (mode,
input and its SHA-256, shard, counts, amounts released, exit code) when it ends, and
the next run checks it before sending anything: a report must not be resumed from
another input or by another kind of run (`check` rows do not mean what `run` rows
mean). A report without records (hand-made, or from an older version) resumes as
before, with a warning.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from worker.report.records import ReportError
from worker.report.storage import FILE_MODE, append_whole


def runs_path(report: Path) -> Path:
    return report.with_name(report.name + ".runs.jsonl")


def read_runs(report: Path) -> list[dict[str, Any]]:
    """The report's run records; a torn last line (a crash mid-append) is skipped."""
    path = runs_path(report)
    runs: list[dict[str, Any]] = []
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                if raw.endswith(b"\n"):
                    raise ReportError(
                        f"run record {path}, line {number}: not a JSON object"
                    ) from None
                break
            if not isinstance(doc, dict):
                raise ReportError(f"run record {path}, line {number}: not a JSON object")
            runs.append(doc)
    return runs


def append_run(report: Path, record: Mapping[str, Any]) -> None:
    path = runs_path(report)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        append_whole(fd, orjson.dumps(record) + b"\n", path)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Binding:
    """What this run is, to be checked against the report's earlier runs."""

    kind: str  # run / check / dry-run
    input: str
    input_sha256: str | None  # None: not known before reading (standard input, a pipe)


def check_binding(
    report: Path, runs: list[dict[str, Any]], this: Binding, *, allow_changed_input: bool
) -> str | None:
    """Raise ReportError (exit 2) if the report belongs to another input or kind of run.

    Returns a warning to log, or None.
    """
    if not runs:
        return None
    first = runs[0]
    kinds = {str(r.get("mode")) for r in runs}
    if kinds != {this.kind}:
        theirs = ", ".join(sorted(kinds))
        raise ReportError(
            f"report {report} was written by `{theirs}` (started {first.get('started_at')}); "
            f"this is `{this.kind}`, whose rows mean something else there. Choose another "
            "--report (each kind of run has its own default name)"
        )
    hashes = [r.get("input_sha256") for r in runs if r.get("input_sha256")]
    if this.input_sha256 is None or not hashes:
        return None
    last = hashes[-1]
    if last == this.input_sha256 or allow_changed_input:
        if last != this.input_sha256:
            return (
                f"resuming {report} with a changed input (--allow-changed-input): rows "
                "already final are not sent again; changed lines are reported afresh"
            )
        return None
    earlier = next(r for r in reversed(runs) if r.get("input_sha256") == last)
    raise ReportError(
        f"report {report} belongs to input {earlier.get('input')} (sha256 {str(last)[:12]}..., "
        f"started {first.get('started_at')}), not to {this.input} (sha256 "
        f"{this.input_sha256[:12]}...). Choose another --report, or rerun with "
        "--allow-changed-input if you fixed rows of the same file"
    )
