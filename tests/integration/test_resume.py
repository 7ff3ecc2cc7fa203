"""Resume: a changed input by reference (the runs in-process, merge-reports through the
CLI), a stream past the memory budget (the real CLI on standard input), the on-disk
index left nowhere."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.inprocess import Ran, run_job
from tests.support import cancel_requests, env_for, read_report, run_cli, sandbox, write_csv
from worker.input import source as source_module
from worker.report import survey


def index_files(folder: Path) -> list[Path]:
    return list(folder.glob("*.index.sqlite"))


FAST = ("--rate", "2000", "--concurrency", "8", "--log-format", "json")


async def test_moved_deleted_and_added_lines_leave_one_final_row_per_line(
    tmp_path: Path,
) -> None:
    """Issue 18 item 10: delete bad line 3, append its corrected row, rerun with
    --allow-changed-input: each line's latest row names what it holds, nothing final is
    sent again, and merge-reports --input agrees."""
    src = write_csv(tmp_path / "in.csv", [("F-1", "T1"), ("F-2", ""), ("F-3", "T1"), ("F-4", "T1")])
    async with sandbox() as server:
        first = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert first.code == 1, first.log[-2000:]  # F-2 has no merchant: invalid
        write_csv(src, [("F-1", "T1"), ("F-3", "T1"), ("F-4", "T1"), ("F-2", "T1")])
        again = await run_job(
            "run",
            str(src),
            *FAST,
            "--allow-changed-input",
            "--memory-budget",
            "0",  # resumed by reference entirely from the on-disk index
            env=env_for(server),
            cwd=tmp_path,
        )
        assert again.code == 0, again.log[-2000:]
        assert [cancel_requests(server, f"F-{n}") for n in (1, 2, 3, 4)] == [1, 1, 1, 1]
    rows = read_report(tmp_path / "in.report.csv")
    by_line = {r["line"]: (r["payment_reference"], r["outcome"]) for r in rows}  # latest wins
    assert by_line == {
        "2": ("F-1", "canceled"),
        "3": ("F-3", "canceled"),
        "4": ("F-4", "canceled"),
        "5": ("F-2", "canceled"),
    }
    assert not index_files(tmp_path)
    merged = await run_cli(
        "merge-reports",
        "merged.csv",
        "in.report.csv",
        "--input",
        str(src),
        env=env_for(None),
        cwd=tmp_path,
    )
    assert merged.code == 0, merged.stderr[-2000:]
    view = [
        (r["line"], r["payment_reference"], r["outcome"])
        for r in read_report(tmp_path / "merged.csv")
    ]
    assert view == [
        ("2", "F-1", "canceled"),
        ("3", "F-3", "canceled"),
        ("4", "F-4", "canceled"),
        ("5", "F-2", "canceled"),
    ]


async def dry_run_on_stdin(tmp_path: Path, data: bytes, *extra: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        "run",
        "-",
        "--dry-run",
        "--log-format",
        "json",
        *extra,
        cwd=tmp_path,
        env=env_for(None),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(data), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_a_stream_past_the_budget_finds_every_duplicate_and_resumes(tmp_path: Path) -> None:
    refs = [f"s{n % 3000}" for n in range(4000)]  # 1,000 repeats, some 3,000 rows apart
    data = ("payment_reference,merchant_number\n" + "".join(f"{r},T1\n" for r in refs)).encode()
    code, err = await dry_run_on_stdin(tmp_path, data, "--memory-budget", "10KB")
    assert code == 0, err[-2000:]
    rows = read_report(tmp_path / "dry-run.csv")
    outcomes = [r["outcome"] for r in sorted(rows, key=lambda r: int(r["line"]))]
    assert outcomes == ["would_cancel"] * 3000 + ["duplicate"] * 1000
    assert not index_files(tmp_path)
    # the same stream again: a dry run reports what it would send again, but its
    # duplicates were reported already (matched by line in the spilled index)
    code, err = await dry_run_on_stdin(tmp_path, data, "--memory-budget", "10KB")
    assert code == 0, err[-2000:]
    again = [r["outcome"] for r in read_report(tmp_path / "dry-run.csv")]
    assert (again.count("would_cancel"), again.count("duplicate")) == (6000, 1000)


async def test_a_bad_memory_budget_is_a_usage_error(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1")])
    run = await run_cli(
        "run",
        str(src),
        "--dry-run",
        env=env_for(None, CANCEL_WORKER_MEMORY_BUDGET="lots"),
        cwd=tmp_path,
    )
    assert run.code == 2 and "--memory-budget must be a size" in run.stderr
    assert not (tmp_path / "in.dry-run.csv").exists()


async def test_a_rerun_starts_past_the_finished_rows_and_ends_as_one_that_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A night whose `broken-` payments failed (503): its rerun starts past the rows
    the report finished (its survey, small reads: many checkpoints), sends only the
    failed ones, and ends with the report, counts and exit code of a rerun that reads
    the whole file; a night that completes leaves no survey behind."""
    monkeypatch.setattr(source_module, "CHUNK", 200)
    monkeypatch.setattr(survey, "SPACING", 0)
    monkeypatch.setattr(survey, "MIN_BYTES", 0)
    rows = [(f"p{n}", "T1") for n in range(300)]
    rows[40] = rows[7]  # a repeat of a row before the checkpoint
    rows[250] = rows[9]  # and one after it
    rows[60] = ("", "T1")  # invalid
    rows[200], rows[260] = ("broken-a", "T1"), ("broken-b", "T1")
    src = write_csv(tmp_path / "in.csv", rows)
    async with sandbox() as server:
        first = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert first.code == 5, first.log[-2000:]  # failed rows: a rerun finishes them
        report = tmp_path / "in.report.csv"
        assert survey.survey_path(report).exists()
        other = tmp_path / "whole"
        other.mkdir()
        for name in (
            "in.csv",
            "in.report.csv",
            "in.report.csv.runs.jsonl",
            "in.report.csv.journal",
        ):
            (other / name).write_bytes((tmp_path / name).read_bytes())  # all but the survey
        sent = cancel_requests(server)
        fast = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        by_fast = cancel_requests(server) - sent
        whole = await run_job(
            "run", str(other / "in.csv"), *FAST, "--report", str(other / "in.report.csv"),
            env=env_for(server), cwd=other,
        )  # fmt: skip
        by_whole = cancel_requests(server) - sent - by_fast

    def resumed(ran: Ran) -> dict[str, Any]:
        events = [json.loads(x) for x in ran.log.splitlines() if x.startswith("{")]
        return next(e for e in events if e.get("event") == "resuming" and "rows" in e)

    assert resumed(fast)["from_line"] > 150 and resumed(whole)["from_line"] is None
    assert fast.code == whole.code == 5, (fast.log[-1500:], whole.log[-1500:])
    assert by_fast == by_whole  # the broken ones only (queried first: journaled), as often
    timing = ("elapsed_seconds", "requests_per_second", "run_id", "timestamp", "report")
    same = [{k: v for k, v in r.summary().items() if k not in timing} for r in (fast, whole)]
    assert same[0] == same[1]
    view = [[(r["line"], r["payment_reference"], r["outcome"]) for r in read_report(p)]
            for p in (report, other / "in.report.csv")]  # fmt: skip
    assert view[0] == view[1]
    assert ("42", "p7", "duplicate") in view[0] and ("252", "p9", "duplicate") in view[0]
    assert not cancel_requests(server, "p7") > 1
    clean = tmp_path / "clean"
    clean.mkdir()
    src = write_csv(clean / "in.csv", [(f"c{n}", "T1") for n in range(100)])
    async with sandbox() as server:
        done = await run_job("run", str(src), *FAST, env=env_for(server), cwd=clean)
    assert done.code == 0 and not survey.survey_path(clean / "in.report.csv").exists()
