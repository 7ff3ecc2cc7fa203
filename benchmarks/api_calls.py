"""What one API call costs in CPU, by how its timeout is kept: the reason for deadline.py.

`ApiClient.call` (the worker's own code path, cancels against the fast fake API on
loopback, 64 in flight, uvloop) in interleaved rounds of two set-ups:

- `deadlines`: as shipped, one sweep for every call in flight (`bambora/deadline.py`);
- `aiohttp-total`: aiohttp's own per-request total timeout instead (a timer started
  and cancelled for every request), what the worker used before.

CPU is this process's only (the server runs in its own), per call, median of the
rounds.

    python benchmarks/api_calls.py [--calls 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from harness.procs import Processes
from harness.servers import start_fast

from worker.bambora.api import ApiClient
from worker.bambora.deadline import Deadlines
from worker.bambora.session import make_session
from worker.model import Op

CONCURRENCY = 64
TIMEOUT = 10.0


async def calls(url: str, n: int, setup: str) -> None:
    session = make_session(concurrency=CONCURRENCY)
    if setup == "aiohttp-total":
        session._timeout = aiohttp.ClientTimeout(total=TIMEOUT)  # the old session default
        deadlines = Deadlines(1e9)  # never fires: aiohttp's timer does the job
    else:
        deadlines = Deadlines(TIMEOUT)
    api = ApiClient(session, url, deadlines)
    refs = iter(range(n))

    async def worker() -> None:
        for i in refs:
            reply = await api.call(Op.CANCEL, "T1", f"bench-{i:07d}", "bench-token")
            if reply.status != 201:
                raise SystemExit(f"unexpected answer: {reply}")

    async with session:
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    deadlines.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import uvloop

    procs = Processes()
    cost: dict[str, list[float]] = {"deadlines": [], "aiohttp-total": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            server = start_fast(procs, Path(tmp), "auto")
            for _ in range(args.rounds):
                for setup, seen in cost.items():
                    started = time.process_time()
                    uvloop.run(calls(server.url, args.calls, setup))
                    seen.append((time.process_time() - started) / args.calls * 1e6)
    finally:
        procs.stop_all()
    print(f"| timeout kept by | CPU us per call (median of {args.rounds}) | rounds |")
    print("|---|---:|---|")
    for setup, seen in cost.items():
        rounds = " / ".join(f"{x:.1f}" for x in seen)
        print(f"| {setup} | {statistics.median(seen):.1f} | {rounds} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
