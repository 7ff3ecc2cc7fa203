"""cancel-worker benchmarks: one entry point, every scenario side by side, loopback only.

    python benchmarks/run.py [--quick] [--only SCENARIO ...] [--server auto|nginx|aiohttp]
                             [--profile]

Scenarios (see benchmarks/README.md): throughput, latency, rate, memory; each lives in
benchmarks/harness/scenario_<name>.py. This file only parses the arguments, starts the
fast server the chosen scenarios need, runs them in order and writes the results: a
table on standard output, benchmarks/out/results.json and benchmarks/out/results.png (if
matplotlib imports). Every process it starts is stopped before it exits, on Ctrl-C and
on errors too.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
    scenario_latency,
    scenario_memory,
    scenario_profile,
    scenario_rate,
    scenario_throughput,
)
from harness.chart import chart
from harness.clients import Context
from harness.data import OUT
from harness.procs import Processes, install_signal_handlers, log
from harness.render import header, machine, write_json
from harness.servers import start_fast

SCENARIOS = {
    m.TITLE: m for m in (scenario_throughput, scenario_latency, scenario_rate, scenario_memory)
}
NEEDS_FAST_SERVER = {"throughput", "memory", "profile"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="cancel-worker benchmarks (loopback only)")
    parser.add_argument("--quick", action="store_true", help="every size / 10: a smoke run")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), metavar="SCENARIO")
    parser.add_argument(
        "--server",
        choices=("auto", "nginx", "aiohttp"),
        default="auto",
        help="fast fake API for throughput and memory: nginx if installed (auto), or aiohttp",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="throughput: interleaved rounds of the compared clients (default 3)",
    )
    parser.add_argument(
        "--dry-run-10m",
        action="store_true",
        help="memory: also the 10,000,000-reference dry-run (about 4 more minutes)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run cancel-worker once under py-spy (throughput input) and list hot spots",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    chosen = args.only or list(SCENARIOS)
    if args.profile:
        chosen = [*chosen, scenario_profile.TITLE]
    modules = {**SCENARIOS, scenario_profile.TITLE: scenario_profile}
    OUT.mkdir(parents=True, exist_ok=True)
    install_signal_handlers()
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    started = time.perf_counter()
    scenarios = [c for c in chosen if c != scenario_profile.TITLE]
    options = {
        "quick": args.quick,
        "scenarios": scenarios,
        "rounds": args.rounds,
        "dry_run_10m": args.dry_run_10m,
    }
    results: dict[str, Any] = {"meta": {**machine(), **options, "argv": sys.argv[1:]}}
    status = 0
    try:
        ctx = Context(procs, tmp, args.quick, rounds=args.rounds, dry_run_10m=args.dry_run_10m)
        if NEEDS_FAST_SERVER & set(chosen):
            ctx.server = start_fast(procs, tmp, args.server)
            results["meta"]["server"] = f"{ctx.server.kind}: {ctx.server.describe}"
            log(f"fast server: {ctx.server.describe} at {ctx.server.url}")
        for name in chosen:
            results[name] = modules[name].run(ctx)
    except KeyboardInterrupt as exc:
        log("interrupted: stopping every child process")
        results["meta"]["interrupted"] = True
        status = 128 + (exc.args[0] if exc.args else signal.SIGINT)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    results["meta"]["total_wall_s"] = round(time.perf_counter() - started, 1)
    write_json(results, OUT / "results.json")
    note = chart(results, OUT / "results.png")
    print(header(results["meta"]))
    print("\n".join(modules[name].render(results[name]) for name in chosen if name in results))
    print(f"\nwrote {OUT / 'results.json'}")
    print(note or f"wrote {OUT / 'results.png'}")
    failed = any(not r["ok"] for name in chosen for r in checked_runs(results.get(name, {})))
    return status or (1 if failed else 0)


def checked_runs(section: dict[str, Any]) -> list[dict[str, Any]]:
    """Every measured run of a scenario's section: `runs`, `slices` and a single `run`."""
    single = [section["run"]] if "run" in section else []
    return [*section.get("runs", []), *section.get("slices", []), *single]


if __name__ == "__main__":
    sys.exit(main())
