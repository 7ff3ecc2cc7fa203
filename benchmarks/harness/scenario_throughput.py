"""Scenario 1, throughput: cancel-worker beside the least code that does the same job.

Against the fast server, no effective rate limit, concurrency 64. The compared clients
run in interleaved rounds (worker, bare asyncio loop, bare uvloop loop, worker with
`--rate 0`; again; again), so a slow spell of the shared machine hits every client
alike; medians per client and ratios per round come from the same rounds. Before
round 1 every client runs once, unmeasured, on 2,000 references: without that, the
first measured run of a session came out up to 35 % slower than its later rounds.
The clients:

- `cancel-worker --rate 1000000`: the rate guard on at a rate it never reaches, i.e. the
  full per-request machinery (the headline client);
- `bare_aiohttp.py` on asyncio's loop and on uvloop (cancel-worker runs on uvloop, so
  that one is the like-for-like floor);
- `cancel-worker --rate 0`: the same without the rate guard (its cost, per round).

Once, after the rounds: `xargs -P 64 curl` and a sequential `requests` loop, on slices.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable
from dataclasses import asdict
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from . import clients
from .clients import Context, Run
from .data import ensure_input
from .procs import log
from .render import failed, run_table, section

TITLE = "throughput"
CONCURRENCY = 64
WORKER_ARGS = ["--rate", "1000000", "--concurrency", str(CONCURRENCY)]
# per-round ratios: name -> (numerator client, denominator client, figure)
RATIOS = {
    "worker/asyncio refs/s": ("worker", "asyncio", "refs_per_s"),
    "worker/uvloop refs/s": ("worker", "uvloop", "refs_per_s"),
    "worker/uvloop CPU s per 10k": ("worker", "uvloop", "cpu_s_per_10k"),
    "worker/worker --rate 0 refs/s": ("worker", "worker-rate0", "refs_per_s"),
    "worker/asyncio in-proc/s": ("worker", "asyncio", "in_process_refs_per_s"),
    "worker/uvloop in-proc/s": ("worker", "uvloop", "in_process_refs_per_s"),
}
MEDIANS = ("refs_per_s", "cpu_s_per_10k", "in_process_refs_per_s", "maxrss_mb")


def _contenders(ctx: Context, path: Path, n: int) -> dict[str, Callable[[str], Run]]:
    """Client key -> a function of the label that runs it once."""
    server = ctx.fast()
    conc = ["--concurrency", str(CONCURRENCY)]
    bare = "bare_aiohttp.py"
    timeout = 120 + n / 100

    def worker(args: list[str]) -> Callable[[str], Run]:
        return lambda label: clients.cancel_worker(
            ctx, server, path, n, label=label, args=args, timeout=timeout
        )

    found: dict[str, Callable[[str], Run]] = {
        "worker": worker(WORKER_ARGS),
        "asyncio": lambda label: clients.script(ctx, server, bare, path, n, label=label, args=conc),
    }
    if find_spec("uvloop") is not None:
        uv = [*conc, "--uvloop"]
        found["uvloop"] = lambda label: clients.script(
            ctx, server, bare, path, n, label=label, args=uv
        )
    found["worker-rate0"] = worker(["--rate", "0", *conc])
    return found


LABELS = {
    "worker": f"cancel-worker --rate 1000000 -c {CONCURRENCY}",
    "asyncio": f"bare aiohttp, asyncio loop -c {CONCURRENCY}",
    "uvloop": f"bare aiohttp, uvloop -c {CONCURRENCY}",
    "worker-rate0": f"cancel-worker --rate 0 -c {CONCURRENCY}",
}


def _logged(one: Run) -> Run:
    log(
        f"  {one.label}: {one.refs_per_s:,.0f} refs/s, {one.cpu_s_per_10k:.2f} CPU s/10k, "
        f"maxrss {one.maxrss_mb:.0f} MB" + failed(asdict(one))
    )
    return one


def _slices(ctx: Context, notes: list[str]) -> list[Run]:
    """The slow baselines, once each on a slice (rates per second compare directly)."""
    server = ctx.fast()
    runs = []
    if shutil.which("curl") and shutil.which("xargs"):
        n = ctx.size(5_000)
        label = f"xargs -P {CONCURRENCY} curl [{n:,}-ref slice]"
        path = ensure_input(n)
        runs.append(clients.curl(ctx, server, path, n, label=label, parallel=CONCURRENCY))
    else:
        notes.append("xargs + curl skipped: curl or xargs not found")
    if find_spec("requests") is not None:
        n = ctx.size(2_000)
        label = f"sequential requests [{n:,}-ref slice]"
        path = ensure_input(n)
        runs.append(clients.script(ctx, server, "seq_requests.py", path, n, label=label, args=[]))
    else:
        notes.append(
            "sequential requests skipped: `requests` not importable (pip install requests)"
        )
    return [_logged(r) for r in runs]


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.size(50_000)
    path = ensure_input(n)
    contenders = _contenders(ctx, path, n)
    notes = [] if "uvloop" in contenders else ["bare aiohttp on uvloop skipped: no uvloop"]
    log(
        f"throughput: {n:,} references, concurrency {CONCURRENCY}, {ctx.rounds} rounds of "
        f"{', '.join(contenders)}; server {ctx.fast().describe}"
    )
    n_warm = ctx.size(2_000)
    log(f" warm-up, not counted: each client once on {n_warm:,} references")
    warmup = [
        asdict(go(f"warm-up: {LABELS[key]}"))
        for key, go in _contenders(ctx, ensure_input(n_warm), n_warm).items()
    ]
    runs: list[dict[str, Any]] = []
    for number in range(1, ctx.rounds + 1):
        log(f" round {number} of {ctx.rounds}")
        for key, go in contenders.items():
            one = _logged(go(LABELS[key]))
            runs.append({**asdict(one), "key": key, "round": number})
    summary = {}
    for key in contenders:
        mine = [r for r in runs if r["key"] == key]
        good = [r for r in mine if r["ok"]]
        summary[key] = {
            "label": LABELS[key],
            "references": n,
            "ok": len(good) == len(mine),
            "rounds_ok": len(good),
            **{f: _median([r[f] for r in good]) for f in MEDIANS},
            "per_round": {f: [r[f] if r["ok"] else None for r in mine] for f in MEDIANS},
        }
    per_round = []
    for number in range(1, ctx.rounds + 1):
        here = {r["key"]: r for r in runs if r["round"] == number and r["ok"]}
        ratios: dict[str, float | None] = {}
        for name, (top, bottom, figure) in RATIOS.items():
            a, b = (here[k][figure] if k in here else None for k in (top, bottom))
            ratios[name] = round(a / b, 3) if a and b else None
        per_round.append({"round": number, **ratios})
    return {
        "references": n,
        "concurrency": CONCURRENCY,
        "rounds": ctx.rounds,
        "order": list(contenders),
        "server": ctx.fast().describe,
        "clients": summary,
        "ratios_per_round": per_round,
        "ratios_median": {k: _median([r[k] for r in per_round]) for k in RATIOS},
        "runs": runs,
        "warmup": warmup,
        "slices": [asdict(r) for r in _slices(ctx, notes)],
        "notes": notes,
    }


def render(tp: dict[str, Any]) -> str:
    rows = []
    for c in tp["clients"].values():
        by_round = " / ".join(
            "-" if v is None else f"{v:,.0f}" for v in c["per_round"]["refs_per_s"]
        )
        rows.append({**c, "by_round": by_round})
    rows += [{**r, "by_round": "1 run"} for r in tp["slices"]]
    extra = {"refs/s by round": "{by_round}"}
    names = ["refs/s", "CPU s per 10k refs", "in-proc/s", "maxRSS MB", "refs/s by round"]
    lines = [f"per-round ratios (rounds 1..{tp['rounds']}; median):"]
    for name, median in tp["ratios_median"].items():
        values = ["-" if r[name] is None else f"{r[name]:.2f}" for r in tp["ratios_per_round"]]
        shown = "-" if median is None else f"{median:.2f}"
        lines.append(f"  {name}: {' '.join(values)} (median {shown})")
    return section(
        f"1. Throughput: {tp['references']:,} refs, c={tp['concurrency']}, "
        f"interleaved rounds: {tp['rounds']}; medians ({tp['server']})",
        run_table("client", names, rows, extra),
        *lines,
        notes=tp["notes"],
    )
