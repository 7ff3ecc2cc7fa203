"""Failure handling under injected faults: nothing lost, nothing canceled twice.

Each test runs a job against the sandbox with seeded faults and checks an invariant of
the README's promises rather than a particular sequence. The runs are in-process
(`tests.inprocess`), with a fast backoff between tries where the full-jitter waits
would only add time (`bambora/backoff.py` has its own tests): the same retries, the
same health gate. Only the kills are real: a SIGKILL needs a process (the CLI, in a
subprocess).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from pathlib import Path

import pytest

from tests.inprocess import run_job
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
from worker.bambora.backoff import BACKOFF
from worker.errors import ReportError, StorageError
from worker.input.admission import Admission
from worker.report.index import SpillStore

GOOD = {"canceled", "already_canceled"}


async def test_quarter_of_requests_faulty_every_payment_canceled_once(tmp_path: Path) -> None:
    refs = [(f"f{i:04d}", "T1") for i in range(2000)]
    src = write_csv(tmp_path / "in.csv", refs)
    async with sandbox(fault_rate=0.25, seed=7, slow_delay=1.0, retry_after="0") as server:
        args = ("--rate", "2000", "--concurrency", "32", "--timeout", "0.5", "--max-attempts", "8")
        # A reference whose eight tries all meet a fault (the faults fall on requests in
        # arrival order, which concurrency varies) ends `failed`, exit 5: the README's
        # answer is to run the same command again, which retries only those.
        for _ in range(3):
            done = await run_job(
                "run", str(src), *args, "--log-format", "json", env=env_for(server), cwd=tmp_path
            )
            if done.code != 5:
                break
        view = latest(read_report(tmp_path / "in.report.csv"))
        assert done.code == 0, done.log[-3000:]
        assert len(view) == 2000
        # `canceled` only: every cancel was ours, even when the answer got lost
        assert {v["outcome"] for v in view.values()} == {"canceled"}
        assert all(server.state.payments[(m, r)].state == "Canceled" for r, m in refs)
        assert max(server.state.cancels_applied.values()) == 1
        kinds = {r.status for r in server.state.requests}
        assert {503, 500, 429, 409, "reset", "slow"} <= kinds or len(kinds) > 4


async def test_outage_holds_references_and_sends_few_requests(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"o{i}", "T1") for i in range(400)])
    async with sandbox() as server:
        window: dict[str, float] = {}

        async def outage() -> None:
            await server.state.wait_for(lambda s: cancel_requests(server) >= 100, within=30)
            window["start"] = time.monotonic()
            server.start_outage(8.0)
            window["end"] = window["start"] + 8.0

        # The real backoff: the requests before the gate opens are part of the bound
        # below, and the 8-second outage, not the backoff, sets this test's length.
        done, _ = await asyncio.gather(
            run_job(
                "run",
                str(src),
                "--rate",
                "200",
                "--concurrency",
                "16",
                "--log-format",
                "json",
                env=env_for(server),
                cwd=tmp_path,
                wait=BACKOFF,
            ),
            outage(),
        )
        assert done.code == 0, done.log[-3000:]
        view = latest(read_report(tmp_path / "in.report.csv"))
        assert {v["outcome"] for v in view.values()} == {"canceled"} and len(view) == 400
        during = [
            r
            for r in server.state.requests
            if window["start"] <= r.time < window["end"] and r.kind != "token"
        ]
    # 8 seconds at --rate 200 would allow 1,600; the probe cadence keeps it to a few dozen
    assert len(during) <= 40, len(during)
    assert done.summary()["outcomes"] == {"canceled": 400}


async def test_api_gone_past_give_up_aborts_3_and_rerun_finishes(tmp_path: Path) -> None:
    refs = [(f"g{i}", "T1") for i in range(200)]
    src = write_csv(tmp_path / "in.csv", refs)
    async with sandbox() as server:

        async def outage() -> None:
            await server.state.wait_for(lambda s: cancel_requests(server) >= 40, within=30)
            server.start_outage(600)

        first, _ = await asyncio.gather(
            run_job(
                "run",
                str(src),
                "--rate",
                "200",
                "--give-up-after",
                "3",
                "--log-format",
                "json",
                env=env_for(server),
                cwd=tmp_path,
            ),
            outage(),
        )
        assert first.code == 3, first.log[-2000:]
        assert "give-up-after" in first.log
        written = read_report(tmp_path / "in.report.csv")
        # held, never failed for their own trouble; those the abort caught between two
        # requests end failed, saying so (the rerun queries them before any cancel)
        stopped = "the run stopped before its next request"
        assert all(
            r["outcome"] == "canceled" or (r["outcome"] == "failed" and stopped in r["detail"])
            for r in written
        )
        # every reference a cancel went out for has its row (the abort left them none)
        sent = {f"g{i}" for i in range(200) if cancel_requests(server, f"g{i}")}
        assert sent <= {r["payment_reference"] for r in written}
        server.start_outage(0)
        second = await run_job(
            "run",
            str(src),
            "--rate",
            "2000",
            "--log-format",
            "json",
            env=env_for(server),
            cwd=tmp_path,
        )
        assert second.code == 0, second.log[-2000:]
        view = latest(read_report(tmp_path / "in.report.csv"))
        assert len(view) == 200 and {v["outcome"] for v in view.values()} == {"canceled"}
        assert max(server.state.cancels_applied.values()) == 1


async def test_sigkill_at_random_moments_always_converges(tmp_path: Path) -> None:
    """The kills are real (the CLI in a subprocess, SIGKILL: no `finally`, no flush);
    the run that finishes the file after them, and the rerun, are in-process."""
    rng = random.Random(2026)
    # 400: ten random kills (5 to 40 cancels apart, plus what is in flight when each
    # lands, more on a busy machine) must come before the file is done
    refs = [(f"k{i:03d}", "T1") for i in range(400)] + [("canceled-pre", "T1"), ("", "T1")]
    src = write_csv(tmp_path / "in.csv", [*refs, ("k001", "T1")])
    options = ("--rate", "400", "--concurrency", "16", "--timeout", "0.4", "--max-attempts", "10")
    async with sandbox(fault_rate=0.1, seed=3, slow_delay=0.6, retry_after="0") as server:
        kills = 0
        for _ in range(12):
            target = cancel_requests(server) + rng.randint(5, 40)

            async def killer(proc: asyncio.subprocess.Process, target: int = target) -> None:
                try:
                    await server.state.wait_for(
                        lambda s: cancel_requests(server) >= target, within=20
                    )
                except TimeoutError:
                    return
                kill(proc)

            run = await run_cli(
                "run",
                str(src),
                *options,
                "--log-format",
                "json",
                env=env_for(server),
                cwd=tmp_path,
                after_start=killer,
            )
            if run.code == -signal.SIGKILL:
                kills += 1
                if kills == 10:
                    break
                continue
            assert run.code == 1, run.stderr[-2000:]  # finished: only the invalid row is bad
            break
        finish = await run_job(
            "run", str(src), *options, "--log-format", "json", env=env_for(server), cwd=tmp_path
        )
        assert finish.code == 1, finish.log[-2000:]  # only the invalid row is bad
        final = await run_job(
            "run",
            str(src),
            "--rate",
            "400",
            "--log-format",
            "json",
            env=env_for(server),
            cwd=tmp_path,
        )
        assert kills >= 10
        assert final.code == 1  # the invalid row; everything else is good
        rows = read_report(tmp_path / "in.report.csv")
        view = latest(rows)
        bad = {k: v["outcome"] for k, v in view.items() if k[1] and v["outcome"] not in GOOD}
        assert bad == {}
        # killed mid-cancel, yet reconciled: never called "already canceled" by mistake
        assert all(view[("T1", f"k{i:03d}")]["outcome"] == "canceled" for i in range(400))
        assert view[("T1", "canceled-pre")]["outcome"] == "already_canceled"
        assert max(server.state.cancels_applied.values()) == 1
        assert all(server.state.payments[(m, r)].state == "Canceled" for r, m in refs if r)
        # no torn rows: every line of the file parsed into a full row
        assert all(r["finished_at"] and r["outcome"] for r in rows)
        assert sum(1 for r in rows if r["outcome"] == "duplicate") == 1
        assert sum(1 for r in rows if r["outcome"] == "invalid") == 1


async def test_a_full_disk_under_the_on_disk_index_aborts_3_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage stopped by a storage failure (the index's disk full, found while the
    reader admits a chunk) is an abort that names the file, not "a bug"."""
    src = write_csv(tmp_path / "in.csv", [(f"x{i}", "T1") for i in range(20)])
    why = f"the on-disk index {tmp_path}/in.report.csv.index.sqlite could not be written"

    def full(self: Admission, *args: object) -> None:
        raise StorageError(f"{why}: database or disk is full")

    monkeypatch.setattr(Admission, "decide", full)
    async with sandbox() as server:
        run = await run_job(
            "run", str(src), "--log-format", "json", env=env_for(server), cwd=tmp_path
        )
        assert cancel_requests(server) == 0
    assert run.code == 3, run.log[-2000:]
    events = [json.loads(x) for x in run.log.splitlines() if x.startswith("{")]
    (aborted,) = [e for e in events if e.get("event") == "aborted"]
    assert aborted["reason"] == f"{why}: database or disk is full"
    assert "internal_error" not in run.log and "a bug" not in run.log


async def test_a_full_disk_under_the_index_before_the_first_request_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resuming by reference past the budget reads the report into the index before any
    request: a full disk there is found before anything is sent, so exit 2 (ReportError)."""
    src = write_csv(tmp_path / "in.csv", [("p1", "T1"), ("p2", "T1")])
    async with sandbox() as server:
        first = await run_job(
            "run", str(src), "--log-format", "json", env=env_for(server), cwd=tmp_path
        )
        assert first.code == 0, first.log[-2000:]
        write_csv(src, [("p2", "T1"), ("p1", "T1"), ("p3", "T1")])

        def full(self: SpillStore) -> None:
            raise StorageError(f"the on-disk index {self.path} could not be written: full")

        monkeypatch.setattr(SpillStore, "table", full)
        with pytest.raises(ReportError, match=r"index\.sqlite could not be written: full"):
            await run_job(
                "run",
                str(src),
                "--allow-changed-input",
                "--memory-budget",
                "0",
                env=env_for(server),
                cwd=tmp_path,
            )
        assert cancel_requests(server) == 2  # the first run's
