"""Shard: which references belong to shard I of N.

A stable hash of (merchant, reference) (`keys.key_of`'s blake2b, not Python's salted
`hash`), so every pod of an Indexed Job agrees, every run agrees, and a reference's
duplicates land in the same shard as its first row. Rows that cannot be keyed
(unparseable lines) go by line number, so exactly one shard reports them.
"""

from __future__ import annotations

from worker.keys import key_of
from worker.model import Rejected, Row
from worker.settings import Shard


def shard_of(merchant: str, reference: str, count: int) -> int:
    return int.from_bytes(key_of(merchant, reference)[:8], "big") % count


def in_shard(item: Row | Rejected, shard: Shard) -> bool:
    if not shard.active:
        return True
    if isinstance(item, Rejected) and not item.reference:
        return item.line % shard.count == shard.index
    return shard_of(item.merchant, item.reference, shard.count) == shard.index
