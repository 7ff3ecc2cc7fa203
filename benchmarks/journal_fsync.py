"""What the journal's per-batch sync costs: `cancel-worker run` with and without it.

    python benchmarks/journal_fsync.py [--references 50000] [--rounds 3] [--concurrency 64]

Against the fast loopback server (nginx if installed, else the aiohttp fallback), at no
effective rate limit (`--rate 1000000`), the same run twice per round, interleaved:
once as shipped (the intents of each batch are `fdatasync`ed before their cancels go
out, in a worker thread) and once with the sync replaced by nothing (the disk's share
of the cost; the hand-off to the thread stays, it costs microseconds per batch). Each
run is the real CLI in a child process that only swaps `worker.report.journal.sync_data`
and counts its calls. Prints, per mode, the median refs/s, CPU seconds per 10k
references and syncs per 1,000 references, and the per-round ratios; writes
`benchmarks/out/journal_fsync.json`. The reports and journals live in a temp dir on the
same filesystem as `tempfile` picks (the sync's cost is that disk's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.clients import PY, Context, summary_event
from harness.data import OUT, ensure_input
from harness.procs import Processes, install_signal_handlers, log
from harness.render import machine
from harness.servers import start_fast

MODES = ("sync", "nosync")
COUNT_FILE = "CW_BENCH_SYNC_COUNT"  # where the child writes how many syncs it made


def child(mode: str, argv: list[str]) -> None:
    """Run the CLI with the journal's sync counted (and, in `nosync`, skipped)."""
    import atexit

    import worker.report.journal as journal
    from worker.cli import main

    real = journal.sync_data
    calls = [0]

    def counted(fd: int, path: Path) -> None:
        calls[0] += 1
        if mode == "sync":
            real(fd, path)

    journal.sync_data = counted
    atexit.register(lambda: Path(os.environ[COUNT_FILE]).write_text(str(calls[0])))
    sys.argv = ["cancel-worker", *argv]
    main()


def one_run(ctx: Context, mode: str, path: Path, n: int, concurrency: int) -> dict[str, Any]:
    with ctx.workdir(f"journal-{mode}") as work:
        counts = work / "syncs"
        cmd = [PY, __file__, "--child", mode, "run", str(path), "--report", str(work / "r.csv")]
        cmd += ["--rate", "1000000", "--concurrency", str(concurrency), "--log-format", "json"]
        env_log = work / "stderr.log"
        server = ctx.fast()
        env = {**ctx.env(server), COUNT_FILE: str(counts), "PYTHONPATH": str(OUT.parent.parent)}
        from harness.procs import measure

        with env_log.open("wb") as err:
            m = measure(ctx.procs, cmd, env=env, cwd=work, timeout=120 + n / 100, stderr=err)
        summary = summary_event(env_log) or {}
        syncs = int(counts.read_text()) if counts.exists() else -1
    done = summary.get("outcomes", {}).get("canceled", 0)
    ok = m.returncode == 0 and done == n
    if not ok:
        log(f"{mode}: FAILED rc={m.returncode} outcomes={summary.get('outcomes')}")
    return {
        "mode": mode,
        "ok": ok,
        "refs_per_s": round(n / m.wall, 1),
        "cpu_s_per_10k": round(m.cpu / n * 10_000, 3),
        "sys_s": round(m.sys, 3),
        "syncs": syncs,
        "syncs_per_1000": round(syncs / n * 1000, 1),
        "in_process_refs_per_s": round(done / summary["elapsed_seconds"], 1)
        if summary.get("elapsed_seconds")
        else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--references", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--server", choices=("auto", "nginx", "aiohttp"), default="auto")
    args = parser.parse_args()
    install_signal_handlers()
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="cw-journal-"))
    runs: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    try:
        ctx = Context(procs, tmp, quick=False)
        ctx.server = start_fast(procs, tmp, args.server)
        path = ensure_input(args.references)
        for mode in MODES:  # warm-up, unmeasured
            one_run(ctx, mode, ensure_input(2_000), 2_000, args.concurrency)
        for i in range(args.rounds):
            for mode in MODES if i % 2 == 0 else tuple(reversed(MODES)):
                run = one_run(ctx, mode, path, args.references, args.concurrency)
                run["round"] = i + 1
                log(f"round {i + 1} {mode}: {run}")
                runs.append(run)
        server = ctx.server.describe
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["mode"] == mode)

    ratios = [
        round(s["refs_per_s"] / o["refs_per_s"], 3)
        for s, o in zip(
            [r for r in runs if r["mode"] == "sync"],
            [r for r in runs if r["mode"] == "nosync"],
            strict=True,
        )
    ]
    result = {
        "meta": {
            **machine(),
            "server": server,
            "references": args.references,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "runs": runs,
        "sync_over_nosync_refs_per_s": ratios,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "journal_fsync.json").write_text(json.dumps(result, indent=2))
    print(f"{args.references:,} references, concurrency {args.concurrency}, {server}")
    print("| journal | refs/s | CPU s / 10k refs | syncs / 1,000 refs |")
    print("|---|---:|---:|---:|")
    for mode in MODES:
        label = "fdatasync per batch" if mode == "sync" else "no sync (before)"
        print(
            f"| {label} | {median(mode, 'refs_per_s'):,.0f} | "
            f"{median(mode, 'cpu_s_per_10k'):.2f} | {median(mode, 'syncs_per_1000'):.1f} |"
        )
    print(f"per round, with / without sync (refs/s): {ratios}")
    print(f"load average before {load_before}, after {os.getloadavg()}")
    return 0 if all(r["ok"] for r in runs) else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main())
