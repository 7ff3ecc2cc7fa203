"""Print a cancel-worker report as a table for people: `make demo` uses it.

Shows every row's line, merchant, reference, outcome, HTTP status, payment state and
detail (cut to fit), then the count of each outcome; given the run's exit code too,
what that code means (worker/exits.py).
"""

from __future__ import annotations

import csv
import sys
from collections import Counter

from worker.exits import summary_line

COLUMNS = (
    ("line", 4),
    ("merchant_number", 8),
    ("payment_reference", 24),
    ("outcome", 16),
    ("http_status", 4),
    ("payment_state", 10),
    ("detail", 60),
)


def cut(text: str, width: int) -> str:
    text = " ".join(text.split())  # a comment's line breaks would break the table
    return text if len(text) <= width else text[: width - 1] + "…"


def main(path: str, exit_code: str | None = None) -> int:
    with open(path, newline="", encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["line"]))
    print("  ".join(name[:width].ljust(width) for name, width in COLUMNS))
    for row in rows:
        print("  ".join(cut(row[name], width).ljust(width) for name, width in COLUMNS))
    counts = Counter(r["outcome"] for r in rows)
    print("\noutcomes: " + ", ".join(f"{o} {n}" for o, n in counts.most_common()))
    if exit_code is not None:
        print(f"\ncancel-worker exited {exit_code}: {summary_line(int(exit_code))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
