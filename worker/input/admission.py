"""Admission: what happens to each parsed row, in input order.

    validate -> shard -> dedup -> resume

A row of another shard is skipped; an invalid or duplicate row is reported at once and
never sent (unless an earlier run reported that line already); a row whose reference
an earlier run finished is counted, not sent; every other row is sent, flagged when
the intent journal says a killed run may already have sent its cancel. Pure
decisions over the resume and duplicate state: the job does the queueing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Protocol

from worker.input.dedup import Deduper, KeyIndex
from worker.input.parsed import Parsed
from worker.input.shard import in_shard
from worker.input.validate import validate
from worker.keys import key_of
from worker.model import RESTATED, Outcome, Rejected, Result, Row
from worker.settings import RETRYABLE, Shard

DUPLICATE_DETAIL = "repeats an earlier row of the input"


# Not frozen, for speed (see worker/model.py); never changed after they are made.
@dataclass(slots=True)
class Send:
    """A row for the workers; `maybe_landed`: a killed run may have sent its cancel."""

    row: Row
    maybe_landed: bool = False


@dataclass(slots=True)
class Reported:
    """An earlier run's report already has this row's final outcome."""

    outcome: Outcome


Admitted = Send | Result | Reported | None


class Torn(Protocol):
    def may_be(self, line: int) -> bool:
        """Whether a torn last row of the report may have been about this input line."""
        ...


class PriorRows(Protocol):
    """What admission asks of an earlier report's rows (`report.resume`'s `ByLine` or
    `ByKey`): a protocol, so that the input package does not import the report package."""

    def prefetch(self, keys: Iterable[bytes], lines: Iterable[int]) -> None:
        """Look up a chunk's keys and lines together (a few queries when on disk)."""
        ...

    def final(self, line: int, key: bytes) -> tuple[Outcome, int] | None:
        """The final outcome an earlier run reported, and the line it was reported on."""
        ...

    def unsent_before(self, item: Rejected) -> bool:
        """Whether an earlier run already reported this unsent row on its line."""
        ...


def screen(parsed: Parsed, merchant: str | None, shard: Shard) -> Row | Rejected | None:
    """Validate, then keep only this shard's rows (None: another shard's)."""
    item = validate(parsed, merchant)
    if shard.active and not in_shard(item, shard):
        return None
    return item


def screen_batch(
    batch: list[Parsed], merchant: str | None, shard: Shard
) -> tuple[list[Row | Rejected | None], list[bytes | None]]:
    """A batch screened, with each valid row's key: the one first step of every pass
    that decides about rows (the pre-pass, the exact count, the run's admission)."""
    items = [screen(parsed, merchant, shard) for parsed in batch]
    return items, [key_of(i.merchant, i.reference) if type(i) is Row else None for i in items]


def moved_detail(outcome: Outcome, line: int) -> str:
    return (
        f"{outcome.value}{RESTATED}{line}: the changed input holds it on this line now; "
        "not sent again"
    )


class Admission:
    """Decides for each row: skip, report unsent, count as done, or send.

    `chunk` decides a chunk of rows at once, so that state kept on disk (see
    `report.index`) is asked about the whole chunk in a few queries.
    """

    def __init__(
        self,
        *,
        merchant: str | None,
        shard: Shard,
        deduper: Deduper,
        prior: PriorRows,
        pending: KeyIndex | AbstractSet[bytes],
        torn: Sequence[Torn] = (),
    ) -> None:
        """`torn`: report rows cut off whose lines are queried before any cancel
        (`report.resume.torn_rows`)."""
        self._merchant = merchant
        self._shard = shard
        self._deduper = deduper
        self._prior = prior
        self._pending = pending
        self._torn = tuple(torn)
        #: rows settled here whose reference the journal names with a final outcome that
        #: `--retry-outcomes` reopens: a killed retry run's cancel, not settled by this
        #: run, so the journal must outlive it (see `run.stages`)
        self.open_intents = 0

    def __call__(self, parsed: Parsed) -> Admitted:
        return self.chunk([parsed])[0]

    def chunk(self, batch: list[Parsed]) -> list[Admitted]:
        return self.decide(*self.screen(batch))

    def screen(self, batch: list[Parsed]) -> tuple[list[Row | Rejected | None], list[bytes | None]]:
        """`screen_batch` with this run's merchant and shard."""
        return screen_batch(batch, self._merchant, self._shard)

    def decide(
        self, items: list[Row | Rejected | None], keys: list[bytes | None]
    ) -> list[Admitted]:
        """A chunk already screened (`screen_batch`, maybe by the pre-pass), decided."""
        self._prefetch(items, keys)
        decide = self._decide
        return [
            None if item is None else decide(item, key)
            for item, key in zip(items, keys, strict=True)
        ]

    def _prefetch(self, items: list[Row | Rejected | None], keys: list[bytes | None]) -> None:
        """Ask state kept on disk about the whole chunk at once (nothing when in memory)."""
        present = [k for k in keys if k is not None]
        self._deduper.prefetch(present)
        if not isinstance(self._pending, AbstractSet):
            self._pending.prefetch(present)
        self._prior.prefetch(present, [i.line for i in items if i is not None])

    def _decide(self, item: Row | Rejected, key: bytes | None) -> Admitted:
        if key is None:
            assert isinstance(item, Rejected)
            return self._unsent(item)
        assert isinstance(item, Row)
        first = self._deduper.earlier(key, item.line)
        if first is not None:
            return self._unsent(
                Rejected(
                    item.line,
                    item.merchant,
                    item.reference,
                    Outcome.DUPLICATE,
                    f"{DUPLICATE_DETAIL} (line {first})",
                    item.extra,
                )
            )
        done = self._prior.final(item.line, key)
        if done is not None:
            outcome, line = done
            if self._pending and outcome.value in RETRYABLE and key in self._pending:
                self.open_intents += 1  # on its own line or moved: settled here either way
            if line == item.line:
                return Reported(outcome)
            # A changed input moved it: a row on its new line keeps the latest-row view
            # whole (one final row per reference, each line's row naming what it holds).
            return Result(
                item.line,
                item.merchant,
                item.reference,
                outcome,
                detail=moved_detail(outcome, line),
                extra=item.extra,
            )
        torn = self._torn
        return Send(item, key in self._pending or any(t.may_be(item.line) for t in torn))

    def _unsent(self, item: Rejected) -> Result | Reported:
        if self._prior.unsent_before(item):
            return Reported(item.outcome)
        return Result(
            item.line,
            item.merchant,
            item.reference,
            item.outcome,
            detail=item.detail,
            extra=item.extra,
        )
