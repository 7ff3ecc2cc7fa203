"""Scenario 3, rate: does `--rate 200` hold at the server?

The aiohttp fallback records each payment call's arrival time; from those: the achieved
rate over first-to-last request, and the largest number of requests in any sliding
1-second window (exact, two pointers over the sorted times), checked against the
contract's R + 1.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from . import clients
from .clients import Context
from .data import ensure_input
from .procs import log
from .servers import dedicated, server_timestamps

TITLE = "rate"


def max_in_window(stamps: list[float], width: float) -> tuple[int, float]:
    """Largest number of sorted `stamps` inside any half-open window of `width` seconds."""
    best, best_at, lo = 0, stamps[0] if stamps else 0.0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= width:
            lo += 1
        if hi - lo + 1 > best:
            best, best_at = hi - lo + 1, stamps[lo]
    return best, best_at


def run(ctx: Context) -> dict[str, Any]:
    asked = 200.0
    n = ctx.size(4_000)
    conc = 64
    path = ensure_input(n)
    label = f"cancel-worker --rate {asked:g} -c {conc}"
    args = ["--rate", f"{asked:g}", "--concurrency", str(conc)]
    with dedicated(ctx.procs, record=True) as server:
        log(f"rate: {n:,} references at --rate {asked:g}, concurrency {conc}")
        timeout = 120 + 3 * n / asked
        one = clients.cancel_worker(ctx, server, path, n, label=label, args=args, timeout=timeout)
        stamps = sorted(server_timestamps(server))
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    achieved = (len(stamps) - 1) / span if span > 0 else 0.0
    peak, at = max_in_window(stamps, 1.0)
    log(f"  achieved {achieved:.2f}/s over {span:.2f} s; max 1-s window {peak}")
    return {
        "references": n,
        "concurrency": conc,
        "asked_per_s": asked,
        "requests_seen": len(stamps),
        "span_s": round(span, 3),
        "achieved_per_s": round(achieved, 2),
        "achieved_over_asked": round(achieved / asked, 4),
        "max_in_any_1s_window": peak,
        "max_window_starts_after_first_s": round(at - stamps[0], 3) if stamps else None,
        "allowed_per_contract": int(asked) + 1,
        "within_contract": peak <= asked + 1,
        "server": server.describe,
        "run": asdict(one),
    }


def render(rt: dict[str, Any]) -> str:
    verdict = "OK" if rt["within_contract"] else "EXCEEDS R+1"
    return "\n" + (
        f"3. Rate accuracy: --rate {rt['asked_per_s']:g}, {rt['references']:,} refs, "
        f"c={rt['concurrency']} ({rt['server']})\n"
        f"achieved {rt['achieved_per_s']:.2f}/s over {rt['span_s']:.2f} s "
        f"({rt['achieved_over_asked']:.2%} of asked); max in any 1-s window: "
        f"{rt['max_in_any_1s_window']} (contract <= {rt['allowed_per_contract']}: {verdict})"
        + ("" if rt["run"]["ok"] else "  RUN FAILED")
    )
