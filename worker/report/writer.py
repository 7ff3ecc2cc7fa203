"""Writer: the only code that appends to the report.

Each call writes whole rows with one `os.write` on an `O_APPEND` descriptor
(`storage.append_whole`), so a kill leaves no torn row (the kernel has the bytes once
`write` returns; only a power cut can lose them, and `fsync` at most every second and
at close bounds that window).

Every text cell that an API answer, an exception or the input's other columns filled
goes through `logs.mask` first: a problem detail that quotes the request's
`Authorization` header leaves no token in the report. The merchant and the reference
are written as read: they are the keys that resume and `merge-reports` match on.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from worker.errors import ReportError, StorageError
from worker.input.parsed import printable
from worker.model import EXTRA_COLUMNS, REPORT_COLUMNS, Result
from worker.observe.logs import mask
from worker.report.records import is_jsonl
from worker.report.storage import FILE_MODE, append_whole, sync

FSYNC_INTERVAL = 1.0


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Echo:
    """Which of the input row's other columns the report repeats, and under what names.

    `--echo-columns all` (the default), `none`, or a comma-separated list of input
    column names. A name that is already a report column gets the prefix `input_`.
    """

    def __init__(self, choice: str = "all") -> None:
        self._all = choice == "all"
        self._only = (
            frozenset()
            if choice in ("all", "none")
            else frozenset(n.strip() for n in choice.split(","))
        )

    def keeps(self, name: str) -> bool:
        return self._all or name in self._only

    def missing(self, names: Iterable[str]) -> list[str]:
        """The names asked for that are not among `names` (a CSV header's)."""
        return sorted(self._only.difference(names))

    @staticmethod
    def report_name(name: str) -> str:
        return f"input_{name}" if name in _RESERVED else name

    def names(self, input_names: Iterable[str]) -> list[str]:
        return _unique([self.report_name(n) for n in input_names if self.keeps(n)])

    def pick(self, extra: tuple[tuple[str, object], ...]) -> list[tuple[str, object]]:
        picked = [(self.report_name(n), v) for n, v in extra if self.keeps(n)]
        if len(picked) > 1 and len({n for n, _ in picked}) < len(picked):
            # a header that names a column twice (or `line` and `input_line`): as `names`
            picked = list(zip(_unique([n for n, _ in picked]), [v for _, v in picked], strict=True))
        return picked


def _unique(names: list[str]) -> list[str]:
    """Each name once, in order: one already taken (by an earlier column or a report
    column) gets the prefix `input_` until it is free, so no echoed value hides another."""
    taken: set[str] = set(_RESERVED)
    out = []
    for name in names:
        while name in taken:
            name = f"input_{name}"
        taken.add(name)
        out.append(name)
    return out


_RESERVED = frozenset(REPORT_COLUMNS + EXTRA_COLUMNS)


class ReportWriter:
    """Appends whole rows to the report; owns its file descriptor.

    A CSV report's columns are fixed by its header: the contract's ten, `amount`,
    `currency`, `run_id`, then the echoed input columns (`input_columns`, or, for an
    input whose columns are only known row by row, those of the first rows written).
    An existing report keeps its own header, so every row of it has the same shape.
    """

    def __init__(
        self,
        path: Path,
        *,
        run_id: str = "",
        echo: Echo | None = None,
        input_columns: list[str] | None = None,
        fsync_interval: float = FSYNC_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` times the fsync interval (a simulation passes its event loop's)."""
        self.path = path
        self._jsonl = is_jsonl(path)
        self._run_id = run_id
        self._echo = echo or Echo()
        self._input_columns = input_columns
        self._fsync_interval = fsync_interval
        self._fd: int | None = None
        self._clock = clock
        self._last_sync = clock()
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")
        self._columns: list[str] | None = None  # CSV: the header, once known
        self.rows_written = 0

    def open(self) -> None:
        check_report_path(self.path)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise ReportError(f"cannot open report {self.path}: {exc.strerror}") from None
        self._fd = fd
        if self._jsonl:
            return
        if os.fstat(fd).st_size:
            with open(self.path, newline="", encoding="utf-8", errors="replace") as f:
                header = next(csv.reader(f), [])
            self._columns = [h.lstrip("\ufeff") for h in header]
        elif self._input_columns is not None:
            try:
                append_whole(fd, self._start(self._echo.names(self._input_columns)), self.path)
            except StorageError as exc:
                raise ReportError(f"cannot write report {exc}") from None

    def _start(self, echoed: list[str]) -> bytes:
        """The header of a new CSV report; its columns are fixed from now on."""
        self._columns = [*REPORT_COLUMNS, *EXTRA_COLUMNS, *echoed]
        return self._buffer_rows([self._columns])

    def write(self, results: Iterable[Result]) -> None:
        """Write rows with a single `write` call; each row is whole. Raises StorageError."""
        assert self._fd is not None, "open() first"
        results = list(results)
        if not results:
            return
        header = b""
        if not self._jsonl and self._columns is None:
            seen: dict[str, None] = {}
            for r in results:
                seen.update((name, None) for name, _ in self._echo.pick(r.extra))
            header = self._start(list(seen))
        finished_at = utc_now()
        # One write: the header (once) and the rows together, each row whole.
        try:
            append_whole(self._fd, header + self._encode(results, finished_at), self.path)
        except StorageError:
            if header:
                self._columns = None  # nothing reached the file: the next write tries again
            raise
        self.rows_written += len(results)
        if self._clock() - self._last_sync >= self._fsync_interval:
            self.sync()

    def _encode(self, results: list[Result], finished_at: str) -> bytes:
        if self._jsonl:
            return b"".join(_json(self._as_dict(r, finished_at)) + b"\n" for r in results)
        columns = self._columns
        assert columns is not None
        ours = len(REPORT_COLUMNS) + len(EXTRA_COLUMNS)
        echoed = columns[ours:]
        older = len(columns) < ours  # a report begun by a version with fewer columns
        rows = []
        for r in results:
            row = _cells(r, finished_at, self._run_id)
            if older:
                del row[len(columns) :]
            if echoed:
                values = dict(self._echo.pick(r.extra))
                row += [_cell(values.get(name)) for name in echoed]
            rows.append(row)
        return self._buffer_rows(rows)

    def _as_dict(self, r: Result, finished_at: str) -> dict[str, Any]:
        row = _as_dict(r, finished_at)
        row.update(amount=r.amount, currency=r.currency, run_id=self._run_id or None)
        # an empty echoed cell is null, as every empty value of a JSON Lines row is
        row.update(
            (k, (mask(v) or None) if isinstance(v, str) else v) for k, v in self._echo.pick(r.extra)
        )
        return row

    def _buffer_rows(self, rows: Iterable[Iterable[Any]]) -> bytes:
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        self._csv.writerows(rows)
        text = buffer.getvalue()
        try:
            return text.encode()
        except UnicodeEncodeError:  # an input cell that was not UTF-8: shown as U+FFFD
            return printable(text).encode()

    def sync(self) -> None:
        if self._fd is not None:
            sync(self._fd, self.path)
            self._last_sync = self._clock()

    def close(self) -> None:
        if self._fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = None


def _json(row: dict[str, Any]) -> bytes:
    """A JSON Lines row. An echoed CSV cell that was not UTF-8 (read with
    surrogateescape) is shown with U+FFFD, as a CSV report shows it, not refused."""
    try:
        return orjson.dumps(row, default=str)
    except TypeError:
        fixed = {k: printable(v) if isinstance(v, str) else v for k, v in row.items()}
        return orjson.dumps(fixed, default=str)


def _cell(value: object) -> str:
    """An echoed value in a CSV cell: text as it is, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return mask(value)
    return mask(orjson.dumps(value, default=str).decode())


def check_report_path(path: Path) -> None:
    """The report's folder must exist: a typo in `--report` must not create a new tree."""
    parent = path.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise ReportError(f"cannot write report {path}: folder {parent} {what}")
    if path.exists() and not path.is_file():
        raise ReportError(f"report {path} is not a regular file")


def _cells(r: Result, finished_at: str, run_id: str) -> list[Any]:
    """A CSV row's own cells: REPORT_COLUMNS, then EXTRA_COLUMNS. One list literal, as
    this runs once per reference (an Outcome is a str, which csv writes as it is)."""
    return [
        r.line,
        r.merchant,
        r.reference,
        r.outcome,
        "" if r.http_status is None else r.http_status,
        mask(r.error_type) if r.error_type else "",
        mask(r.payment_state) if r.payment_state else "",
        r.attempts,
        mask(r.detail) if r.detail else "",
        finished_at,
        "" if r.amount is None else r.amount,
        r.currency or "",
        run_id,
    ]


def _as_dict(r: Result, finished_at: str) -> dict[str, Any]:
    return {
        "line": r.line,
        # empty (an invalid row's missing cell) is null, as every empty JSON Lines value
        "merchant_number": r.merchant or None,
        "payment_reference": r.reference or None,
        "outcome": r.outcome.value,
        "http_status": r.http_status,
        "error_type": mask(r.error_type) if r.error_type else None,
        "payment_state": mask(r.payment_state) if r.payment_state else None,
        "attempts": r.attempts,
        "detail": mask(r.detail) if r.detail else None,
        "finished_at": finished_at,
    }
