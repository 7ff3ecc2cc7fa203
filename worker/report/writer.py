"""Report: the outcome file, what an earlier run left in it, and the intent journal.

`ReportWriter` is the only code that appends to the report. Each call writes whole
rows with one `os.write` on an `O_APPEND` descriptor, so a kill leaves no torn row
(the kernel has the bytes once `write` returns; only a power cut can lose them, and
`fsync` at most every second and at close bounds that window). A write that fails
(a full disk) is undone with `ftruncate` back to the last whole row, so the file
never holds half a row in its middle, and raises `StorageError` (exit 3).

`load_report` reads an existing report for resume, strictly: only a torn *last* line
(no final newline: a power cut mid-write) is forgiven, and `repair_torn_tail` cuts it
off once the run is sure to start. Any other unreadable row is a `ReportError`
(exit 2) naming the line, and the file is left untouched: a report edited by hand
must never make a rerun forget what it already did. `IntentJournal` records each
reference just before its first cancel is sent, so that a rerun after a kill queries
(rather than blindly re-sends) any reference whose cancel may have landed without a
report row.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from worker.input.dedup import key_of
from worker.model import REPORT_COLUMNS, Outcome, Result

FSYNC_INTERVAL = 1.0
#: Reports and journals name merchants and payments: not for every local user to read.
FILE_MODE = 0o640
#: Far above any field the writer writes (references, merchants and echoes are capped),
#: so that no row it wrote can ever be unreadable on resume.
csv.field_size_limit(1 << 26)

#: Outcomes after which `run` never sends a reference again (README, "Resume").
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


class StorageError(Exception):
    """The report or the journal could not be written: stop sending (exit 3)."""


def append_whole(fd: int, data: bytes, path: Path) -> None:
    """Append `data` completely or not at all; raises StorageError naming `path`.

    A short write is continued; a failed one is cut back to where this call began,
    so that a later successful append does not follow half a row.
    """
    start = os.lseek(fd, 0, os.SEEK_END)
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(errno.EIO, "write wrote nothing")
            view = view[written:]
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise StorageError(f"{path}: {exc.strerror or exc}") from None


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
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise StorageError(f"{self.path}: {exc.strerror or exc}") from None
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


# -- resume ---------------------------------------------------------------------------


@dataclass
class PriorRows:
    """What an existing report says, in the latest-row view, for one mode."""

    done: dict[bytes, Outcome] = field(default_factory=dict)  # key -> final outcome
    unsent_lines: dict[int, Outcome] = field(default_factory=dict)  # invalid/duplicate lines
    rows: int = 0
    torn_bytes: int = 0  # a last line without its newline, to cut off before appending

    def final(self, merchant: str, reference: str) -> Outcome | None:
        return self.done.get(key_of(merchant, reference))


def _whole_lines(f: IO[bytes], torn: list[int]) -> Iterator[bytes]:
    """The file's lines that end in a newline; the length of a torn last line goes to `torn`."""
    for raw in f:
        if not raw.endswith(b"\n"):
            torn.append(len(raw))
            return
        yield raw


def _records_csv(path: Path, f: IO[bytes], torn: list[int]) -> Iterator[dict[str, str]]:
    line_no = 0

    def lines() -> Iterator[str]:
        nonlocal line_no
        for raw in _whole_lines(f, torn):
            line_no += 1
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
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise _unreadable(path, start, "a quoted field never closes") from None
            raise _unreadable(path, start, str(exc)) from None
        if len(record) != len(header):
            raise _unreadable(path, start, f"{len(record)} fields, the header has {len(header)}")
        yield dict(zip(header, record, strict=True))


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


def load_report(path: Path, final: frozenset[Outcome]) -> PriorRows:
    """Read an existing report (latest row per reference wins); changes nothing on disk."""
    prior = PriorRows()
    if not path.exists():
        return prior
    if not path.is_file():
        raise ReportError(f"report {path} is not a regular file")
    torn: list[int] = []
    try:
        for rec in read_records(path, torn):
            _apply(prior, rec, final)
    except OSError as exc:
        raise ReportError(f"cannot read report {path}: {exc.strerror}") from None
    prior.torn_bytes = sum(torn)
    return prior


def repair_torn_tail(path: Path, torn_bytes: int) -> None:
    """Cut off a last line left without its newline (by a power cut mid-write)."""
    if torn_bytes:
        with open(path, "rb+") as f:
            f.truncate(f.seek(0, os.SEEK_END) - torn_bytes)


def _apply(prior: PriorRows, rec: dict[str, Any], final: frozenset[Outcome]) -> None:
    outcome = Outcome(rec["outcome"])
    prior.rows += 1
    merchant = str(rec.get("merchant_number") or "")
    reference = str(rec.get("payment_reference") or "")
    if outcome in UNSENT:
        prior.unsent_lines[int(rec["line"])] = outcome
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
    """Append-only list of references whose cancel is about to be sent.

    The file is created by the first record, so a run that sends nothing leaves none.
    A record that cannot be written whole raises `StorageError` and its cancel is not
    sent: the journal must never be behind what went out.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def record(self, merchant: str, reference: str) -> None:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            except OSError as exc:
                raise StorageError(f"{self.path}: {exc.strerror or exc}") from None
        append_whole(self._fd, orjson.dumps([merchant, reference]) + b"\n", self.path)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise StorageError(f"{self.path}: {exc.strerror or exc}") from None
            finally:
                os.close(self._fd)
                self._fd = None

    def discard(self) -> None:
        with contextlib.suppress(StorageError):
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
