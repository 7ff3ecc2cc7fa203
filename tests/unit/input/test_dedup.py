"""Duplicate detection: exact, in flat memory."""

from __future__ import annotations

import random

from worker.input.dedup import CandidateDeduper, ExactDeduper, find_candidates, key_of


def test_two_pass_is_exact_and_keeps_few_candidates() -> None:
    rng = random.Random(1)
    keys = [key_of("T1", f"r{i}") for i in range(50_000)]
    repeats = [keys[rng.randrange(len(keys))] for _ in range(500)]
    stream = keys + repeats
    rng.shuffle(stream)
    candidates = find_candidates(iter(stream), expected=len(stream))
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


def test_merchant_is_part_of_the_key() -> None:
    assert key_of("T1", "a") != key_of("T2", "a")
    assert key_of("T1", "a\x00b") != key_of("T1\x00a", "b") or key_of("T1", "ab") != key_of(
        "T1a", "b"
    )
