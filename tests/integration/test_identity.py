"""One night's report is never taken for another's: bound to its target, its input (a
stream too), from before its first request, through whatever name it is reached by;
and merge-reports never writes over an input. Against the sandbox on loopback: the
real CLI for the refusals (exit 2), the environment, stdin, kills, signals and
concurrent runs; in-process (`tests.inprocess`) for the runs that set the scene or
finish the night."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from tests.inprocess import run_job
from tests.integration.test_record import runs_of
from tests.support import (
    Completed,
    cancel_requests,
    env_for,
    kill,
    latest,
    read_report,
    run_cli,
    sandbox,
    start_cli,
    write_csv,
)

FAST = ("--rate", "2000", "--concurrency", "8", "--log-format", "json")


def events(stderr: str, name: str) -> list[dict[str, object]]:
    found = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
    return [e for e in found if e.get("event") == name]


async def test_a_sandbox_report_is_not_resumed_against_another_api(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "payments.csv", [(f"p{i}", "T1") for i in range(20)])
    async with sandbox() as server:
        # CANCEL_WORKER_SANDBOX=1 left over, with the production settings in the environment
        leftover = env_for(server, CANCEL_WORKER_SANDBOX="1")
        first = await run_cli("run", str(src), *FAST, env=leftover, cwd=tmp_path)
        assert first.code == 0, first.stderr[-2000:]
        (warning,) = events(first.stderr, "sandbox_overrides")
        assert warning["level"] == "warning" and "BAMBORA_API_URL" in str(warning["message"])
        assert "BAMBORA_CLIENT_SECRET" in str(warning["ignored"])
        assert cancel_requests(server) == 0  # the embedded sandbox took them all
        assert {r["outcome"] for r in read_report(tmp_path / "payments.report.csv")} == {"canceled"}

        # the nightly command, against the API (another loopback server here)
        nightly = await run_cli("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert nightly.code == 2, nightly.stderr[-2000:]
        assert server.state.requests == [] and server.state.tokens_issued == 0
        assert "embedded sandbox" in nightly.stderr and server.api_url in nightly.stderr
        assert "--report payments.report-2.csv" in nightly.stderr
        (start,) = runs_of(tmp_path / "payments.report.csv", "start")
        assert start["target"] == "sandbox"

        # two sandbox runs are one target: the second resumes, with nothing left to do
        again = await run_job("run", str(src), *FAST, "--sandbox", env=env_for(None), cwd=tmp_path)
        assert again.code == 0 and "20 settled" in again.log, again.log[-2000:]
        assert not events(again.log, "sandbox_overrides")  # nothing configured to ignore

        # what the refusal says to run: the real payments get their own report
        real = await run_job(
            "run",
            str(src),
            *FAST,
            "--report",
            "payments.report-2.csv",
            env=env_for(server),
            cwd=tmp_path,
        )
        assert real.code == 0 and cancel_requests(server) == 20, real.log[-2000:]


async def feed(args: tuple[str, ...], body: bytes, env: dict[str, str], cwd: Path) -> Completed:
    proc = await start_cli(*args, env=env, cwd=cwd, stdin=True)
    out, err = await asyncio.wait_for(proc.communicate(body), 60)
    assert proc.returncode is not None
    return Completed(proc.returncode, out.decode(), err.decode())


def night(prefix: str, rows: int) -> bytes:
    lines = "".join(f"{prefix}-{i},T1,{'x' * 20}\n" for i in range(rows))
    return f"payment_reference,merchant_number,note\n{lines}".encode()


async def test_another_night_on_standard_input_is_refused_and_the_same_stream_resumes(
    tmp_path: Path,
) -> None:
    one, two = night("mon", 3000), night("tue", 40)  # Monday's is over 64 KiB
    args = ("run", "-", *FAST)
    async with sandbox() as server:
        first = await feed(args, one, env_for(server), tmp_path)
        assert first.code == 0, first.stderr[-2000:]

        other = await feed(args, two, env_for(server), tmp_path)
        assert other.code == 2 and len(other.stderr.strip().splitlines()) == 1, other.stderr
        assert cancel_requests(server) == 3000  # Tuesday's stream sent nothing
        assert "standard input" in other.stderr and "--report report-2.csv" in other.stderr
        (start,) = runs_of(tmp_path / "report.csv", "start")
        assert start["input_kind"] == "stream" and 0 < int(start["input_head_bytes"]) <= 65536

        same = await feed(args, one, env_for(server), tmp_path)
        assert same.code == 0, same.stderr[-2000:]
        assert "resuming" in same.stderr and cancel_requests(server) == 3000

        tuesday = await feed(
            ("run", "-", *FAST, "--report", "report-2.csv"), two, env_for(server), tmp_path
        )
        assert tuesday.code == 0 and cancel_requests(server) == 3040, tuesday.stderr[-2000:]
    assert len(latest(read_report(tmp_path / "report.csv"))) == 3000


async def test_inputs_sharing_a_default_report_are_refused_with_the_name_to_use(
    tmp_path: Path,
) -> None:
    csv_night = write_csv(tmp_path / "night.csv", [("c1", "T1"), ("c2", "T1")])
    jsonl_night = tmp_path / "night.jsonl"
    jsonl_night.write_text('{"payment_reference": "j1", "merchant_number": "T1"}\n')
    async with sandbox() as server:
        first = await run_cli("run", csv_night.name, *FAST, env=env_for(server), cwd=tmp_path)
        assert first.code == 0, first.stderr[-2000:]
        clash = await run_cli("run", jsonl_night.name, *FAST, env=env_for(server), cwd=tmp_path)
        assert clash.code == 2 and "--report night.jsonl.report.csv" in clash.stderr
        assert cancel_requests(server) == 2
        told = await run_cli(
            "run",
            jsonl_night.name,
            *FAST,
            "--report",
            "night.jsonl.report.csv",
            env=env_for(server),
            cwd=tmp_path,
        )
        assert told.code == 0 and cancel_requests(server, "j1") == 1, told.stderr[-2000:]


async def test_a_killed_run_binds_its_report_from_before_its_first_request(
    tmp_path: Path,
) -> None:
    a = write_csv(tmp_path / "a.csv", [(f"a{i}", "T1") for i in range(300)])
    b = write_csv(tmp_path / "b.csv", [(f"b{i}", "T1") for i in range(300)])
    report = tmp_path / "a.report.csv"
    async with sandbox() as server:

        async def sigkill(proc: asyncio.subprocess.Process) -> None:
            await server.state.wait_for(lambda s: cancel_requests(server) >= 20, within=30)
            kill(proc)

        killed = await run_cli(
            "run", str(a), "--rate", "100", env=env_for(server), cwd=tmp_path, after_start=sigkill
        )
        assert killed.code == -signal.SIGKILL
        sent = len(server.state.requests)

        other = await run_cli(
            "run", str(b), *FAST, "--report", report.name, env=env_for(server), cwd=tmp_path
        )
        assert other.code == 2 and "--allow-changed-input" in other.stderr, other.stderr
        assert "report_without_run_record" not in other.stderr
        checked = await run_cli(
            "check", str(a), *FAST, "--report", report.name, env=env_for(server), cwd=tmp_path
        )
        assert checked.code == 2 and "written by `run`" in checked.stderr, checked.stderr
        assert "--report a.check.csv" in checked.stderr
        assert len(server.state.requests) == sent  # neither sent anything
        assert runs_of(report) == []  # no end record: it was killed
        (start,) = runs_of(report, "start")
        assert start["mode"] == "run" and start["input"] == str(a)

        resumed = await run_job("run", str(a), *FAST, env=env_for(server), cwd=tmp_path)
        assert resumed.code == 0, resumed.log[-2000:]
        assert max(server.state.cancels_applied.values()) == 1
    assert len(latest(read_report(report))) == 300
    assert [r["event"] for r in runs_of(report, "start") + runs_of(report)] == ["start"] * 2 + [
        "end"
    ]


async def test_a_report_of_an_api_on_loopback_is_not_resumed_by_the_sandbox(
    tmp_path: Path,
) -> None:
    src = write_csv(tmp_path / "payments.csv", [(f"l{i}", "T1") for i in range(5)])
    async with sandbox() as server:  # the API: a fake on loopback
        first = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert first.code == 0, first.log[-2000:]
        api_url = server.api_url
    on_sandbox = await run_cli("run", str(src), *FAST, "--sandbox", env=env_for(None), cwd=tmp_path)
    assert on_sandbox.code == 2, on_sandbox.stderr[-2000:]
    assert f"against the API at {api_url}" in on_sandbox.stderr
    assert "--report payments.report-2.csv" in on_sandbox.stderr
    assert len(runs_of(tmp_path / "payments.report.csv", "start")) == 1  # it ran nothing


async def test_a_second_run_through_another_name_of_the_report_is_refused(
    tmp_path: Path,
) -> None:
    src = write_csv(tmp_path / "big.csv", [(f"s{i}", "T1") for i in range(200)])
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "link.csv").symlink_to(out / "night.report.csv")
    async with sandbox() as server:
        first = await start_cli(
            "run",
            str(src),
            "--rate",
            "10",  # 20 s: time for three more runs to start and be refused
            "--report",
            "out/night.report.csv",
            env=env_for(server),
            cwd=tmp_path,
        )
        await server.state.wait_for(lambda s: cancel_requests(server) >= 5, within=30)
        os.link(out / "night.report.csv", tmp_path / "hard.csv")
        second = await asyncio.gather(
            *(
                run_cli("run", str(src), *FAST, "--report", name, env=env_for(server), cwd=cwd)
                for name, cwd in (("link.csv", tmp_path), ("./night.report.csv", out))
            ),
            run_cli(
                "run", str(src), *FAST, "--report", "hard.csv", env=env_for(server), cwd=tmp_path
            ),
        )
        for refused in second:
            assert refused.code == 2 and "in use by another run" in refused.stderr, refused.stderr
            assert f"pid {first.pid}" in refused.stderr
        kill(first, signal.SIGTERM)
        await first.wait()

        two_names = await run_cli(
            "run", str(src), *FAST, "--report", "link.csv", env=env_for(server), cwd=tmp_path
        )
        assert two_names.code == 2 and "hard links" in two_names.stderr, two_names.stderr
        (tmp_path / "hard.csv").unlink()
        finish = await run_job(
            "run", str(src), *FAST, "--report", "link.csv", env=env_for(server), cwd=tmp_path
        )
        assert finish.code == 0, finish.log[-2000:]
        assert max(server.state.cancels_applied.values()) == 1
    refs = [r["payment_reference"] for r in read_report(out / "night.report.csv")]
    assert len(refs) == len(set(refs)) == 200  # one row each: nobody ran twice at once
    assert [r["exit_code"] for r in runs_of(out / "night.report.csv")] == [143, 0]
    # lock, journal and run record live beside the real file; the report card beside
    # the report as it was named
    assert sorted(os.listdir(tmp_path)) == ["big.csv", "link.csv", "link.csv.html", "out"]


async def test_merge_reports_never_writes_over_a_shards_recorded_input(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "p.csv", [(f"m{i}", "T1") for i in range(30)])
    async with sandbox() as server:
        shards = await asyncio.gather(
            *(
                run_cli(
                    "run", "p.csv", *FAST, "--shard", f"{i}/2", env=env_for(server), cwd=tmp_path
                )
                for i in range(2)
            )
        )
    assert [s.code for s in shards] == [0, 0]
    before = src.read_bytes()
    reports = [f"p.report.shard-{i}-of-2.csv" for i in range(2)]
    over = await run_cli("merge-reports", "p.csv", *reports, env=env_for(None), cwd=tmp_path)
    assert over.code == 2 and len(over.stderr.strip().splitlines()) == 1, over.stderr
    assert "the input of p.report.shard-0-of-2.csv" in over.stderr
    assert "e.g. p.report.csv" in over.stderr
    assert src.read_bytes() == before
    elsewhere = tmp_path / "elsewhere"  # from another folder: the record's absolute path
    elsewhere.mkdir()
    shard_paths = [str(tmp_path / r) for r in reports]
    away = await run_cli("merge-reports", str(src), *shard_paths, env=env_for(None), cwd=elsewhere)
    assert away.code == 2 and src.read_bytes() == before, away.stderr
    told = await run_cli("merge-reports", "p.report.csv", *reports, env=env_for(None), cwd=tmp_path)
    assert told.code == 0, told.stderr
    assert len(read_report(tmp_path / "p.report.csv")) == 30
