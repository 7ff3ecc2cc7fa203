"""What binding a report to its input costs: SHA-256 over the input's bytes.

The hash (with a mark every 64 KiB, worker/input/fingerprint.py) is taken during the
duplicate pre-pass, which reads the file anyway, and taken again by the run's own read,
which checks each block against the marks before parsing it (so a file that changes
under the run is never sent from). This measures both reads over a generated CSV with
and without it, and hashlib's raw speed, and prints CPU seconds per GB (process time,
so that other load on the machine does not count).
Usage: python benchmarks/fingerprint.py [--mb 200]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

from worker.input.fingerprint import Fingerprint, Recorder
from worker.input.source import open_input

ROW = b"EOD-2026-11-26-%08d,T123456,customer cancelled order %08d\n"


def generate(path: Path, megabytes: int) -> int:
    rows = megabytes * (1 << 20) // len(ROW % (0, 0))
    with open(path, "wb") as f:
        f.write(b"payment_reference,merchant_number,comment\n")
        for start in range(0, rows, 10_000):
            f.write(b"".join(ROW % (i, i) for i in range(start, min(rows, start + 10_000))))
    return rows


def read_all(path: Path, hashing: bool, checked: Fingerprint | None = None) -> float:
    source = open_input(str(path))
    source.digest = Recorder() if hashing else None
    if checked is not None:
        source.expect(checked)
    started = time.process_time()
    for _ in source.rows():
        pass
    source.close()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the generated input")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.csv"
        rows = generate(path, args.mb)
        gb = os.path.getsize(path) / 1e9
        data = os.urandom(1 << 26)
        started = time.process_time()
        for _ in range(8):
            hashlib.sha256(data).digest()
        raw = (time.process_time() - started) / (8 * len(data) / 1e9)
        plain = min(read_all(path, False) for _ in range(3))
        hashed = min(read_all(path, True) for _ in range(3))
        recorder = Recorder()
        recorder.update(path.read_bytes())
        checked = min(read_all(path, False, recorder.fingerprint()) for _ in range(3))
    print(f"input: {rows:,} rows, {gb * 1000:,.0f} MB")
    print(f"sha256 alone: {raw:.2f} s per GB")
    print(
        f"pre-pass read+parse: {plain / gb:.2f} s per GB without the hash, {hashed / gb:.2f} with"
    )
    print(f"fingerprint cost: {(hashed - plain) / gb:.2f} s per GB")
    print(
        f"run read checked against it: {checked / gb:.2f} s per GB, "
        f"{(checked - plain) / gb:.2f} s per GB for the check"
    )


if __name__ == "__main__":
    main()
