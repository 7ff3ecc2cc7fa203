"""Report: the outcome file, what an earlier run left in it, and the intent journal.

`ReportWriter` is the only code that appends to the report. Each call writes whole
rows with one `os.write` on an `O_APPEND` descriptor, so a kill leaves no torn row
(the kernel has the bytes once `write` returns; only a power cut can lose them, and
`fsync` at most every second and at close bounds that window).

`load_report` reads an existing report for resume and repairs a torn tail that a
power cut may have left. `IntentJournal` records each reference just before its
first cancel is sent, so that a rerun after a kill queries (rather than blindly
re-sends) any reference whose cancel may have landed without a report row.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from worker.dedup import key_of
from worker.models import REPORT_COLUMNS, Outcome, Result

FSYNC_INTERVAL = 1.0

#: Outcomes after which `run` never sends a reference again (CONTRACT.md "Resume").
RUN_FINAL = frozenset(
    {
        Outcome.CANCELED,
        Outcome.ALREADY_CANCELED,
        Outcome.NOT_CANCELABLE,
        Outcome.NOT_FOUND,
        Outcome.REJECTED,
    }
)
#: What `check` treats as done on resume.
CHECK_FINAL = frozenset({Outcome.CHECKED, Outcome.NOT_FOUND, Outcome.REJECTED})
#: Rows never sent; remembered by line so that a rerun does not report them twice.
UNSENT = frozenset({Outcome.INVALID, Outcome.DUPLICATE})


class ReportError(Exception):
    """The report cannot be used (exit 2 before any request)."""


def is_jsonl(path: Path) -> bool:
    return path.name.lower().endswith((".jsonl", ".ndjson"))


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ReportError(f"cannot open report {self.path}: {exc.strerror}") from None
        self._fd = fd
        if os.fstat(fd).st_size == 0 and not self._jsonl:
            os.write(fd, _csv_header())

    def write(self, results: Iterable[Result]) -> None:
        """Write rows with a single `write` call; each row is whole."""
        assert self._fd is not None, "open() first"
        finished_at = utc_now()
        data = self._encode(results, finished_at)
        if not data:
            return
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
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
            os.fsync(self._fd)
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = None


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


# -- resume ---------------------------------------------------------------------------


@dataclass
class PriorRows:
    """What an existing report says, in the latest-row view, for one mode."""

    done: dict[bytes, Outcome] = field(default_factory=dict)  # key -> final outcome
    unsent_lines: dict[int, Outcome] = field(default_factory=dict)  # invalid/duplicate lines
    rows: int = 0
    repaired_bytes: int = 0

    def final(self, merchant: str, reference: str) -> Outcome | None:
        return self.done.get(key_of(merchant, reference))


def _truncate_torn_tail(path: Path) -> int:
    """Drop a last line that has no newline: a row cut short by a crash or power loss."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        block = 65536
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                f.truncate(keep)
                return size - keep
            pos = start
        f.truncate(0)
        return size


def _records_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (byte offset where the record starts, record) for a report CSV."""
    with open(path, "rb") as f:
        offset = 0
        starts: list[int] = []

        def lines() -> Iterator[str]:
            nonlocal offset
            for raw in f:
                starts.append(offset)
                offset += len(raw)
                yield raw.decode("utf-8", "replace")

        reader = csv.reader(lines(), strict=True)
        header = next(reader, None)
        if header is None:
            return
        header = [h.lstrip("\ufeff") for h in header]
        if tuple(header[: len(REPORT_COLUMNS)]) != REPORT_COLUMNS:
            raise ReportError(
                f"{path} exists but is not a cancel-worker report "
                f"(header: {','.join(header)[:120]}); choose another --report or move it away"
            )
        starts.clear()
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error:
                # Only the very last record can be cut short (we write whole rows).
                yield starts[0], {}
                return
            start = starts[0]
            starts.clear()
            if record:
                yield start, dict(zip(header, record, strict=False))


def _records_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as f:
        offset = 0
        for raw in f:
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                yield start, {}
                continue
            if not isinstance(doc, dict):
                raise ReportError(f"{path} exists but is not a cancel-worker JSON Lines report")
            yield start, doc


def load_report(path: Path, final: frozenset[Outcome]) -> PriorRows:
    """Read an existing report (latest row per reference wins), repairing a torn tail."""
    prior = PriorRows()
    if not path.exists():
        return prior
    if not path.is_file():
        raise ReportError(f"report {path} is not a regular file")
    try:
        prior.repaired_bytes = _truncate_torn_tail(path)
        records = _records_jsonl(path) if is_jsonl(path) else _records_csv(path)
        for start, rec in records:
            if not rec:
                # A record that does not parse can only be a torn last row: cut it off.
                with open(path, "rb+") as f:
                    prior.repaired_bytes += f.seek(0, 2) - start
                    f.truncate(start)
                break
            _apply(prior, rec, final)
    except OSError as exc:
        raise ReportError(f"cannot read report {path}: {exc.strerror}") from None
    return prior


def _apply(prior: PriorRows, rec: dict[str, Any], final: frozenset[Outcome]) -> None:
    try:
        outcome = Outcome(str(rec.get("outcome") or ""))
    except ValueError:
        return
    prior.rows += 1
    merchant = str(rec.get("merchant_number") or "")
    reference = str(rec.get("payment_reference") or "")
    if outcome in UNSENT:
        with contextlib.suppress(TypeError, ValueError):
            prior.unsent_lines[int(rec.get("line") or 0)] = outcome
        return
    key = key_of(merchant, reference)
    if outcome in final:
        prior.done[key] = outcome
    elif outcome is Outcome.FAILED or (final is CHECK_FINAL and outcome is Outcome.CHECKED):
        prior.done.pop(key, None)


# -- intent journal ---------------------------------------------------------------------


def journal_path(report: Path) -> Path:
    return report.with_name(report.name + ".journal")


class IntentJournal:
    """Append-only list of references whose cancel is about to be sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(self, merchant: str, reference: str) -> None:
        assert self._fd is not None
        os.write(self._fd, orjson.dumps([merchant, reference]) + b"\n")

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    @staticmethod
    def load(path: Path, prior: PriorRows) -> set[bytes]:
        """Keys whose cancel may have been sent by a killed run and that have no final row."""
        pending: set[bytes] = set()
        if not path.exists():
            return pending
        with open(path, "rb") as f:
            for raw in f:
                try:
                    merchant, reference = orjson.loads(raw)
                except (orjson.JSONDecodeError, ValueError, TypeError):
                    continue  # a torn last line: that cancel was never sent
                key = key_of(str(merchant), str(reference))
                if key not in prior.done:
                    pending.add(key)
        return pending
