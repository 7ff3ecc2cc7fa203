"""Generated input files: deterministic, cached in benchmarks/out/data/ across runs.

Owns the input format every client reads (`payment_reference,merchant_number`, CSV or
gzip-compressed CSV) and the cache, so scenarios ask for "n references" and the first
run pays the generation once.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from .procs import log

BENCH = Path(__file__).resolve().parent.parent
OUT = BENCH / "out"
DATA = OUT / "data"
MERCHANTS = ("P1000001", "P1000002", "P1000003", "P1000004")


def ensure_input(n: int, gz: bool = False) -> Path:
    """`payment_reference,merchant_number`, deterministic, cached; a smaller file is a prefix."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"refs-{n}.csv{'.gz' if gz else ''}"
    if path.exists():
        return path
    log(f"generating {path.relative_to(BENCH.parent)} ({n:,} references)")
    part = path.with_name(path.name + ".part")
    chunk = 200_000
    with gzip.open(part, "wb", compresslevel=1) if gz else part.open("wb") as out:
        out.write(b"payment_reference,merchant_number\n")
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            out.write(
                "".join(f"BENCH{i:012d},{MERCHANTS[i & 3]}\n" for i in range(start, stop)).encode()
            )
    part.rename(path)
    return path
