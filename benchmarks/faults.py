"""Failure-handling figures: a faulty run and an outage, measured against the sandbox.

    python benchmarks/faults.py

1. 2,000 references with 25 % of API requests faulted (seeded): how many end
   `canceled`, how many requests were sent, how long it took, double applies.
2. 400 references at --rate 200 with an 8-second outage started after 100 cancels:
   how many API requests arrived during the outage.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: tests.support
from tests.support import env_for, run_cli, sandbox, write_csv
from worker.sandbox import SandboxServer

# the scenario of tests/integration/test_failures.py, whose figures the README quotes
FAULTY = ["--rate", "2000", "--concurrency", "32", "--timeout", "0.5", "--max-attempts", "8"]
OUTAGE = ["--rate", "200", "--concurrency", "16"]


async def _run(args: list[str], server: SandboxServer, cwd: Path) -> tuple[int, dict[str, object]]:
    done = await run_cli(*args, "--log-format", "json", env=env_for(server), cwd=cwd, timeout=300)
    summary = [json.loads(x) for x in done.stderr.splitlines() if '"summary"' in x][-1]
    return done.code, summary


async def faulty(tmp: Path) -> dict[str, object]:
    async with sandbox(fault_rate=0.25, seed=7, slow_delay=1.0, retry_after="0") as server:
        src = write_csv(tmp / "faulty.csv", ((f"f{i:05d}", "T1") for i in range(2000)))
        start = time.monotonic()
        code, summary = await _run(["run", str(src), *FAULTY], server, tmp)
        elapsed = time.monotonic() - start
        api = [r for r in server.state.requests if r.kind in ("cancel", "get")]
        return {
            "exit_code": code,
            "outcomes": summary["outcomes"],
            "api_requests": len(api),
            "cancel_requests": sum(r.kind == "cancel" for r in api),
            "get_requests": sum(r.kind == "get" for r in api),
            "faults_injected": sum(r.status not in (200, 201) for r in api),
            "double_applies": sum(n > 1 for n in server.state.cancels_applied.values()),
            "seconds": round(elapsed, 1),
        }


async def outage(tmp: Path) -> dict[str, object]:
    async with sandbox() as server:
        src = write_csv(tmp / "outage.csv", ((f"o{i:05d}", "T1") for i in range(400)))
        window: dict[str, float] = {}

        async def trigger() -> None:
            await server.state.wait_for(
                lambda s: sum(r.kind == "cancel" for r in s.requests) >= 100, within=60
            )
            window["start"] = time.monotonic()
            server.start_outage(8.0)

        trig = asyncio.ensure_future(trigger())
        start = time.monotonic()
        code, summary = await _run(["run", str(src), *OUTAGE], server, tmp)
        await trig
        t0 = window["start"]
        during = [r for r in server.state.requests if t0 <= r.time < t0 + 8 and r.kind != "token"]
        return {
            "exit_code": code,
            "outcomes": summary["outcomes"],
            "api_requests_during_8s_outage": len(during),
            "allowed_by_rate_in_8s": 1600,
            "seconds": round(time.monotonic() - start, 1),
        }


async def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print("25% faults, 2,000 refs:", json.dumps(await faulty(tmp)))
        print("8 s outage, 400 refs:  ", json.dumps(await outage(tmp)))


if __name__ == "__main__":
    asyncio.run(main())
