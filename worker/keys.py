"""Keys: the one digest of a (merchant, reference) pair that every index agrees on.

Duplicate detection (`input.dedup`), the shard a reference belongs to
(`input.shard`), the resume view by reference (`report.resume`) and the intent
journal (`report.journal`) all look references up by this key, so it lives below
both packages: neither has to import the other for it. Plain computation, no I/O.
"""

from __future__ import annotations

import hashlib

#: 16 bytes of BLAKE2b: what every exact key map of a run is indexed by.
Key = bytes


def key_of(merchant: str, reference: str) -> Key:
    """A 128-bit digest of the pair: collisions are out of reach (~1e-24 at 1e7 rows)."""
    return hashlib.blake2b(
        f"{merchant}\x00{reference}".encode("utf-8", "surrogateescape"), digest_size=16
    ).digest()
