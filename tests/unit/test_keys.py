"""The key of a (merchant, reference) pair: stable, and the merchant is part of it."""

from __future__ import annotations

from worker.keys import key_of


def test_merchant_is_part_of_the_key() -> None:
    assert key_of("T1", "a") != key_of("T2", "a")
    assert key_of("T1", "ab") != key_of("T1a", "b")


def test_the_key_is_the_same_in_every_version() -> None:
    # Journals and shard assignments outlive a process and an upgrade: the digest of
    # a pair must never change (BLAKE2b-128 of "merchant NUL reference", UTF-8).
    assert key_of("T1", "ref-1").hex() == "de881a0ecc519925c33bb1f046a040b6"
    assert len(key_of("T1", "\udcff")) == 16  # a lone surrogate from the input is kept
