"""A stop means no new sends: after SIGTERM or a guard rail, only the requests already on
the wire finish; the rerun sends the rest, and every payment is canceled exactly once.

The real CLI against the sandbox on loopback. Which requests went out after the stop is
counted, not timed: the worker says in its `stopping` / `guard_rail` event how many
requests it had written and how many were on the wire at that moment, and the sandbox
counts what it received.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

from tests.support import (
    cancel_requests,
    env_for,
    kill,
    latest,
    read_report,
    run_cli,
    sandbox,
    write_csv,
)

FAST = ("--rate", "2000", "--concurrency", "32", "--log-format", "json")


def events(stderr: str, name: str) -> list[dict[str, Any]]:
    found = (json.loads(x) for x in stderr.splitlines() if x.startswith("{"))
    return [e for e in found if e["event"] == name]


async def test_sigterm_sends_nothing_new_and_the_rerun_finishes(tmp_path: Path) -> None:
    # 16 workers share 2 requests a second: at any moment most of them wait for a slot.
    # Each cancel is answered after a 1 s stall, so the ones on the wire at the signal
    # are still unanswered when the worker handles it.
    refs = [f"slow-{i}" for i in range(40)]
    src = write_csv(tmp_path / "in.csv", [(r, "T1") for r in refs])
    async with sandbox(slow_delay=1.0) as server:
        signalled: list[float] = []

        async def term(proc: asyncio.subprocess.Process) -> None:
            await server.state.wait_for(lambda s: cancel_requests(server) >= 3, within=30)
            signalled.append(time.monotonic())
            kill(proc, signal.SIGTERM)

        first = await run_cli(
            "run",
            str(src),
            "--rate",
            "2",
            "--concurrency",
            "16",
            "--log-format",
            "json",
            env=env_for(server),
            cwd=tmp_path,
            after_start=term,
        )
        assert first.code == 143, first.stderr[-2000:]
        [stopping] = events(first.stderr, "stopping")
        [stopped] = events(first.stderr, "stopped")
        cancels = [r for r in server.state.requests if r.kind == "cancel"]
        # every cancel the sandbox ever got was written before the worker saw the signal
        assert len(cancels) == stopping["requests_sent"] == stopped["requests_sent"]
        late = [r for r in cancels if r.time > signalled[0]]
        assert len(late) <= stopping["in_flight"]
        assert stopped["sent_after_stop"] == 0 and stopped["abandoned"] == 0
        assert stopped["finished"] == stopping["in_flight"]
        assert "no request was sent after the stop" in stopped["message"]
        # what went out has its row; what did not, has none (the rerun sends it)
        reported = {r["payment_reference"] for r in read_report(tmp_path / "in.report.csv")}
        assert reported == {r.reference for r in cancels} and len(reported) < len(refs)

        second = await run_cli("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert second.code == 0, second.stderr[-2000:]
        view = latest(read_report(tmp_path / "in.report.csv"))
        assert len(view) == 40 and {v["outcome"] for v in view.values()} == {"canceled"}
        assert set(server.state.cancels_applied.values()) == {1}
        assert cancel_requests(server) == 40  # none sent twice


async def test_a_guard_rail_sends_nothing_new(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"forbidden-{i}", "T1") for i in range(300)])
    async with sandbox() as server:
        done = await run_cli(
            "run",
            str(src),
            "--rate",
            "5",
            "--concurrency",
            "8",
            "--stop-on-rejections",
            "20",
            "--log-format",
            "json",
            env=env_for(server),
            cwd=tmp_path,
        )
        sent = cancel_requests(server)
    assert done.code == 4, done.stderr[-2000:]
    [rail] = events(done.stderr, "guard_rail")
    [stopped] = events(done.stderr, "stopped")
    # the 20 answers that tripped the rail, plus what was on the wire then; nothing new
    assert sent == 20 + rail["in_flight"] == stopped["requests_sent"]
    assert stopped["sent_after_stop"] == 0 and stopped["finished"] == rail["in_flight"]
    assert "Nothing else was sent" not in rail["reason"]
    assert len(read_report(tmp_path / "in.report.csv")) == sent  # in flight finished, written
