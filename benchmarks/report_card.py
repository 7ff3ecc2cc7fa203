"""What the report card costs: seconds to build the page, its size, and peak memory,
for reports of 100k and 1M rows with 1 % follow-ups.

Each report is generated (seeded, cached in benchmarks/out/data/) as two runs of a
night write it: a run stopped by SIGTERM after 60 % of the rows, then the resume,
with a few failed rows retried; 20 cancels a second over 50 merchants and four
currencies; follow-ups: 0.5 % not_cancelable, 0.3 % not_found, 0.1 % invalid,
0.05 % rejected, 0.05 % failed. The page is built by `cancel-worker report-card` in
a fresh process each time, timed around the process, with its peak RSS from the OS.

Wall time is what a person waits on this machine; CPU time is the child's own.
Usage: python benchmarks/report_card.py [--rows 100000 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from worker.model import EXTRA_COLUMNS, REPORT_COLUMNS

OUT = Path(__file__).resolve().parent / "out" / "data"
CURRENCIES = (("EUR", 0.6), ("SEK", 0.2), ("NOK", 0.15), ("JPY", 0.05))
FOLLOW_UPS = (
    ("not_cancelable", 0.005),
    ("not_found", 0.003),
    ("invalid", 0.001),
    ("rejected", 0.0005),
    ("failed", 0.0005),
)
DETAILS = {
    "not_cancelable": "payment is Captured: refund it instead",
    "not_found": "No payment could be found, check that you used the correct payment identifier.",
    "invalid": "empty payment reference",
    "rejected": "Forbidden: the merchant does not allow this",
    "failed": "timeout after 5 attempts",
}
START = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """A report of `rows` references written by a killed run and its resume."""
    rng = random.Random(seed)
    stop = int(rows * 0.6)
    records = []
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow([*REPORT_COLUMNS, *EXTRA_COLUMNS, "comment"])
        for i in range(rows):
            run = "r1" if i < stop else "r2"
            at = START + timedelta(seconds=i / 20 + (600 if run == "r2" else 0))
            outcome, draw = "canceled", rng.random()
            for name, share in FOLLOW_UPS:
                if draw < share:
                    outcome = name
                    break
                draw -= share
            currency = rng.choices([c for c, _ in CURRENCIES], [s for _, s in CURRENCIES])[0]
            amount = rng.randrange(100, 500_000)
            ref = f"EOD-2026-11-26-{i:08d}"
            kept = outcome in ("canceled", "not_cancelable")
            state = "Captured" if outcome == "not_cancelable" else ""
            if outcome == "canceled" and draw < 0.0002:  # failed first, canceled on resume
                w.writerow(_row(i, ref, "failed", "", "", DETAILS["failed"], at, "r1", rng))
            detail = DETAILS.get(outcome, "")
            w.writerow(
                _row(
                    i,
                    ref if outcome != "invalid" else "",
                    outcome,
                    amount if kept else "",
                    currency if kept else "",
                    detail,
                    at,
                    run,
                    rng,
                    state,
                )
            )
    end1 = START + timedelta(seconds=stop / 20)
    records.append(_record("r1", START, end1, 143, False))
    records.append(_record("r2", end1 + timedelta(seconds=600), at, 5, True))
    tmp.replace(path)
    path.with_name(path.name + ".runs.jsonl").write_bytes(
        b"".join(orjson.dumps(r) + b"\n" for r in records)
    )


def _row(
    i: int,
    ref: str,
    outcome: str,
    amount: object,
    currency: str,
    detail: str,
    at: datetime,
    run: str,
    rng: random.Random,
    state: str = "",
) -> list[object]:
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    merchant = f"T{100000 + rng.randrange(50)}"
    return [
        i + 2,
        merchant,
        ref,
        outcome,
        "",
        "",
        state,
        1,
        detail,
        stamp,
        amount,
        currency,
        run,
        "nightly void",
    ]


def _record(run_id: str, start: datetime, end: datetime, code: int, complete: bool) -> dict:
    def z(t: datetime) -> str:
        return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return {
        "run_id": run_id,
        "mode": "run",
        "started_at": z(start),
        "finished_at": z(end),
        "input": "nightly.csv",
        "shard": "0/1",
        "exit_code": code,
        "complete": complete,
    }


def build(report: Path) -> tuple[float, float, int, int]:
    """Wall and CPU seconds, page bytes and peak RSS (KiB) of one page, in a fresh
    process (CPU: the child's user + system time, which other load does not inflate)."""
    page = report.with_name(report.name + ".html")
    code = (
        "import resource, sys; from pathlib import Path; from worker.page.write import write_card;"
        "write_card(Path(sys.argv[1]));"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    cpu = _children_cpu()
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, str(report)], capture_output=True, check=True, text=True
    )
    seconds = time.perf_counter() - began
    return seconds, _children_cpu() - cpu, page.stat().st_size, int(done.stdout.strip())


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def baseline_rss() -> int:
    """Peak RSS (KiB) of a process that only imports what the page needs."""
    code = (
        "import resource; import worker.page.write;"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    return int(done.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    base = baseline_rss()
    print(f"imports alone: peak RSS {base / 1024:.0f} MiB ({os.cpu_count()} CPUs)")
    print("| rows | report | page | wall s | CPU s | rows per CPU s | peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for rows in args.rows:
        report = OUT / f"card-{rows}.report.csv"
        if not report.exists():
            print(f"generating {report} ...", file=sys.stderr)
            generate(report, rows)
        runs = [build(report) for _ in range(args.repeat)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        size, rss = runs[-1][2], max(r[3] for r in runs)
        print(
            f"| {rows:,} | {report.stat().st_size / 1e6:,.0f} MB | {size / 1024:,.0f} KB "
            f"| {wall:.2f} | {cpu:.2f} | {rows / cpu:,.0f} | {rss / 1024:.0f} MiB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
