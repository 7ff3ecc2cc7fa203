"""Failure-handling figures: a faulty run and an outage, measured against the sandbox.

    python benchmarks/faults.py

1. 2,000 references with 25 % of API requests faulted (seeded): how many end
   `canceled`, how many requests were sent, how long it took, double applies.
2. 400 references at --rate 200 with an 8-second outage started after 100 cancels:
   how many API requests arrived during the outage.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from worker.sandbox import SandboxConfig, SandboxServer


def _env(server: SandboxServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAMBORA_")}
    env.update(
        BAMBORA_API_URL=server.api_url,
        BAMBORA_AUTH_URL=server.auth_url,
        BAMBORA_CLIENT_ID=server.config.client_id,
        BAMBORA_CLIENT_SECRET=server.config.client_secret,
    )
    return env


def _input(path: Path, n: int, prefix: str) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["payment_reference", "merchant_number"])
        w.writerows((f"{prefix}{i:05d}", "T1") for i in range(n))
    return path


async def _run(args: list[str], server: SandboxServer, cwd: Path) -> tuple[int, dict[str, object]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        *args,
        "--log-format",
        "json",
        env=_env(server),
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    summary = [json.loads(x) for x in err.decode().splitlines() if '"summary"' in x][-1]
    assert proc.returncode is not None
    return proc.returncode, summary


async def faulty(tmp: Path) -> dict[str, object]:
    config = SandboxConfig(fault_rate=0.25, seed=7, slow_delay=1.0, retry_after="0")
    async with SandboxServer(config, port=0) as server:
        src = _input(tmp / "faulty.csv", 2000, "f")
        start = time.monotonic()
        code, summary = await _run(
            [
                "run",
                str(src),
                "--rate",
                "2000",
                "--concurrency",
                "32",
                "--timeout",
                "0.5",
                "--max-attempts",
                "8",
            ],
            server,
            tmp,
        )
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
    async with SandboxServer(SandboxConfig(), port=0) as server:
        src = _input(tmp / "outage.csv", 400, "o")
        window: dict[str, float] = {}

        async def trigger() -> None:
            await server.state.wait_for(
                lambda s: sum(r.kind == "cancel" for r in s.requests) >= 100, within=60
            )
            window["start"] = time.monotonic()
            server.start_outage(8.0)

        trig = asyncio.ensure_future(trigger())
        start = time.monotonic()
        code, summary = await _run(
            ["run", str(src), "--rate", "200", "--concurrency", "16"], server, tmp
        )
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
