"""Admission: what happens to each parsed row, in input order.

    validate -> shard -> dedup -> resume

A row of another shard is skipped; an invalid or duplicate row is reported at once and
never sent (unless an earlier run reported that line already); a row whose reference
an earlier run finished is counted, not sent; every other row is sent, flagged when
the intent journal says a killed run may already have sent its cancel. Pure
decisions over in-memory state: the job does the queueing.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.input.dedup import Deduper, key_of
from worker.input.parsed import Parsed
from worker.input.shard import in_shard
from worker.input.validate import validate
from worker.model import Outcome, Rejected, Result, Row
from worker.report.resume import PriorRows
from worker.settings import Shard

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


def unsent_before(prior: PriorRows, item: Rejected) -> bool:
    """An earlier run reported this very row unsent: same line, same outcome, same cells."""
    return prior.unsent_lines.get(item.line) == (item.outcome, item.merchant, item.reference)


def screen(parsed: Parsed, merchant: str | None, shard: Shard) -> Row | Rejected | None:
    """Validate, then keep only this shard's rows (None: another shard's)."""
    item = validate(parsed, merchant)
    if shard.active and not in_shard(item, shard):
        return None
    return item


class Admission:
    """Decides for each row: skip, report unsent, count as done, or send."""

    def __init__(
        self,
        *,
        merchant: str | None,
        shard: Shard,
        deduper: Deduper,
        prior: PriorRows,
        pending: set[bytes],
    ) -> None:
        self._merchant = merchant
        self._shard = shard
        self._deduper = deduper
        self._prior = prior
        self._pending = pending

    def __call__(self, parsed: Parsed) -> Admitted:
        item = screen(parsed, self._merchant, self._shard)
        if item is None:
            return None
        if isinstance(item, Rejected):
            return self._unsent(item)
        key = key_of(item.merchant, item.reference)  # once per row: dedup, resume, journal
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
        done = self._prior.done.get(key) if self._prior.done else None
        if done is not None:
            return Reported(done)
        return Send(item, key in self._pending)

    def _unsent(self, item: Rejected) -> Result | Reported:
        if unsent_before(self._prior, item):
            return Reported(item.outcome)
        return Result(
            item.line,
            item.merchant,
            item.reference,
            item.outcome,
            detail=item.detail,
            extra=item.extra,
        )
