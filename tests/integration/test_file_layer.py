"""The file layer never loses a row: edited reports, stray quotes, full disks, broken
pipes, standard input that never closes, FIFOs. Against the sandbox: the real CLI for
what the process owns (its usage errors, its pipes, stdin, FIFOs, signals, a full
disk under it); in-process (`tests.inprocess`) where the run's reading and writing of
files is the subject."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inprocess import run_job
from tests.support import (
    cancel_requests,
    env_for,
    latest,
    read_report,
    run_cli,
    sandbox,
    start_cli,
    write_csv,
)

FAST = ("--rate", "2000", "--concurrency", "8", "--log-format", "json")


def summary_of(stderr: str) -> dict[str, object]:
    events = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
    return next(e for e in reversed(events) if e.get("event") == "summary")


@pytest.mark.parametrize("name", ["r.jsonl", "r.csv"])
async def test_an_edited_report_is_refused_before_any_request(tmp_path: Path, name: str) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"e{i}", "T1") for i in range(10)])
    async with sandbox() as server:
        first = await run_job(
            "run", str(src), *FAST, "--report", name, env=env_for(server), cwd=tmp_path
        )
        assert first.code == 0, first.log[-2000:]
        report = tmp_path / name
        lines = report.read_bytes().splitlines(keepends=True)
        lines[2] = lines[2][: len(lines[2]) // 2] + b"\n"  # row 3 cut short by hand
        report.write_bytes(b"".join(lines))
        before = len(server.state.requests), server.state.tokens_issued
        again = await run_cli(
            "run", str(src), *FAST, "--report", name, env=env_for(server), cwd=tmp_path
        )
        assert again.code == 2, again.stderr[-2000:]
        assert "line 3" in again.stderr and name in again.stderr
        assert "Traceback" not in again.stderr
        assert (len(server.state.requests), server.state.tokens_issued) == before
        assert report.read_bytes() == b"".join(lines)  # untouched


async def test_a_torn_last_line_is_repaired_and_logged(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"t{i}", "T1") for i in range(5)])
    async with sandbox() as server:
        await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        report = tmp_path / "in.report.csv"
        whole = report.read_bytes()
        report.write_bytes(whole[:-9])  # a power cut in the middle of the last row
        again = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert again.code == 0, again.log[-2000:]
        repaired = [json.loads(x) for x in again.log.splitlines() if "report_repaired" in x]
        assert repaired and repaired[0]["removed_bytes"] > 0
        view = latest(read_report(report))
        # the cut row may have been an outcome, and the finished run had dropped its
        # journal: its reference is queried first (its cancel had landed), not sent again
        # unqueried and taken for already_canceled
        assert [v["outcome"] for v in view.values()] == ["canceled"] * 5
        assert [cancel_requests(server, f"t{i}") for i in range(5)] == [1] * 5
        cut_ref = whole[whole.rindex(b"\n", 0, len(whole) - 1) + 1 :].split(b",")[2].decode()
        assert "confirmed by query" in view[("T1", cut_ref)]["detail"]
        assert sum("confirmed by query" in v["detail"] for v in view.values()) == 1


@pytest.mark.parametrize("cut", ["in its last cells", "inside its reference"])
async def test_a_torn_rows_query_first_outlives_a_rerun_that_stops_before_it(
    tmp_path: Path, cut: str
) -> None:
    """The first rerun cuts the torn row off, then stops before reaching its line (its
    credentials refused): the next rerun must still query that reference first, since
    the cut row is gone and no journal said anything (it sent a second cancel, unqueried)."""
    src = write_csv(tmp_path / "in.csv", [(f"t{i}", "T1") for i in range(5)])
    report = tmp_path / "in.report.csv"
    async with sandbox() as server:
        first = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert first.code == 0, first.log[-2000:]
        whole = report.read_bytes()
        start = whole.rindex(b"\n", 0, len(whole) - 1) + 1
        cut_ref = whole[start:].split(b",")[2].decode()
        if cut == "in its last cells":  # its payment is whole: journaled before the cut
            report.write_bytes(whole[:-9])
        else:  # only its line is known: the run record carries it to the next run
            report.write_bytes(whole[: whole.index(cut_ref.encode(), start) + 1])
        refused = env_for(server, BAMBORA_CLIENT_SECRET="not-the-secret")
        stopped = await run_job("run", str(src), *FAST, env=refused, cwd=tmp_path)
        assert stopped.code == 3, stopped.log[-2000:]
        again = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert again.code == 0, again.log[-2000:]
        assert [cancel_requests(server, f"t{i}") for i in range(5)] == [1] * 5
    view = latest(read_report(report))
    assert view[("T1", cut_ref)]["outcome"] == "canceled"
    assert "confirmed by query" in view[("T1", cut_ref)]["detail"]


async def test_an_oversized_reference_never_makes_the_report_unreadable(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    big, huge = "x" * (500 << 10), "y" * (2 << 20)  # under and over the line limit
    src.write_text(
        "".join(
            json.dumps({"payment_reference": ref, "merchant_number": "T1"}) + "\n"
            for ref in (big, huge, "fine")
        )
    )
    async with sandbox() as server:
        first = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert first.code == 1, first.log[-2000:]
        rows = {r["line"]: r for r in read_report(tmp_path / "in.report.csv")}
        assert rows["1"]["outcome"] == rows["2"]["outcome"] == "invalid"
        assert len(rows["1"]["payment_reference"]) == 200 and str(len(big)) in rows["1"]["detail"]
        assert rows["2"]["payment_reference"] == "" and "bytes" in rows["2"]["detail"]
        again = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert again.code == 1 and len(read_report(tmp_path / "in.report.csv")) == 3
        assert cancel_requests(server) == 1


async def test_a_stray_quote_loses_no_following_line(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    body = [f"q-{i},T1," for i in range(2, 3001)]
    body[10] = '"q-10,T1,'  # physical line 12
    src.write_text("payment_reference,merchant_number,comment\n" + "\n".join(body) + "\n")
    async with sandbox() as server:
        done = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        rows = read_report(tmp_path / "in.report.csv")
    assert done.code == 1, done.log[-2000:]
    assert sorted(int(r["line"]) for r in rows) == list(range(2, 3001))
    invalid = [r for r in rows if r["outcome"] == "invalid"]
    assert [r["line"] for r in invalid] == ["12"] and "quote" in invalid[0]["detail"]
    summary = summary_of(done.log)
    assert summary["rows_read"] == summary["rows_reported"] == 2999
    assert summary["lines_read"] == 3000


@contextlib.contextmanager
def small_disk(path: Path, size: str = "64k") -> Iterator[Path]:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_a_full_disk_stops_the_run_with_exit_3(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"full-disk-{i:05d}", "T1") for i in range(3000)])
    with small_disk(tmp_path / "small") as disk:
        async with sandbox() as server:
            started = time.monotonic()
            done = await run_cli(
                "run",
                str(src),
                *FAST,
                "--report",
                str(disk / "r.csv"),
                env=env_for(server),
                cwd=tmp_path,
                timeout=60,
            )
            elapsed = time.monotonic() - started
            assert done.code == 3, done.stderr[-2000:]
            assert elapsed < 30
            aborted = [json.loads(x) for x in done.stderr.splitlines() if '"aborted"' in x]
            assert aborted and (
                "r.csv" in aborted[0]["reason"] or "journal" in aborted[0]["reason"]
            )
            assert "No space left on device" in aborted[0]["reason"]
            assert "Traceback" not in done.stderr
            reported = {
                r["payment_reference"]
                for r in read_report(disk / "r.csv")
                if r["outcome"] == "canceled"
            }
            applied = {ref for (_, ref), n in server.state.cancels_applied.items() if n}
            assert reported <= applied
            assert len(applied - reported) <= 8  # at most --concurrency cancels unreported
            assert len(applied) < 3000  # it stopped sending


async def test_a_broken_log_pipe_still_yields_a_complete_report(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"pipe-{i}", "T1") for i in range(300)])
    async with sandbox() as server:
        read_end, write_end = os.pipe()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "worker",
            "run",
            str(src),
            *FAST,
            "--log-level",
            "debug",
            env=env_for(server),
            cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=write_end,
        )
        os.close(write_end)
        with os.fdopen(read_end, "rb") as logs:
            for _ in range(3):  # as `| head -3` would; off the loop, which serves the sandbox
                await asyncio.to_thread(logs.readline)
        code = await asyncio.wait_for(proc.wait(), 60)
        view = latest(read_report(tmp_path / "in.report.csv"))
    assert code == 0
    assert len(view) == 300 and {v["outcome"] for v in view.values()} == {"canceled"}
    assert not (tmp_path / "in.report.csv.journal").exists()


async def test_sigterm_with_a_never_closing_stdin_exits_in_time(tmp_path: Path) -> None:
    async with sandbox() as server:
        proc = await start_cli(
            "run", "-", *FAST, "--grace-seconds", "2", env=env_for(server), cwd=tmp_path, stdin=True
        )
        assert proc.stdin is not None
        proc.stdin.write(b"payment_reference,merchant_number\nt9-c,T1\n")
        await proc.stdin.drain()
        # the row in the pipe is processed as it arrives, not after a batch fills
        await server.state.wait_for(lambda s: cancel_requests(server, "t9-c") == 1, within=20)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 15)
        elapsed = time.monotonic() - started
        proc.stdin.close()
    assert code == 143
    assert elapsed < 2 + 3
    rows = read_report(tmp_path / "report.csv")
    assert [(r["payment_reference"], r["outcome"]) for r in rows] == [("t9-c", "canceled")]


@pytest.mark.parametrize("how", ["fifo", "process-substitution"])
async def test_an_input_that_can_be_read_only_once(tmp_path: Path, how: str) -> None:
    body = b"payment_reference,merchant_number\nf1,T1\nf2,T1\nf1,T1\n"
    async with sandbox() as server:
        if how == "fifo":
            fifo = tmp_path / "ff.csv"
            os.mkfifo(fifo)
            args: tuple[str, ...] = ("run", str(fifo), *FAST)
            proc = await start_cli(*args, env=env_for(server), cwd=tmp_path)
            # opening the FIFO blocks until the worker opens it too
            await asyncio.to_thread(fifo.write_bytes, body)
            report = tmp_path / "ff.report.csv"
        else:
            read_end, write_end = os.pipe()
            os.write(write_end, body)
            os.close(write_end)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "worker",
                "run",
                f"/dev/fd/{read_end}",
                *FAST,
                env=env_for(server),
                cwd=tmp_path,
                pass_fds=(read_end,),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            os.close(read_end)
            report = tmp_path / f"{read_end}.report.csv"
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()[-2000:]
        rows = read_report(report)
        assert sorted((r["line"], r["outcome"]) for r in rows) == [
            ("2", "canceled"),
            ("3", "canceled"),
            ("4", "duplicate"),
        ]
        assert cancel_requests(server) == 2


async def test_user_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1")])
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir").mkdir()
    (tmp_path / "binary.csv").write_bytes(b"\x00\x01\x02payment\xff\xfe\n")
    (tmp_path / "latin1-secret").write_bytes(b"s\xe9cret\n")
    shard = tmp_path / "s.report.shard-0-of-1.jsonl"
    shard.write_bytes(b'{"line": 2, "merchant_number": "T1"')  # torn last line
    async with sandbox() as server:
        cases: list[tuple[tuple[str, ...], dict[str, str]]] = [
            (("run", str(src), "--report", "afile/r.csv"), {}),
            (("run", str(src), "--report", "/nonexistent/dir/r.csv"), {}),
            (("run", str(src), "--report", "adir"), {}),
            (("run", str(tmp_path / "missing.csv")), {}),
            (("run", str(tmp_path / "adir")), {}),
            (("run", str(tmp_path / "binary.csv")), {}),
            (("run", str(src), "--shard", "3/2"), {}),
            (("run", str(src), "--retry-outcomes", "canceled"), {}),
            (("run", str(src), "--comment", "c" * 300), {}),
            (("run", str(src)), {"BAMBORA_API_URL": "http://api.example.com"}),
            (("run", str(src)), {"BAMBORA_API_URL": "not a url"}),
            (("run", str(src)), {"BAMBORA_CLIENT_SECRET_FILE": str(tmp_path / "latin1-secret")}),
            (("run", str(src)), {"BAMBORA_CLIENT_SECRET_FILE": str(tmp_path / "nope")}),
            (("run", str(src)), {"JOB_COMPLETION_INDEX": "1"}),
            (("run", str(src)), {"HTTP_PROXY": "socks5://proxy.example:1080", "NO_PROXY": ""}),
            (("merge-reports", str(tmp_path / "out.csv"), str(shard)), {}),
            (("merge-reports", str(shard), str(shard)), {}),
        ]
        for args, extra in cases:
            env = env_for(server, **extra)
            if "BAMBORA_CLIENT_SECRET_FILE" in extra:
                env.pop("BAMBORA_CLIENT_SECRET")
            done = await run_cli(*args, env=env, cwd=tmp_path)
            assert done.code == 2, (args, done.stderr)
            assert "Traceback" not in done.stderr, (args, done.stderr)
            assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
        assert server.state.requests == [] and server.state.tokens_issued == 0
    assert not await asyncio.to_thread(os.path.exists, "/nonexistent/dir")
    # found before anything was written: not even the report's header
    assert not await asyncio.to_thread(os.path.exists, tmp_path / "in.report.csv")
    strays = await asyncio.to_thread(
        lambda: [*tmp_path.glob("*.journal"), *tmp_path.glob("*.lock")]
    )
    assert strays == []


async def test_refused_credentials_leave_no_stray_files(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1")])
    async with sandbox() as server:
        done = await run_job(
            "run", str(src), *FAST, env=env_for(server, BAMBORA_CLIENT_SECRET="wrong"), cwd=tmp_path
        )
    assert done.code == 3
    leftovers = sorted(await asyncio.to_thread(os.listdir, tmp_path))
    # the report (its header), the record of this run and its report card; no journal, no lock
    assert leftovers == [
        "in.csv",
        "in.report.csv",
        "in.report.csv.html",
        "in.report.csv.runs.jsonl",
    ]


async def test_a_semicolon_file_and_an_empty_night(tmp_path: Path) -> None:
    semi = tmp_path / "semi.csv"
    semi.write_text("payment_reference;merchant_number\nd1;T1\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("payment_reference,merchant_number\n")
    async with sandbox() as server:
        done = await run_job(
            "run", str(semi), *FAST, "--delimiter", ";", env=env_for(server), cwd=tmp_path
        )
        assert done.code == 0 and cancel_requests(server, "d1") == 1
        nothing = await run_job("run", str(empty), *FAST, env=env_for(server), cwd=tmp_path)
    assert nothing.code == 0 and '"empty_input"' in nothing.log
