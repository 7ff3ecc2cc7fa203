"""Scenario 4, memory: does cancel-worker's peak RSS stay flat as the input grows?

Peak RSS is the cancel-worker process's own high-water mark (`VmHWM`, polled every
50 ms: see procs.py for why not `ru_maxrss`); inputs are generated `.csv.gz` files.

- dry-run (`run FILE --dry-run`: reader, duplicate detection, report writer; no HTTP) at
  100k / 1M / 3M references (10M with `--dry-run-10m`): the growth per reference, as a
  least-squares slope in bytes per reference;
- live, against the fast server, 100k and 1M references at `--rate 0` and at
  `--rate 1000000` (the rate guard on, never reached), each run to the end;
- live at `--rate 200`: a 1M run would take 83 minutes, so both files run time-boxed
  (SIGTERM after the same window, then the worker's normal shutdown). The reader must
  not run ahead of the throttle: `rows_read` minus `rows_reported` stays near the
  queue bound, and the 1M file's peak matches the 100k file's. The window is long
  enough for the duplicate pre-pass over the 1M file to finish and sending to go on.

For every series: "peak RSS at 1M within X % of 100k"; flat = within 20 %.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

from . import clients
from .clients import Context
from .data import ensure_input
from .procs import MB, log
from .render import run_table, section

TITLE = "memory"
FLAT = 0.20  # "flat": the larger input's peak RSS within 20 % of the smaller's
FULL_RATES = ("0", "1000000")  # live runs to the end
BOXED_RATE = "200"  # live runs stopped after a window


@dataclass
class Case:
    """One measured run: its series (a line of the chart), input size and options."""

    series: str
    n: int
    args: list[str]
    timeout: float
    live: bool = True  # against the fast server; else a dry-run (no server)
    stop_after: float | None = None  # time-boxed


def _ols_slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of peak RSS (MB) over references, in bytes per reference."""
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return round(sxy / sxx * MB, 2) if sxx else None


def _verdict(series: list[dict[str, Any]], small: int, big: int) -> dict[str, Any] | None:
    by_size = {r["references"]: r for r in series if r["ok"]}
    if small not in by_size or big not in by_size:
        return None
    a, b = by_size[small]["maxrss_mb"], by_size[big]["maxrss_mb"]
    change = b / a - 1
    return {
        "from": small,
        "to": big,
        "from_mb": a,
        "to_mb": b,
        "change_pct": round(change * 100, 2),
        "flat": abs(change) <= FLAT,
    }


def run(ctx: Context) -> dict[str, Any]:
    server = ctx.fast()
    dry_sizes = [ctx.size(n) for n in (100_000, 1_000_000, 3_000_000)]
    if ctx.dry_run_10m:
        dry_sizes.append(ctx.size(10_000_000))
    live_sizes = [ctx.size(n) for n in (100_000, 1_000_000)]
    window = 10.0 if ctx.quick else 40.0
    live = ["--concurrency", "64"]
    plan = [Case("dry-run", n, ["--dry-run"], 300 + n / 5_000, live=False) for n in dry_sizes]
    for rate in FULL_RATES:
        plan += [
            Case(f"live --rate {rate}", n, ["--rate", rate, *live], 300 + n / 200)
            for n in live_sizes
        ]
    boxed = f"live --rate {BOXED_RATE}, {window:g} s window"
    args = ["--rate", BOXED_RATE, *live]
    plan += [Case(boxed, n, args, window + 120, stop_after=window) for n in live_sizes]
    runs: list[dict[str, Any]] = []
    for case in plan:
        n = case.n
        log(f"memory: {case.series}, {n:,} references")
        one = clients.cancel_worker(
            ctx,
            server if case.live else None,
            ensure_input(n, gz=True),
            n,
            label=f"{case.series}, {n:,}",
            args=case.args,
            expect="canceled" if case.live else "would_cancel",
            timeout=case.timeout,
            stop_after=case.stop_after,
            timeline=True,
        )
        read, reported = one.extra.get("rows_read"), one.extra.get("rows_reported")
        if read is not None and reported is not None:
            one.extra["read_ahead"] = read - reported
        runs.append({"series": case.series, **asdict(one)})
        log(
            f"  maxrss {one.maxrss_mb:.1f} MB, {one.refs_per_s:,.0f} refs/s, "
            f"rows read {read}, reported {reported}"
        )
    series_names = list(dict.fromkeys(r["series"] for r in runs))
    verdicts = {}
    for name in series_names:
        mine = [r for r in runs if r["series"] == name]
        sizes = [r["references"] for r in mine]
        verdicts[name] = {
            "at_1m": _verdict(mine, sizes[0], live_sizes[1]),
            "at_largest": _verdict(mine, sizes[0], sizes[-1]),
        }
    dry = [(r["references"], r["maxrss_mb"]) for r in runs if r["series"] == "dry-run" and r["ok"]]
    steps = [
        {"from": a, "to": b, "bytes_per_ref": round((mb - ma) * MB / (b - a), 2)}
        for (a, ma), (b, mb) in pairwise(dry)
    ]
    return {
        "dry_run_sizes": dry_sizes,
        "live_sizes": live_sizes,
        "boxed_window_s": window,
        "runs": runs,
        "flat_means": f"peak RSS of the larger input within {FLAT:.0%} of the smaller's",
        "verdicts": verdicts,
        "dry_run_slope_bytes_per_ref": _ols_slope(dry),
        "dry_run_steps": steps,
        "notes": [
            f"--rate {BOXED_RATE}: time-boxed live runs ({window:g} s, then SIGTERM) because "
            f"a full {live_sizes[1]:,}-reference run at {BOXED_RATE}/s takes "
            f"{live_sizes[1] / float(BOXED_RATE) / 60:.0f} min; refs/s and done count the "
            "references finished in the window",
        ],
    }


def _verdict_line(name: str, v: dict[str, Any] | None) -> str:
    if v is None:
        return f"{name}: no verdict (a run failed or is missing)"
    return (
        f"{name}: peak RSS at {v['to']:,} within {v['change_pct']:+.1f} % of {v['from']:,} "
        f"({v['from_mb']:.1f} -> {v['to_mb']:.1f} MB): {'flat' if v['flat'] else 'NOT flat'}"
    )


def render(mem: dict[str, Any]) -> str:
    extra = {
        "rows read": "{extra[rows_read]:,}",
        "read ahead": "{extra[read_ahead]:,}",
    }
    names = ["refs", "wall s", "refs/s", "maxRSS MB", "rows read", "read ahead"]
    lines = []
    for name, v in mem["verdicts"].items():
        lines.append(_verdict_line(name, v["at_1m"]))
        if v["at_largest"] and v["at_largest"]["to"] != (v["at_1m"] or {}).get("to"):
            lines.append(_verdict_line(f"{name} (largest)", v["at_largest"]))
    if (slope := mem["dry_run_slope_bytes_per_ref"]) is not None:
        steps = ", ".join(
            f"{s['from']:,}->{s['to']:,}: {s['bytes_per_ref']:.2f}" for s in mem["dry_run_steps"]
        )
        lines.append(
            f"dry-run slope: {slope:.2f} bytes per reference (least squares over "
            f"{', '.join(f'{n:,}' for n in mem['dry_run_sizes'])}); per step: {steps}"
        )
    return section(
        "4. Memory: peak RSS (VmHWM) of the cancel-worker process, .csv.gz inputs; "
        "read ahead = rows read - rows reported",
        run_table("run", names, mem["runs"], extra),
        *lines,
        f"flat = {mem['flat_means']}",
        notes=mem["notes"],
    )
