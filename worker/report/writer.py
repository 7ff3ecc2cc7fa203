"""Writer: the only code that appends to the report.

Each call writes whole rows with one `os.write` on an `O_APPEND` descriptor
(`storage.append_whole`), so a kill leaves no torn row (the kernel has the bytes once
`write` returns; only a power cut can lose them, and `fsync` at most every second and
at close bounds that window).
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from worker.model import REPORT_COLUMNS, Result
from worker.report.records import ReportError, is_jsonl
from worker.report.storage import FILE_MODE, StorageError, append_whole, sync

FSYNC_INTERVAL = 1.0


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _csv_header() -> bytes:
    return (",".join(REPORT_COLUMNS) + "\r\n").encode()


class ReportWriter:
    """Appends whole rows to the report; owns its file descriptor."""

    def __init__(self, path: Path, *, fsync_interval: float = FSYNC_INTERVAL) -> None:
        self.path = path
        self._jsonl = is_jsonl(path)
        self._fsync_interval = fsync_interval
        self._fd: int | None = None
        self._last_sync = time.monotonic()
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")
        self.rows_written = 0

    def open(self) -> None:
        check_report_path(self.path)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise ReportError(f"cannot open report {self.path}: {exc.strerror}") from None
        self._fd = fd
        if os.fstat(fd).st_size == 0 and not self._jsonl:
            try:
                append_whole(fd, _csv_header(), self.path)
            except StorageError as exc:
                raise ReportError(f"cannot write report {exc}") from None

    def write(self, results: Iterable[Result]) -> None:
        """Write rows with a single `write` call; each row is whole. Raises StorageError."""
        assert self._fd is not None, "open() first"
        finished_at = utc_now()
        before = self.rows_written
        data = self._encode(results, finished_at)
        if not data:
            return
        try:
            append_whole(self._fd, data, self.path)
        except StorageError:
            self.rows_written = before
            raise
        if time.monotonic() - self._last_sync >= self._fsync_interval:
            self.sync()

    def _encode(self, results: Iterable[Result], finished_at: str) -> bytes:
        if self._jsonl:
            chunks = []
            for r in results:
                chunks.append(orjson.dumps(_as_dict(r, finished_at)))
                chunks.append(b"\n")
                self.rows_written += 1
            return b"".join(chunks)
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        for r in results:
            self._csv.writerow(_as_tuple(r, finished_at))
            self.rows_written += 1
        return buffer.getvalue().encode("utf-8", "replace")

    def sync(self) -> None:
        if self._fd is not None:
            sync(self._fd, self.path)
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = None


def check_report_path(path: Path) -> None:
    """The report's folder must exist: a typo in `--report` must not create a new tree."""
    parent = path.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise ReportError(f"cannot write report {path}: folder {parent} {what}")
    if path.exists() and not path.is_file():
        raise ReportError(f"report {path} is not a regular file")


def _as_tuple(r: Result, finished_at: str) -> tuple[Any, ...]:
    return (
        r.line,
        r.merchant,
        r.reference,
        r.outcome.value,
        "" if r.http_status is None else r.http_status,
        r.error_type or "",
        r.payment_state or "",
        r.attempts,
        r.detail or "",
        finished_at,
    )


def _as_dict(r: Result, finished_at: str) -> dict[str, Any]:
    return {
        "line": r.line,
        "merchant_number": r.merchant,
        "payment_reference": r.reference,
        "outcome": r.outcome.value,
        "http_status": r.http_status,
        "error_type": r.error_type or None,
        "payment_state": r.payment_state or None,
        "attempts": r.attempts,
        "detail": r.detail or None,
        "finished_at": finished_at,
    }
