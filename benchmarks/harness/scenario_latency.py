"""Scenario 2, latency: how close cancel-worker gets to concurrency / latency.

The server (the aiohttp fallback: stock nginx cannot sleep) adds 100 ms to every
payment call, so the ideal is 50 / 0.1 s = 500 references/s at `--concurrency 50`.
Reported as achieved / ideal, from wall time and from the tool's own elapsed time;
the bare aiohttp loop runs the same input for reference.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from . import clients
from .clients import Context
from .data import ensure_input
from .procs import log
from .render import run_table, section
from .servers import dedicated

TITLE = "latency"


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.size(5_000)
    conc = 50
    delay = 0.1
    ideal = conc / delay
    path = ensure_input(n)
    with dedicated(ctx.procs, delay=delay) as server:
        log(f"latency: {n:,} references, concurrency {conc}, server {server.describe}")
        label = f"cancel-worker --rate 0 -c {conc}"
        args = ["--rate", "0", "--concurrency", str(conc)]
        cw = clients.cancel_worker(
            ctx, server, path, n, label=label, args=args, timeout=120 + 4 * n / ideal
        )
        label, args = f"bare aiohttp -c {conc}", ["--concurrency", str(conc)]
        bare = clients.script(ctx, server, "bare_aiohttp.py", path, n, label=label, args=args)
    runs = []
    for one in (cw, bare):
        achieved = one.in_process_refs_per_s or one.refs_per_s
        runs.append(
            {
                **asdict(one),
                "ideal_refs_per_s": ideal,
                "achieved_over_ideal_wall": round(one.refs_per_s / ideal, 3),
                "achieved_over_ideal_in_process": round(achieved / ideal, 3),
            }
        )
        log(f"  {one.label}: {one.refs_per_s:.0f}/s wall, {achieved:.0f}/s in-process")
    return {
        "references": n,
        "concurrency": conc,
        "delay_s": delay,
        "ideal_refs_per_s": ideal,
        "server": server.describe,
        "runs": runs,
        "notes": ["nginx has no stock sleep, so the 100 ms server is the aiohttp fallback"],
    }


def render(lat: dict[str, Any]) -> str:
    title = (
        f"2. Latency-bound: +{lat['delay_s'] * 1000:.0f} ms per call, "
        f"{lat['references']:,} refs, c={lat['concurrency']}, "
        f"ideal {lat['ideal_refs_per_s']:.0f}/s ({lat['server']})"
    )
    extra = {
        "of ideal (wall)": "{achieved_over_ideal_wall:.1%}",
        "of ideal (in-proc)": "{achieved_over_ideal_in_process:.1%}",
    }
    names = ["refs/s", "of ideal (wall)", "in-proc/s", "of ideal (in-proc)"]
    return section(title, run_table("client", names, lat["runs"], extra), notes=lat["notes"])
