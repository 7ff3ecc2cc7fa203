"""Skip: where a rerun of the same file may start reading, past the rows it finished.

A rerun of a big night killed late would parse every finished row twice (the pre-pass,
then the run) before its first request. With the survey an earlier run saved
(`report.survey`), it reads the report as before, then starts both passes at the last
checkpoint before which the report proves every row finished:

- every line before it with a row has, as its latest, an outcome final for this mode
  or a row never sent (`invalid`, `duplicate`), and no other;
- a line with more than one row is one a run recorded sending again (`survey.again`,
  with its row's hash), and as many lines have a row as the checkpoint counted rows;
- the by-line proof (`resume.ByLine`) holds over the whole report, the checkpoint's
  sum of `row_hash` (plus the recorded hash for each extra row) standing for the
  input's rows before it: each report row is the row its line holds. `prepare` checks
  it after the pre-pass, as for any by-line rerun; a report that does not fit is read
  by reference, the whole file with it.

Before the checkpoint nothing is parsed: those rows count as settled with the outcome
the report has for them, and the duplicate check learns where the report first has
each saved candidate (a valid row's first sight is never `invalid` or `duplicate`).
The survey must also have been saved under this run's screening by every run the
report records, and the file must still hash to what the survey read, or there is no
skip (`prepare` checks both). Usage::

    prior = load_report(..., into=Watched(policy, max_line, saved))
    start = plan(prior, policy)                   # None: read the whole file
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from worker.input.checkpoint import Checkpoint
from worker.input.dedup import KeyIndex
from worker.keys import key_of
from worker.model import UNSENT, Outcome
from worker.report.resume import CODE, MASK, OUTCOMES, ByLine, ResumePolicy
from worker.report.survey import SavedSurvey
from worker.run.prepass import Start
from worker.settings import RETRYABLE

#: Final outcomes `--retry-outcomes` may reopen.
_REOPENED = frozenset(o for o in Outcome if o.value in RETRYABLE)


class Watched(ByLine):
    """`ByLine`, also noting the first line each saved candidate has a sent row on, and
    the lines of journaled references whose outcome a retry may reopen."""

    def __init__(
        self,
        policy: ResumePolicy,
        max_line: int,
        saved: SavedSurvey,
        pending: KeyIndex | AbstractSet[bytes] = frozenset(),
    ) -> None:
        """`pending`: the keys the intent journal leaves open (see `before`)."""
        super().__init__(policy, max_line)
        self.saved = saved
        self._pending = pending
        self._journaled = bool(pending)  # asked once: a map on disk answers it by a query
        self._marks = [c.line for c in saved.checkpoints]
        #: rows of a journaled reference with an outcome `--retry-outcomes` reopens, by
        #: span: span i holds the lines below checkpoint i and not below the one before
        self.opened = [0] * (len(self._marks) + 1)
        self.pairs = {pair: key_of(*pair) for pair in saved.candidates}
        self._references = {reference for _, reference in saved.candidates}
        self.first_seen: dict[bytes, int] = {}

    def add(self, line: int, merchant: str, reference: str, outcome: Outcome) -> None:
        if reference in self._references and outcome not in UNSENT:
            key = self.pairs.get((merchant, reference))
            if key is not None and line < self.first_seen.get(key, line + 1):
                self.first_seen[key] = line
        if (
            outcome in _REOPENED
            and self._journaled
            and key_of(merchant, reference) in self._pending
        ):
            self.opened[bisect_right(self._marks, line)] += 1
        super().add(line, merchant, reference, outcome)

    def opened_before(self, line: int) -> int:
        """The rows counted in `opened` on lines below `line`, a checkpoint's line."""
        return sum(self.opened[: bisect_left(self._marks, line) + 1])


def plan(prior: Watched, policy: ResumePolicy) -> Start | None:
    """The last checkpoint the report proves finished before, or None (see above)."""
    saved, again = prior.saved, prior.saved.again
    ok_codes = {CODE[o] for o in policy.final | UNSENT}
    # per line: 0 it cannot be passed, 1 no row or one that fits, 2 more rows, the latest fits
    kind = bytes(
        0 if b and not (b >> 4 and b & 0x0F in ok_codes) else 2 if b >> 4 >= 2 else 1
        for b in range(256)
    )
    cells = prior.cells
    kinds = cells.translate(kind)  # one copy of the cells' size, none of them kept
    limit = kinds.find(0, 1)  # the first line it cannot pass (-1: none)
    line = kinds.find(2, 1)  # the first with more rows
    best: int | None = None
    with_rows = extra = best_extra = 0
    done = 1  # lines below this are counted in `with_rows`
    for i, mark in enumerate(saved.checkpoints):
        while line != -1 and line < mark.line and (limit == -1 or line < limit):
            if line not in again:  # reported twice, by no run the survey knows of
                limit = line
                break
            extra += ((cells[line] >> 4) - 1) * again[line]  # the rows after the first
            line = kinds.find(2, line + 1)
        if limit != -1 and limit < mark.line:
            break
        end = max(min(mark.line, len(cells)), done)
        with_rows += (end - done) - cells.count(0, done, end)
        done = end
        if with_rows != mark.rows:  # a row not finished (in flight at a kill?) before it
            break
        best, best_extra = i, extra
    if best is None:
        return None
    at = saved.checkpoints[best]
    return Start(
        at=at,
        candidates={key: pair for pair, key in prior.pairs.items()},
        first_seen={k: line for k, line in prior.first_seen.items() if line < at.line},
        checkpoints=list(saved.checkpoints[: best + 1]),
        again={k: h for k, h in again.items() if k < at.line},
        extra=best_extra & MASK,
    )


@dataclass(frozen=True)
class Before:
    """What the rows before the checkpoint stand for in the run (`Reader`)."""

    at: Checkpoint
    settled: Counter[Outcome]  # their outcomes, as the report has them
    open_intents: int  # as `Admission.open_intents` would have counted them


def before(prior: Watched, at: Checkpoint) -> Before:
    """The rows before `at` as the run would have found them (their latest outcome)."""
    latest = bytes(b & 0x0F if b >> 4 else 0 for b in range(256))  # a line with rows
    codes = prior.cells.translate(latest)
    settled = Counter({o: n for o in OUTCOMES if (n := codes.count(CODE[o], 0, at.line))})
    return Before(at, settled, prior.opened_before(at.line))
