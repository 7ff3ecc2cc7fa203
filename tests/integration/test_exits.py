"""Exit codes and totals: a normal night ends 0, a row that needs a person 1, failed
references 5 (and the next run retries them); the run record's totals keep their scope
across a resume; `check` counts states; every report mode echoes. The runs are
in-process (`tests.inprocess`: the code `execute` returns, the card it writes) except
where the process is the subject: an option from its environment, a SIGTERM, a dry
run's preview."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.inprocess import run_job
from tests.support import (
    cancel_requests,
    env_for,
    kill,
    latest,
    read_report,
    run_cli,
    runs_of,
    sandbox,
    write_csv,
)

FAST = ("--rate", "2000", "--concurrency", "16", "--log-format", "json")


def summary(stderr: str) -> dict[str, object]:
    return [json.loads(x) for x in stderr.splitlines() if '"summary"' in x][-1]


async def test_a_night_of_canceled_captured_and_unknown_payments_exits_0(tmp_path: Path) -> None:
    rows = [(f"ok-{i}", "T1") for i in range(5)]
    rows += [("captured-1", "T1"), ("nocancel-2", "T1"), ("unknown-3", "T1")]
    src = write_csv(tmp_path / "night.csv", rows)
    report = tmp_path / "night.report.csv"
    async with sandbox() as server:
        done = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert done.code == 0, done.log[-2000:]
        sent = len(server.state.requests)
        # the same final state under --strict (or its env var): nothing sent, exit 1
        strict = await run_job(
            "run", str(src), *FAST, "--strict", env=env_for(server), cwd=tmp_path
        )
        by_env = await run_cli(
            "run", str(src), *FAST, env=env_for(server, CANCEL_WORKER_STRICT="1"), cwd=tmp_path
        )
        assert len(server.state.requests) == sent
    assert (strict.code, by_env.code) == (1, 1)
    assert [r["exit_code"] for r in runs_of(report)] == [0, 1, 1]
    assert summary(done.log)["follow_ups"] == 3
    assert "cancel-worker: done (exit 0)" in done.log
    assert "follow-ups: 3" in done.log
    view = latest(read_report(report))
    # not_cancelable rows keep the cancel's own answer and say why, not the query's 200
    captured, nocancel = view[("T1", "captured-1")], view[("T1", "nocancel-2")]
    assert captured["outcome"] == nocancel["outcome"] == "not_cancelable"
    assert captured["http_status"] == "422" and nocancel["http_status"] == "402"
    assert captured["error_type"].endswith("/invalid_payment_state_transition")
    assert nocancel["error_type"].endswith("/cannot_cancel")
    assert captured["detail"] == nocancel["detail"] == "payment is Captured: refund it instead"
    assert view[("T1", "unknown-3")]["outcome"] == "not_found"


async def test_an_invalid_row_exits_1(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1"), ("", "T1"), ("captured-b", "T1")])
    async with sandbox() as server:
        done = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
    assert done.code == 1, done.log[-2000:]
    assert "some rows need a person" in done.log
    assert "run the same command again" not in done.log  # a rerun changes nothing


async def test_a_reference_failing_every_try_exits_5_and_the_next_run_retries_it(
    tmp_path: Path,
) -> None:
    # flaky4-: 503 to its first 4 requests. With 3 tries a run, the first run ends it
    # `failed` (exit 5, even with an invalid row: 5 wins over 1); the rerun retries it.
    rows = [("flaky4-x", "T1"), ("", "T1")] + [(f"ok-{i}", "T1") for i in range(20)]
    src = write_csv(tmp_path / "in.csv", rows)
    async with sandbox() as server:
        first = await run_job(
            "run", str(src), *FAST, "--max-attempts", "3", env=env_for(server), cwd=tmp_path
        )
        assert first.code == 5, first.log[-2000:]
        assert latest(read_report(tmp_path / "in.report.csv"))[("T1", "flaky4-x")]["outcome"] == (
            "failed"
        )
        assert f"run the same command again: cancel-worker run {src}" in first.log
        before = cancel_requests(server)
        second = await run_job(
            "run", str(src), *FAST, "--max-attempts", "3", env=env_for(server), cwd=tmp_path
        )
        retried = cancel_requests(server) - before
    assert retried >= 1 and second.code == 1, second.log[-2000:]  # only the invalid row left
    view = latest(read_report(tmp_path / "in.report.csv"))
    assert view[("T1", "flaky4-x")]["outcome"] == "canceled"
    assert [r["exit_code"] for r in runs_of(tmp_path / "in.report.csv")] == [5, 1]


async def test_released_total_after_a_sigterm_and_a_resume_is_the_reports_sum(
    tmp_path: Path,
) -> None:
    rows = [(f"p{i}", "T1") for i in range(200)] + [(f"q{i}", "T2") for i in range(100)]
    src = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / "in.report.csv"
    async with sandbox() as server:
        for i in range(100):  # a second currency, so that totals are per currency
            server.state.payment("T2", f"q{i}").currency = "DKK"

        async def term(proc: asyncio.subprocess.Process) -> None:
            await server.state.wait_for(lambda s: cancel_requests(server) >= 60, within=30)
            kill(proc, signal.SIGTERM)

        stopped = await run_cli(
            "run", str(src), "--rate", "100", env=env_for(server), cwd=tmp_path, after_start=term
        )
        assert stopped.code == 143, stopped.stderr[-2000:]
        resumed = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert resumed.code == 0, resumed.log[-2000:]
    first, second = runs_of(report)
    total: Counter[str] = Counter()
    for row in latest(read_report(report)).values():
        if row["outcome"] == "canceled":
            total[row["currency"]] += int(row["amount"])
    assert set(total) == {"EUR", "DKK"}
    assert second["released_total"] == dict(total)
    assert summary(resumed.log)["released_total"] == dict(total)
    # this run's figure is only what it released; with the first run's it is the whole
    this_run, earlier = Counter(second["released"]), Counter(first["released"])
    assert this_run != total and this_run + earlier == total
    assert first["released_total"] == first["released"]
    assert "released, this run" in resumed.log and "released, whole report" in resumed.log


async def test_check_records_how_many_payments_are_in_each_state(tmp_path: Path) -> None:
    rows = [("a", "T1"), ("b", "T1"), ("captured-c", "T1"), ("settled-d", "T1")]
    rows += [("canceled-e", "T1"), ("unknown-f", "T1")]
    src = write_csv(tmp_path / "in.csv", rows)
    async with sandbox() as server:
        done = await run_job("check", str(src), *FAST, env=env_for(server), cwd=tmp_path)
    assert done.code == 0, done.log[-2000:]  # not_found is a follow-up
    states = {"Authorized": 2, "Canceled": 1, "Captured": 1, "Settled": 1}
    (record,) = runs_of(tmp_path / "in.check.csv")
    assert record["states"] == states and summary(done.log)["states"] == states
    assert "payment states:" in done.log


async def test_a_dry_run_report_echoes_the_input_columns(tmp_path: Path) -> None:
    src = write_csv(
        tmp_path / "in.csv",
        [("a", "T1", "order-1", "Ann"), ("", "T1", "order-2", "Bo")],
        header="payment_reference,merchant_number,order_id,customer",
    )
    done = await run_cli("run", str(src), "--dry-run", env=env_for(None), cwd=tmp_path)
    assert done.code == 1  # the invalid row
    rows = {r["line"]: r for r in read_report(tmp_path / "in.dry-run.csv")}
    assert rows["2"]["outcome"] == "would_cancel"
    assert (rows["2"]["order_id"], rows["2"]["customer"]) == ("order-1", "Ann")
    assert (rows["3"]["order_id"], rows["3"]["customer"]) == ("order-2", "Bo")


def test_a_usage_error_is_exit_2_even_when_standard_error_cannot_be_written(
    tmp_path: Path,
) -> None:
    """`2>/dev/full`, a full disk under `2>log`, a closed pipe: the `Error:` line is
    lost, and the exit code must still say what happened (an uncaught write error
    made it 1, the code of a finished night with rows for a person)."""
    cases = [
        ["run", str(tmp_path / "missing.csv"), "--dry-run"],  # a CancelWorkerError
        ["run", "--no-such-option"],  # click's own usage error
        ["merge-reports", str(tmp_path / "out.csv"), str(tmp_path / "missing.csv")],
    ]
    for args in cases:
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [sys.executable, "-m", "worker", *args], stderr=full, cwd=tmp_path, check=False
            )
        assert done.returncode == 2, args
