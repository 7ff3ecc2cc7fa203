"""What binding a report to its input costs: SHA-256 over the input's bytes.

The hash is taken during the duplicate pre-pass, which reads the file anyway; this
measures the pre-pass over a generated CSV with and without it, and hashlib's raw
speed, and prints seconds per GB. Usage: python benchmarks/fingerprint.py [--mb 200]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

from worker.input.source import open_input

ROW = b"EOD-2026-11-26-%08d,T123456,customer cancelled order %08d\n"


def generate(path: Path, megabytes: int) -> int:
    rows = megabytes * (1 << 20) // len(ROW % (0, 0))
    with open(path, "wb") as f:
        f.write(b"payment_reference,merchant_number,comment\n")
        for start in range(0, rows, 10_000):
            f.write(b"".join(ROW % (i, i) for i in range(start, min(rows, start + 10_000))))
    return rows


def read_all(path: Path, hashing: bool) -> float:
    source = open_input(str(path))
    if not hashing:
        source.digest = None
    started = time.perf_counter()
    for _ in source.rows():
        pass
    source.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the generated input")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.csv"
        rows = generate(path, args.mb)
        gb = os.path.getsize(path) / 1e9
        data = os.urandom(1 << 26)
        started = time.perf_counter()
        for _ in range(8):
            hashlib.sha256(data).digest()
        raw = (time.perf_counter() - started) / (8 * len(data) / 1e9)
        plain = min(read_all(path, False) for _ in range(3))
        hashed = min(read_all(path, True) for _ in range(3))
    print(f"input: {rows:,} rows, {gb * 1000:,.0f} MB")
    print(f"sha256 alone: {raw:.2f} s per GB")
    print(
        f"pre-pass read+parse: {plain / gb:.2f} s per GB without the hash, {hashed / gb:.2f} with"
    )
    print(f"fingerprint cost: {(hashed - plain) / gb:.2f} s per GB")


if __name__ == "__main__":
    main()
