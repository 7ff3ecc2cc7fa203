"""Resume: what an existing report says a rerun may skip, per mode, in flat memory.

The latest row wins. A `ResumePolicy` names the outcomes a mode takes as done and the
ones that reopen a reference; rows never sent (`invalid`, `duplicate`) are remembered
by line so that a rerun does not report them twice.

Two exact shapes, chosen by `prepare`:

- `ByLine`, when the input is a file: one byte per physical line (the latest row's
  outcome, and how many rows the line has, mod 16), ~10 MB at ten million lines. It
  holds no reference, so it is proven to fit the input instead: every report row adds a
  64-bit hash of (line, merchant, reference) to a sum (`row_hash`), and the pre-pass
  adds, for each input line with rows, the hash of what that line holds now times that
  count. Equal sums mean every line the report speaks of still holds the same row;
  otherwise the report is read again `ByKey`.
- `ByKey`, for standard input, a changed input or a failed proof: final outcomes by
  (merchant, reference) digest with the line they were reported on, unsent rows by
  line, in `KeyMap`s that spill to the on-disk index past the memory budget.

Reading changes nothing on disk: `repair_torn_tail` is applied by the run once it is
sure to start.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

from worker.errors import ReportError
from worker.keys import key_of
from worker.model import CHECK_FINAL, RUN_FINAL, UNSENT, Mode, Outcome, Rejected
from worker.report.index import KeyMap, SpillStore
from worker.report.records import Brief, Totals, is_jsonl, scan_report
from worker.report.runs import is_end


@dataclass(frozen=True)
class ResumePolicy:
    """Which latest rows mean "done" (never sent again) and which mean "do it again"."""

    final: frozenset[Outcome]
    reopen: frozenset[Outcome] = frozenset({Outcome.FAILED})

    @property
    def relevant(self) -> frozenset[Outcome]:
        """Rows that change what a rerun does; others (another mode's) are passed over."""
        return self.final | self.reopen | UNSENT


RUN = ResumePolicy(RUN_FINAL)
CHECK = ResumePolicy(CHECK_FINAL)


def policy_for(mode: Mode, retry: frozenset[Outcome] = frozenset()) -> ResumePolicy:
    """The mode's policy; `retry` (`--retry-outcomes`) final outcomes are done again."""
    base = CHECK if mode is Mode.CHECK else RUN
    if not retry:
        return base
    return ResumePolicy(base.final - retry, base.reopen | retry)


#: Outcome <-> a 4-bit code (0: no row).
OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
CODE: dict[Outcome, int] = {o: i + 1 for i, o in enumerate(OUTCOMES)}
#: The proof's sums are kept mod 2**64 (here, in the pre-pass and in `run.skip`).
MASK = (1 << 64) - 1
#: An enum member looked up once: `Outcome.INVALID` costs an attribute lookup a row.
_INVALID = Outcome.INVALID


def row_hash(line: int, merchant: str, reference: str, invalid: bool = False) -> int:
    """64 bits of what a row says of its line: the by-line proof's term, `invalid` or
    not included (so a valid row's line reported `invalid` does not fit). XXH3 seeded
    with the line, not Python's `hash`, which is salted per process: the skip of a
    finished prefix (`run.skip`) compares these sums with ones an earlier run saved."""
    text = f"{merchant}\x00{reference}".encode("utf-8", "surrogateescape")
    return _xxh3(text, line << 1 | invalid)


_xxh3 = xxhash.xxh3_64_intdigest


def unsent_hash(outcome: Outcome, merchant: str, reference: str) -> int:
    """63 bits of what an unsent row said: a changed line reads as changed."""
    text = f"{outcome.value}\x00{merchant}\x00{reference}".encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


#: (final outcome, the line it was reported on)
Final = tuple[Outcome, int]


@dataclass(frozen=True)
class TornRow:
    """The input lines a torn last row (cut off on resume) may have been about: their
    references are queried before a cancel, since the cut row may have been an outcome
    and a finished run removes its journal. A cut inside the line number matches every
    line it may have been (`12` of `123`: 12, 120-129, 1200-...), a cut before it any."""

    digits: str
    whole: bool  # the line number is complete: that line only

    @classmethod
    def of(cls, fragment: bytes, jsonl: bool) -> TornRow:
        start = rb'\{"line":\s*' if jsonl else rb'"?'
        m = re.match(start + rb"(\d*)(\s*,|\s*\"?,)?", fragment)
        if m is None:  # cut inside the key or before the number: any line
            return cls("", False)
        return cls(m.group(1).decode(), bool(m.group(2)) and bool(m.group(1)))

    def may_be(self, line: int) -> bool:
        text = str(line)
        return text == self.digits if self.whole else text.startswith(self.digits)

    @property
    def text(self) -> str:
        """As the run record keeps it (`torn_row`): `7`, or `12*` for 12, 120-129, ..."""
        return self.digits if self.whole else f"{self.digits}*"

    @classmethod
    def parse(cls, text: str) -> TornRow:
        return cls(text.removesuffix("*"), not text.endswith("*"))


def torn_rows(
    prior: PriorRows, runs: Iterable[Mapping[str, Any]], journaled: bool
) -> tuple[TornRow, ...]:
    """The torn rows whose lines this run queries before any cancel: this report's
    (unless the journal of the killed run that tore it names every cancel it sent: the
    run records end with that run's `start`), and those earlier runs cut off and did not
    see through (a `torn_row` in a `start` record after the last complete `end`)."""
    records = list(runs)
    carried: list[TornRow] = []
    for record in records:
        if is_end(record) and record.get("complete"):
            carried = []  # a complete run saw every line through
        elif record.get("event") == "start" and isinstance(text := record.get("torn_row"), str):
            carried.append(TornRow.parse(text))
    current = prior.torn
    if current is not None and journaled and records and records[-1].get("event") == "start":
        current = None  # a kill mid-run tore it: its journal names every cancel it sent
    found = (*carried, *([current] if current is not None else []))
    if found and not prior.by_line:  # a changed input may have moved the lines: every one
        return (TornRow("", False),)
    return found


#: Called every so often while a report is read: (rows so far, bytes read, bytes in all).
Progress = Callable[[int, int, int], None]


class ByLine:
    """The latest row's outcome per physical line: for a rerun of the same file."""

    by_line = True
    #: Bytes this structure keeps per input line (the regression guard checks it).
    BYTES_PER_LINE = 1

    def __init__(self, policy: ResumePolicy, max_line: int = 1 << 40) -> None:
        self.policy = policy
        #: no input line is beyond it (a file's size bounds its lines): a report row
        #: past it (edited by hand?) is left out, so the proof fails and the report is
        #: read by reference, instead of a bytearray as long as the number
        self.max_line = max_line
        self.rows = 0
        self.torn_bytes = 0
        self.torn: TornRow | None = None  # what a torn last row may have been about
        # low nibble: CODE of the latest relevant row; high nibble: rows on the line mod 16
        self.cells = bytearray()
        # Sum of row_hash over every row, mod 2**64.
        self.checksum = 0
        self.totals = Totals(repeat=self.repeats)
        self._relevant = policy.relevant

    def add(self, line: int, merchant: str, reference: str, outcome: Outcome) -> None:
        self.rows += 1
        hashed = row_hash(line, merchant, reference, outcome is _INVALID)
        self.checksum = (self.checksum + hashed) & MASK
        if line > self.max_line:
            return
        cells = self.cells
        if line >= len(cells):
            cells.extend(bytes(max(line + 1 - len(cells), len(cells) // 2, 1 << 16)))
        cell = cells[line]
        code = CODE[outcome] if outcome in self._relevant else cell & 0x0F
        cells[line] = ((cell + 16) & 0xF0) | code

    def latest(self, line: int) -> Outcome | None:
        code = self.cells[line] & 0x0F if line < len(self.cells) else 0
        return OUTCOMES[code - 1] if code else None

    def repeats(self, brief: Brief) -> bool:
        """Whether a row says again what its line's latest row said (a copied row)."""
        line, cells = brief[0], self.cells
        return line < len(cells) and cells[line] & 0x0F == CODE[brief[3]]

    def rows_on(self, line: int) -> int:
        """How many rows the report has on input line `line` (mod 16): the input's side
        of the proof adds `row_hash` of what the line holds now that many times."""
        return self.cells[line] >> 4 if line < len(self.cells) else 0

    def final(self, line: int, key: bytes) -> Final | None:
        outcome = self.latest(line)
        return (outcome, line) if outcome in self.policy.final else None

    def unsent_before(self, item: Rejected) -> bool:
        return self.latest(item.line) is item.outcome

    def prefetch(self, keys: Iterable[bytes], lines: Iterable[int]) -> None:
        """Nothing to fetch: everything is in memory."""


class ByKey:
    """Final outcomes by reference, unsent rows by line: for any input, in the index."""

    by_line = False

    def __init__(self, policy: ResumePolicy, store: SpillStore) -> None:
        self.policy = policy
        self.rows = 0
        self.torn_bytes = 0
        self.torn: TornRow | None = None  # what a torn last row may have been about
        self.done = KeyMap(store)  # key -> line << 4 | CODE of its final outcome
        self.unsent = KeyMap(store)  # line -> unsent_hash of what it said
        self.totals = Totals(repeat=self.repeats)

    def add(self, line: int, merchant: str, reference: str, outcome: Outcome) -> None:
        self.rows += 1
        if outcome in UNSENT:
            self.unsent.set(line, unsent_hash(outcome, merchant, reference))
            return
        if self.unsent:  # a later row on the line supersedes its unsent row
            self.unsent.delete(line)
        key = key_of(merchant, reference)
        if outcome in self.policy.final:
            self.done.set(key, line << 4 | CODE[outcome])
        elif outcome in self.policy.reopen:
            self.done.delete(key)

    def repeats(self, brief: Brief) -> bool:
        """Whether a row says again what its reference's latest final row said. Asked
        only while the map is in memory: on disk it would cost a query a row, for rows
        that only a hand edit can copy."""
        if self.done.spilled:
            return False
        line, merchant, reference, outcome = brief
        found = self.final(line, key_of(merchant, reference))
        return found is not None and found[0] is outcome

    def final(self, line: int, key: bytes) -> Final | None:
        value = self.done.get(key) if self.done else None
        return None if value is None else (OUTCOMES[(value & 0x0F) - 1], value >> 4)

    def unsent_before(self, item: Rejected) -> bool:
        if not self.unsent:
            return False
        return self.unsent.get(item.line) == unsent_hash(
            item.outcome, item.merchant, item.reference
        )

    def prefetch(self, keys: Iterable[bytes], lines: Iterable[int]) -> None:
        self.done.prefetch(keys)
        self.unsent.prefetch(lines)

    def flush(self) -> None:
        self.done.flush()
        self.unsent.flush()


PriorRows = ByLine | ByKey


def load_report(
    path: Path,
    policy: ResumePolicy,
    store: SpillStore,
    *,
    by_line: bool,
    max_line: int = 1 << 40,
    progress: Progress | None = None,
    into: ByLine | None = None,
) -> PriorRows:
    """Read an existing report (latest row wins) into the shape asked for; changes
    nothing on disk. `max_line`: no input line is beyond it (by line only); `into`: the
    `ByLine` to read it into, by line (one that watches more: `run.skip`)."""
    prior: PriorRows
    if by_line:
        prior = into if into is not None else ByLine(policy, max_line)
    else:
        prior = ByKey(policy, store)
    if not path.exists():
        return prior
    if not path.is_file():
        raise ReportError(f"report {path} is not a regular file")
    torn: list[int] = []
    size = path.stat().st_size
    tick = None if progress is None else (lambda rows, at: progress(rows, at, size))
    try:
        add = prior.add
        for line, merchant, reference, outcome in scan_report(path, torn, tick, prior.totals):
            add(line, merchant, reference, outcome)
    except OSError as exc:
        raise ReportError(f"cannot read report {path}: {exc.strerror}") from None
    if isinstance(prior, ByKey):
        prior.flush()
    prior.torn_bytes = sum(torn)
    if prior.torn_bytes:
        with open(path, "rb") as f:
            f.seek(-prior.torn_bytes, os.SEEK_END)
            prior.torn = TornRow.of(f.read(64), is_jsonl(path))
    return prior


def torn_pair(path: Path, torn_bytes: int) -> tuple[str, str] | None:
    """The (merchant, reference) a torn last row names whole, if it got that far: the
    run journals it before cutting the row off, so that a rerun that stops before that
    line leaves the next one the same query-first (`TornRow` lasts one run)."""
    with open(path, "rb") as f:
        f.seek(-torn_bytes, os.SEEK_END)
        fragment = f.read(torn_bytes).decode("utf-8", "surrogateescape")
    if is_jsonl(path):
        m = _JSON_PAIR.match(fragment)
        return None if m is None else (json.loads(m["merchant"]), json.loads(m["reference"]))
    cells = next(csv.reader([fragment.split("\n", 1)[0]]), [])
    # whole only when a separator follows the reference (a later cell was begun)
    return (cells[1], cells[2]) if len(cells) > 3 else None


_JSON_PAIR = re.compile(
    r'\{"line":\s*\d+,\s*"merchant_number":\s*(?P<merchant>"(?:[^"\\]|\\.)*"),'
    r'\s*"payment_reference":\s*(?P<reference>"(?:[^"\\]|\\.)*"),'
)


def repair_torn_tail(path: Path, torn_bytes: int) -> None:
    """Cut off a last line left without its newline (by a power cut mid-write)."""
    if torn_bytes:
        with open(path, "rb+") as f:
            f.truncate(f.seek(0, os.SEEK_END) - torn_bytes)
