"""Count: exactly how many references a run on a file will send, per merchant.

The pre-pass counts a row as one to send when the duplicate filter has not seen its
key before and no earlier run settled it. A key whose first row the filter took for
a repeat (a false positive, ~0.1 % of keys, see `dedup`) is missing from that count,
so on 20,000 distinct references it said 20,000 or 19,999 from one process to the
next (the filter's hashes are salted per process). Settling reads the file once more,
checked against the pre-pass's fingerprint so it is the same bytes, and adds exactly
those keys (`FirstSights`). Nothing is kept per row, so memory stays flat.

It is done only when a count is shown or checked (the preview, `--max-references`):
a run nobody asks about costs no third read (3 to 4 us a row).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

from worker.errors import InputError
from worker.input.admission import screen_batch
from worker.input.dedup import FirstSights
from worker.input.fingerprint import Fingerprint
from worker.input.source import Source
from worker.report.resume import PriorRows
from worker.settings import Settings


class Counts:
    """merchant -> references to send: the pre-pass's count, settled on first use."""

    def __init__(
        self,
        settings: Settings,
        prior: PriorRows,
        reopen: Callable[[], Source],
        fingerprint: Fingerprint,
        candidates: Mapping[bytes, int],
        counted: Counter[str],
    ) -> None:
        self._settings = settings
        self._prior = prior
        self._reopen = reopen
        self._fingerprint = fingerprint
        self._candidates = candidates
        self._counted = counted
        self._exact: Counter[str] | None = None

    def exact(self) -> Counter[str]:
        """The exact count; raises InputError if the file cannot be read again as it was."""
        if self._exact is None:
            self._exact = self._counted + self._first_sights()
        return self._exact

    def _first_sights(self) -> Counter[str]:
        """Keys the pre-pass did not count: first rows the filter took for repeats."""
        s, prior = self._settings, self._prior
        missed: Counter[str] = Counter()
        if not self._candidates:
            return missed
        sights = FirstSights(self._candidates)
        source = self._reopen()
        source.digest = None
        source.expect(self._fingerprint)
        try:
            for batch in source.batches():
                items, keys = screen_batch(batch, s.merchant, s.shard)
                for item, key in zip(items, keys, strict=True):
                    if key is None:  # the keys the pre-pass offered, in its order
                        continue
                    assert item is not None
                    if sights.offer(key) and prior.final(item.line, key) is None:
                        missed[item.merchant] += 1
        except OSError as exc:
            raise InputError(f"cannot read input {s.input}: {exc.strerror or exc}") from None
        finally:
            source.close()
        return missed
