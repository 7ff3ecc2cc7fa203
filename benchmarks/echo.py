"""What the report's echoed input columns cost: `--echo-columns all` against `none`.

A dry run (parse, validate, dedup, write a row per reference: the per-row work the
echo adds to, with no network to hide it) over a generated CSV that has three columns
besides the reference and the merchant. Rounds alternate the two settings; the table
gives the median references per second, CPU and peak RSS of each.

    python benchmarks/echo.py [--rows 500000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from harness.procs import Measured, Processes, measure

ROW = "ECHO{0:010d},T123456,order-{0},{1}.{2:02d},Customer number {0}\n"


def generate(path: Path, rows: int) -> None:
    with open(path, "w") as f:
        f.write("payment_reference,merchant_number,order_id,amount_text,customer\n")
        for start in range(0, rows, 100_000):
            f.write(
                "".join(
                    ROW.format(i, i % 997, i % 100)
                    for i in range(start, min(rows, start + 100_000))
                )
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    worker = str(Path(sys.executable).with_name("cancel-worker"))
    procs = Processes()
    results: dict[str, list[Measured]] = {"all": [], "none": []}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.csv"
        generate(src, args.rows)
        for n in range(args.rounds):
            for echo in ("all", "none"):
                report = Path(tmp) / f"r-{echo}-{n}.csv"
                cmd = [worker, "run", str(src), "--dry-run", "--report", str(report)]
                cmd += ["--echo-columns", echo, "--log-format", "json"]
                got = measure(procs, cmd, env={}, cwd=Path(tmp), timeout=600)
                if got.returncode != 0:
                    print(f"run failed with exit {got.returncode}: {cmd}", file=sys.stderr)
                    return 1
                results[echo].append(got)
    print(f"{args.rows:,} rows, dry run, median of {args.rounds} interleaved rounds\n")
    print("| --echo-columns | refs/s | CPU s per 100k rows | peak RSS MB |")
    print("|---|---:|---:|---:|")
    for echo, runs in results.items():
        rate = statistics.median(args.rows / r.wall for r in runs)
        cpu = statistics.median(r.cpu for r in runs) / args.rows * 100_000
        rss = statistics.median(r.maxrss_mb for r in runs)
        print(f"| {echo} | {rate:,.0f} | {cpu:.2f} | {rss:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
