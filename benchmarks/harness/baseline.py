"""What the two baseline scripts share, so they differ only in how they send.

`bare_aiohttp.py` and `seq_requests.py` read the same input, build the same URL, write
the same output line and print the same JSON summary (which `clients.script` checks);
keeping that here means a difference in their figures is a difference in the HTTP
client, not in the bookkeeping. Standard library only: it runs inside the measured
process.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterator
from typing import TextIO
from urllib.parse import quote


def rows(src: TextIO) -> Iterator[tuple[str, str]]:
    """(payment_reference, merchant_number) per input row, header skipped."""
    reader = csv.reader(src)
    next(reader)  # header: payment_reference,merchant_number
    return ((row[0], row[1]) for row in reader)


def cancel_url(base: str, merchant: str, ref: str) -> str:
    m, r = quote(merchant, safe=""), quote(ref, safe="")
    return f"{base}/v1/merchants/{m}/payments/{r}/cancel/"


def api_base() -> str:
    return os.environ["BAMBORA_API_URL"].rstrip("/")


class Tally:
    """Counts 201s, writes one CSV line per reference, prints the summary at the end."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.counts = {"ok": 0, "bad": 0}
        self.started = time.perf_counter()

    def add(self, merchant: str, ref: str, status: int, state: str) -> None:
        self.counts["ok" if status == 201 else "bad"] += 1
        self.out.write(f"{merchant},{ref},{status},{state}\n")

    def finish(self) -> int:
        """Print the JSON summary line; exit status 1 if any reference did not answer 201."""
        elapsed = time.perf_counter() - self.started
        done = self.counts["ok"] + self.counts["bad"]
        summary = {**self.counts, "references": done, "elapsed_seconds": round(elapsed, 3)}
        summary["references_per_second"] = round(done / elapsed, 1) if elapsed > 0 else 0.0
        print(json.dumps(summary), flush=True)
        return 0 if self.counts["bad"] == 0 else 1
