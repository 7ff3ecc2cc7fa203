"""Scenario 4, memory: does cancel-worker's peak RSS stay flat as the input grows?

`.csv.gz` inputs through `cancel-worker run FILE --dry-run` (reader, duplicate detection,
report writer; no HTTP) and through the real HTTP path against the fast server. Peak
RSS is the cancel-worker process's own high-water mark (`VmHWM`, polled every 50 ms;
see procs.py for why not `ru_maxrss`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from . import clients
from .clients import Context
from .data import ensure_input
from .procs import log
from .render import run_table, section

TITLE = "memory"


def run(ctx: Context) -> dict[str, Any]:
    server = ctx.fast()
    sizes = [ctx.size(n) for n in (100_000, 1_000_000, 10_000_000)]
    http_sizes = sizes[:1] if ctx.quick else sizes[:2]
    runs: list[dict[str, Any]] = []
    for n in sizes:
        path = ensure_input(n, gz=True)
        log(f"memory: dry-run {n:,} references")
        one = clients.cancel_worker(
            ctx,
            None,
            path,
            n,
            label=f"dry-run {n:,}",
            args=["--dry-run"],
            expect="would_cancel",
            timeout=300 + n / 5_000,
        )
        runs.append({"mode": "dry-run", **asdict(one)})
        log(f"  maxrss {one.maxrss_mb:.1f} MB, {one.refs_per_s:,.0f} rows/s")
    for n in http_sizes:
        path = ensure_input(n, gz=True)
        log(f"memory: HTTP {n:,} references against {server.kind}")
        one = clients.cancel_worker(
            ctx,
            server,
            path,
            n,
            label=f"HTTP {n:,} --rate 0 -c 64",
            args=["--rate", "0", "--concurrency", "64"],
            timeout=300 + n / 200,
        )
        runs.append({"mode": "http", **asdict(one)})
        log(f"  maxrss {one.maxrss_mb:.1f} MB, {one.refs_per_s:,.0f} refs/s")
    skipped = [n for n in sizes if n not in http_sizes]
    verdicts = {}
    for mode in ("dry-run", "http"):
        mine = [r for r in runs if r["mode"] == mode and r["ok"]]
        if len(mine) >= 2:
            small, big = mine[0], mine[-1]
            growth = big["maxrss_mb"] / small["maxrss_mb"]
            verdicts[mode] = {
                "from": small["references"],
                "to": big["references"],
                "maxrss_growth": round(growth, 3),
                "flat": growth <= 1.2,
            }
    notes = [
        f"HTTP path skipped for {', '.join(f'{n:,}' for n in skipped)} references "
        "(at the measured rate it would take too long; the dry-run covers the reader, "
        "duplicate detection and report writer at that size)"
    ]
    return {
        "sizes": sizes,
        "runs": runs,
        "flat_means": "maxRSS at the largest size within 20% of the smallest",
        "verdicts": verdicts,
        "notes": notes,
    }


def render(mem: dict[str, Any]) -> str:
    verdicts = [
        f"{mode}: maxRSS x{v['maxrss_growth']:.2f} from {v['from']:,} to {v['to']:,} "
        f"-> {'flat' if v['flat'] else 'NOT flat'} (flat = within 20%)"
        for mode, v in mem["verdicts"].items()
    ]
    return section(
        "4. Memory (peak RSS of the cancel-worker process; .csv.gz inputs)",
        run_table("run", ["refs", "wall s", "refs/s", "maxRSS MB"], mem["runs"]),
        *verdicts,
        notes=mem["notes"],
    )
