"""Screened: a small file's rows as the pre-pass screened them, for the run to admit.

The pre-pass reads every row of a file (to count, fingerprint and find repeats) and
screens each one (`admission.screen_batch`: validate, shard, key). For a file of up to
`READ_ONCE_ROWS` rows it keeps what it screened, and the run admits from that instead
of reading, parsing and validating the file a second time: such a night is read once,
each row decided once, and the run sends exactly what the pre-pass counted and
fingerprinted. A bigger file is read again by the run, in flat memory, as a stream of
chunks (`source.Source`). Either way the run checks the file still holds what was
counted before it sends a row of it: a kept chunk remembers where its bytes end, and
the run reads and checks (does not parse) the file's blocks up to there first
(`Source.check_to`), so an edit during the run stops it as on a second read.

Memory: ~300 bytes a row (its `Row`, the reference and merchant strings, its 16-byte
key: 293 measured with 17-character references), so at most ~20 MB at the bound. A file
whose size says it is bigger never starts keeping; one that turns out bigger (a gzip
file is only estimated) drops what it kept at the bound.

Usage::

    keeper = Keeper(source.estimated_lines())
    for batch in source.batches():
        keeper.keep(screen_batch(batch, merchant, shard), source.bytes_fed, source.lines_seen)
    kept = keeper.screened(source)   # None: read the file again
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.input.source import Source
from worker.model import Rejected, Row

#: Rows of a file the pre-pass keeps screened for the run (see the module docstring).
READ_ONCE_ROWS = 65_536

#: One chunk's rows as `admission.screen_batch` returns them: items and their keys.
Batch = tuple[list[Row | Rejected | None], list[bytes | None]]


@dataclass(frozen=True)
class Screened:
    """A whole file, screened, and what its read counted (as `Source` counts them)."""

    batches: list[Batch]
    ends: list[int]  # per batch: the input's bytes it was parsed from end here
    lines_at: list[int]  # per batch: physical lines read once it was parsed
    rows_seen: int  # rows parsed, any shard: 0 is a header alone
    lines_seen: int
    lines_accounted: int
    blank_rows: int


class Keeper:
    """Keeps a pass's screened chunks while the file stays within `READ_ONCE_ROWS`."""

    def __init__(self, expected_lines: int, limit: int | None = None) -> None:
        limit = READ_ONCE_ROWS if limit is None else limit  # read now: tests lower it
        self._limit = limit
        self._batches: list[Batch] | None = [] if expected_lines <= limit else None
        self._ends: list[int] = []
        self._lines: list[int] = []
        self._rows = 0

    def keep(self, batch: Batch, end: int, lines: int) -> None:
        """A chunk's screened rows, parsed from the input's bytes up to `end`, which
        hold `lines` physical lines."""
        if self._batches is None:
            return
        self._rows += len(batch[0])
        if self._rows > self._limit:
            self._batches = None  # too big after all: the run reads the file again
            self._ends, self._lines = [], []
            return
        self._batches.append(batch)
        self._ends.append(end)
        self._lines.append(lines)

    def screened(self, source: Source) -> Screened | None:
        """Everything `source` held, screened (after its whole read), or None."""
        if self._batches is None:
            return None
        return Screened(
            self._batches,
            self._ends,
            self._lines,
            rows_seen=source.rows_seen,
            lines_seen=source.lines_seen,
            lines_accounted=source.lines_accounted,
            blank_rows=source.blank_rows,
        )
