"""Duplicate detection: has this (merchant, reference) pair been seen earlier in the input?

Exact answers in flat memory. A `set` of every key costs ~100 bytes a row (tens of
bytes even as digests), which is ~1 GB at ten million rows. For a file we can read
twice, a first pass feeds a Bloom filter (rbloom, ~2 bytes a row at a 0.1 % false
positive rate) and keeps the exact digests only of keys the filter had already seen:
the real duplicates plus ~0.1 % false positives. The second pass (the real run) then
needs exact memory only for those candidates. Standard input cannot be read twice,
so it remembers every 16-byte digest exactly, in a map that moves to the on-disk
index (`report.index`) once the run's memory budget is reached.

Only valid rows take part: an `invalid` row was never sent, so a corrected copy of it
later in the file is not "sent again" (README: "duplicate ... is not sent again").

Counting before sending must be exact too (the preview, `--max-references`), and the
first pass alone cannot count a key whose *first* row the filter mistook for a repeat.
So the finder remembers, per candidate, the offer that made it one (an int beside the
digest: ~120 bytes a candidate instead of ~100), and `FirstSights`, offered the same
keys in the same order by one more pass, tells exactly which candidates were first
seen at that offer: no earlier offer of theirs. It holds only the candidates seen
before they became candidates, that is the real duplicates (~90 bytes each).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import Protocol

from rbloom import Bloom

FALSE_POSITIVE_RATE = 0.001


class KeyIndex(Protocol):
    """What dedup and admission ask of an exact key -> line map that the caller keeps:
    `report.index.KeyMap`, which moves to the on-disk index past the memory budget.
    A protocol, so that the input package does not import the report package."""

    def get(self, key: bytes) -> int | None: ...

    def set(self, key: bytes, value: int) -> None: ...

    def __contains__(self, key: bytes) -> bool: ...

    def prefetch(self, keys: Iterable[bytes]) -> None:
        """Look up a chunk's keys together (a few queries when on disk)."""
        ...


class Deduper(Protocol):
    def earlier(self, key: bytes, line: int) -> int | None:
        """None the first time a key is offered; the line it was first offered on after."""
        ...

    def prefetch(self, keys: list[bytes]) -> None:
        """The keys of the next chunk, before they are offered (for state kept on disk)."""
        ...


class ExactDeduper:
    """Remembers every key (and its first line): for input read only once (stdin).

    Given a `KeyIndex`, past the memory budget the keys live in the on-disk index and a
    chunk's keys are looked up together (`prefetch`).
    """

    def __init__(self, seen: KeyIndex | None = None) -> None:
        self._seen: KeyIndex | dict[bytes, int] = {} if seen is None else seen
        self._map = seen

    def earlier(self, key: bytes, line: int) -> int | None:
        seen = self._seen
        first = seen.get(key)
        if first is None:
            if self._map is None:
                seen[key] = line  # type: ignore[index]
            else:
                self._map.set(key, line)
        return first

    def prefetch(self, keys: list[bytes]) -> None:
        if self._map is not None:
            self._map.prefetch(keys)


class CandidateDeduper:
    """Exact, given the keys a first pass found to repeat (or to collide in the filter).
    `seen`: candidates already met, and their first line (by a run that starts after
    the rows an earlier run finished: `run.skip`)."""

    def __init__(
        self, candidates: Container[bytes], seen: Mapping[bytes, int] | None = None
    ) -> None:
        self._candidates = candidates
        self._seen: dict[bytes, int] = dict(seen or {})

    def prefetch(self, keys: list[bytes]) -> None:
        """Nothing to fetch: the candidates are in memory."""

    def earlier(self, key: bytes, line: int) -> int | None:
        if key not in self._candidates:
            return None
        first = self._seen.get(key)
        if first is None:
            self._seen[key] = line
        return first


class CandidateFinder:
    """The first pass: `offer` every key; `candidates` are those that may repeat."""

    def __init__(self, expected: int) -> None:
        self._bloom = Bloom(max(expected, 1024), FALSE_POSITIVE_RATE)
        #: key -> number of the offer (from 1) that made it a candidate
        self.candidates: dict[bytes, int] = {}
        self._offers = 0

    def offer(self, key: bytes) -> bool:
        """True if the key may have been offered before (a duplicate, or ~0.1 % chance)."""
        self._offers += 1
        if key in self._bloom:
            self.candidates.setdefault(key, self._offers)
            return True
        self._bloom.add(key)
        return False


class FirstSights:
    """One more pass over the same keys: which offers the finder took for repeats were
    in fact a key's first sight (the filter's false positives), so counts are exact."""

    def __init__(self, candidates: Mapping[bytes, int]) -> None:
        self._entered = candidates
        self._offers = 0
        self._repeated: set[bytes] = set()  # candidates offered before they became one

    def offer(self, key: bytes) -> bool:
        """True for a key's first offer that the finder answered True (never counted)."""
        self._offers += 1
        entered = self._entered.get(key)
        if entered is None:
            return False
        if self._offers < entered:
            self._repeated.add(key)
            return False
        return self._offers == entered and key not in self._repeated
