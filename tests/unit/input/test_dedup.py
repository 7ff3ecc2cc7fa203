"""Duplicate detection: exact, in flat memory."""

from __future__ import annotations

import random

from worker.input.dedup import (
    CandidateDeduper,
    CandidateFinder,
    ExactDeduper,
    FirstSights,
)
from worker.keys import key_of


def test_two_pass_is_exact_and_keeps_few_candidates() -> None:
    rng = random.Random(1)
    keys = [key_of("T1", f"r{i}") for i in range(50_000)]
    repeats = [keys[rng.randrange(len(keys))] for _ in range(500)]
    stream = keys + repeats
    rng.shuffle(stream)
    finder = CandidateFinder(expected=len(stream))
    for key in stream:
        finder.offer(key)
    candidates = finder.candidates.keys()
    assert set(repeats) <= candidates
    assert len(candidates) < 500 + 300  # the rest: ~0.1 % Bloom false positives
    two_pass, exact = CandidateDeduper(candidates), ExactDeduper()
    got = [two_pass.earlier(k, line) for line, k in enumerate(stream, 2)]
    assert got == [exact.earlier(k, line) for line, k in enumerate(stream, 2)]
    # a repeat names the line of the first row with its key
    first_line = {}
    for line, k in enumerate(stream, 2):
        first_line.setdefault(k, line)
    assert got == [
        None if first_line[k] == line else first_line[k] for line, k in enumerate(stream, 2)
    ]


def test_first_sights_make_the_first_pass_count_exact() -> None:
    # a filter sized for 1,024 keys and offered 20,000: false positives by the thousand
    rng = random.Random(3)
    keys = [key_of("T1", f"r{i}") for i in range(20_000)]
    stream = keys + [keys[rng.randrange(len(keys))] for _ in range(2_000)]
    rng.shuffle(stream)
    finder = CandidateFinder(expected=1)
    counted = sum(not finder.offer(k) for k in stream)
    assert counted < len(keys) - 1_000  # the first pass alone misses many keys
    sights = FirstSights(finder.candidates)
    missed = sum(sights.offer(k) for k in stream)
    assert counted + missed == len(set(stream)) == len(keys)
    # and the run's exact deduper agrees with it: one first sight per key
    dedup = CandidateDeduper(finder.candidates)
    assert sum(dedup.earlier(k, n) is None for n, k in enumerate(stream)) == len(keys)
