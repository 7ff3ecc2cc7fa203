"""Scenario 1, throughput: cancel-worker beside the least code that does the same job.

Against the fast server, no rate limit, concurrency 64: cancel-worker, the bare aiohttp
loop (`bare_aiohttp.py`) on asyncio's loop and on uvloop, `xargs -P 64 curl` on a slice
and a sequential `requests` loop on a smaller slice. Reported: references/s, CPU per
10,000 references, peak RSS, and cancel-worker's ratios to the two bare loops.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from importlib.util import find_spec
from typing import Any

from . import clients
from .clients import Context, Run
from .data import ensure_input
from .procs import log
from .render import failed, run_table, section

TITLE = "throughput"


def run(ctx: Context) -> dict[str, Any]:
    server = ctx.fast()
    n = ctx.size(50_000)
    conc = 64
    path = ensure_input(n)
    cw_args = ["--rate", "0", "--concurrency", str(conc)]
    runs: list[Run] = []
    notes: list[str] = []

    def add(one: Run) -> None:
        runs.append(one)
        log(
            f"  {one.label}: {one.refs_per_s:,.0f} refs/s, "
            f"{one.cpu_s_per_10k:.2f} CPU s/10k, maxrss {one.maxrss_mb:.0f} MB"
            + failed(asdict(one))
        )

    log(f"throughput: {n:,} references, concurrency {conc}, server {server.describe}")
    add(
        clients.cancel_worker(
            ctx,
            server,
            path,
            n,
            label=f"(a) cancel-worker --rate 0 -c {conc}",
            args=cw_args,
            timeout=120 + n / 100,
        )
    )
    c_flag = ["--concurrency", str(conc)]
    bare = "bare_aiohttp.py"
    add(clients.script(ctx, server, bare, path, n, label="(b) bare aiohttp", args=c_flag))
    if find_spec("uvloop") is not None:
        label = "(c) bare aiohttp + uvloop"
        add(clients.script(ctx, server, bare, path, n, label=label, args=[*c_flag, "--uvloop"]))
    else:
        notes.append("(c) skipped: uvloop not importable")
    if shutil.which("curl") and shutil.which("xargs"):
        n_curl = ctx.size(5_000)
        label = f"(d) xargs -P {conc} curl [{n_curl:,}-ref slice]"
        add(clients.curl(ctx, server, ensure_input(n_curl), n_curl, label=label, parallel=conc))
    else:
        notes.append("(d) skipped: curl or xargs not found")
    if find_spec("requests") is not None:
        n_req = ctx.size(2_000)
        label = f"(e) sequential requests [{n_req:,}-ref slice]"
        path_req = ensure_input(n_req)
        add(clients.script(ctx, server, "seq_requests.py", path_req, n_req, label=label, args=[]))
    else:
        notes.append("(e) skipped: `requests` not importable (pip install requests)")
    ratios: dict[str, Any] = {}
    cw = runs[0]
    for one in runs[1:3]:
        if one.client == "bare_aiohttp" and one.ok and cw.ok:
            key = "vs_uvloop" if "uvloop" in one.label else "vs_asyncio"
            ratios[key] = {
                "throughput": round(cw.refs_per_s / one.refs_per_s, 3),
                "cpu_per_ref": round(cw.cpu_s_per_10k / one.cpu_s_per_10k, 3),
                "maxrss": round(cw.maxrss_mb / one.maxrss_mb, 3),
            }
    return {
        "references": n,
        "concurrency": conc,
        "server": server.describe,
        "runs": [asdict(r) for r in runs],
        "ratios_cancel_worker_over_bare": ratios,
        "notes": notes,
    }


def render(tp: dict[str, Any]) -> str:
    names = ["refs", "refs/s", "in-proc/s", "CPU s/10k", "maxRSS MB", "treeRSS MB"]
    ratios = [
        f"cancel-worker / bare ({key.removeprefix('vs_')}): "
        f"throughput x{ratio['throughput']:.2f}, CPU per ref x{ratio['cpu_per_ref']:.2f}, "
        f"maxRSS x{ratio['maxrss']:.2f}"
        for key, ratio in tp["ratios_cancel_worker_over_bare"].items()
    ]
    return section(
        f"1. Throughput, no rate limit: {tp['references']:,} refs, c={tp['concurrency']}",
        run_table("client", names, tp["runs"]),
        *ratios,
        notes=tp["notes"],
    )
