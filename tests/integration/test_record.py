"""The report is the night's record: bound to its input and its kind of run, one run at
a time, self-contained rows, a run record and a summary. Against the sandbox: the real
CLI for refusals (exit 2), the dry run, kills and signals; in-process
(`tests.inprocess`) for the runs whose report and record are the subject."""

from __future__ import annotations

import asyncio
import json
import signal
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
    start_cli,
    write_csv,
)

FAST = ("--rate", "2000", "--concurrency", "8", "--log-format", "json")


async def test_a_report_refuses_another_input_unless_told(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "night.csv", [(f"n{i}", "T1") for i in range(10)] + [("", "T1")])
    async with sandbox() as server:
        first = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert first.code == 1, first.log[-2000:]  # the invalid row
        (record,) = runs_of(tmp_path / "night.report.csv")
        assert record["mode"] == "run" and record["input"] == str(src)
        assert len(str(record["input_sha256"])) == 64 and record["exit_code"] == 1

        # the operator fixes the bad row and adds two: another file's bytes
        write_csv(src, [(f"n{i}", "T1") for i in range(10)] + [("fixed", "T1"), ("n11", "T1")])
        before = len(server.state.requests), server.state.tokens_issued
        refused = await run_cli("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert refused.code == 2 and "--allow-changed-input" in refused.stderr
        assert "Traceback" not in refused.stderr
        # the same file edited: fixing rows is offered first, a fresh report second
        assert "Rerun with --allow-changed-input if you fixed rows of it, or run" in refused.stderr
        assert (len(server.state.requests), server.state.tokens_issued) == before

        allowed = await run_job(
            "run", str(src), *FAST, "--allow-changed-input", env=env_for(server), cwd=tmp_path
        )
        assert allowed.code == 0, allowed.log[-2000:]
        # only the changed line and the new one were sent
        assert cancel_requests(server) == 12 and cancel_requests(server, "fixed") == 1
        by_line = {r["line"]: r["outcome"] for r in read_report(tmp_path / "night.report.csv")}
        assert by_line == {str(n): "canceled" for n in range(2, 14)}  # line 12 was fixed


async def test_check_then_run_write_two_reports_and_one_kind_per_report(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "payments.csv", [("a", "T1"), ("captured-b", "T1")])
    async with sandbox() as server:
        check = await run_job("check", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        run = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        dry = await run_cli("run", str(src), "--dry-run", env=env_for(None), cwd=tmp_path)
        assert (check.code, run.code, dry.code) == (0, 0, 0)  # captured-b: a follow-up
        assert len(read_report(tmp_path / "payments.check.csv")) == 2
        assert len(read_report(tmp_path / "payments.report.csv")) == 2
        assert len(read_report(tmp_path / "payments.dry-run.csv")) == 2
        crossed = await run_cli(
            "check",
            str(src),
            *FAST,
            "--report",
            "payments.report.csv",
            env=env_for(server),
            cwd=tmp_path,
        )
        assert crossed.code == 2 and "written by `run`" in crossed.stderr
        assert cancel_requests(server) == 2


async def test_two_runs_on_one_report_cannot_overlap(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "big.csv", [(f"b{i}", "T1") for i in range(200)])
    async with sandbox() as server:
        first = await start_cli("run", str(src), "--rate", "50", env=env_for(server), cwd=tmp_path)
        await server.state.wait_for(lambda s: cancel_requests(server) >= 5, within=30)
        second = await run_cli("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert second.code == 2 and "in use by another run" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        kill(first, signal.SIGTERM)
        await first.wait()
        finish = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert finish.code == 0, finish.log[-2000:]
        rows = read_report(tmp_path / "big.report.csv")
        refs = [r["payment_reference"] for r in rows]
        assert sorted(refs) == sorted(set(refs)) and len(refs) == 200  # no reference twice
        assert max(server.state.cancels_applied.values()) == 1
        assert not (tmp_path / "big.report.csv.lock").exists()


async def test_rows_carry_amounts_and_the_record_sums_what_was_released(tmp_path: Path) -> None:
    src = write_csv(
        tmp_path / "in.csv",
        [("o-1", "T1", "x1", "Ann"), ("o-2", "T1", "x2", "Bo"), ("captured-3", "T1", "x3", "Cy")],
        header="payment_reference,merchant_number,order_id,customer",
    )
    async with sandbox() as server:
        done = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert done.code == 0, done.log[-2000:]  # captured-3 is a follow-up
        rows = {r["payment_reference"]: r for r in read_report(tmp_path / "in.report.csv")}
        for ref, row in rows.items():
            payment = server.state.payments[("T1", ref)]
            assert (int(row["amount"]), row["currency"]) == (payment.amount, payment.currency)
            assert row["run_id"] and row["order_id"].startswith("x") and row["customer"]
        (record,) = runs_of(tmp_path / "in.report.csv")
        canceled = [r for r in rows.values() if r["outcome"] == "canceled"]
        assert record["released"] == {"EUR": sum(int(r["amount"]) for r in canceled)}
        assert {r["run_id"] for r in rows.values()} == {record["run_id"]}
        assert "released" in done.log and "in.report.csv" in done.log


async def test_echoed_columns_survive_a_kill_and_a_resume(tmp_path: Path) -> None:
    src = write_csv(
        tmp_path / "in.csv",
        [(f"k{i}", "T1", f"order-{i}") for i in range(300)],
        header="payment_reference,merchant_number,order_id",
    )
    async with sandbox() as server:

        async def sigkill(proc: asyncio.subprocess.Process) -> None:
            await server.state.wait_for(lambda s: cancel_requests(server) >= 40, within=30)
            kill(proc)

        await run_cli(
            "run", str(src), "--rate", "100", env=env_for(server), cwd=tmp_path, after_start=sigkill
        )
        again = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert again.code == 0, again.log[-2000:]
        view = latest(read_report(tmp_path / "in.report.csv"))
        assert len(view) == 300
        assert all(v["order_id"] == f"order-{v['payment_reference'][1:]}" for v in view.values())
        assert max(server.state.cancels_applied.values()) == 1


async def test_an_interrupted_run_is_recorded_and_says_how_to_finish(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"t{i}", "T1") for i in range(300)])
    async with sandbox() as server:

        async def term(proc: asyncio.subprocess.Process) -> None:
            await server.state.wait_for(lambda s: cancel_requests(server) >= 20, within=30)
            kill(proc, signal.SIGTERM)

        done = await run_cli(
            "run", str(src), "--rate", "100", env=env_for(server), cwd=tmp_path, after_start=term
        )
    assert done.code == 143
    (record,) = runs_of(tmp_path / "in.report.csv")
    assert record["exit_code"] == 143 and record["complete"] is False
    assert f"run the same command again: cancel-worker run {src} --rate 100" in done.stderr


async def test_a_report_without_a_run_record_resumes_with_a_warning(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1"), ("b", "T1")])
    async with sandbox() as server:
        await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        (tmp_path / "in.report.csv.runs.jsonl").unlink()  # an older version's report
        again = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert again.code == 0 and "report_without_run_record" in again.log
        assert "resuming" in again.log
        assert cancel_requests(server) == 2
    # every line of the run has its run_id, those that prepare logs before the start too
    events = [json.loads(x) for x in again.log.splitlines() if x.startswith("{")]
    (start,) = [e for e in events if e["event"] == "start"]
    named = {e["event"] for e in events if e.get("run_id") == start["run_id"]}
    assert {"report_without_run_record", "resuming", "start"} <= named
    assert all(e.get("run_id") == start["run_id"] for e in events)
