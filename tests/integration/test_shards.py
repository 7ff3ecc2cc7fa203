"""Sharding and merge-reports: shards are disjoint, cover the file, and merge proves it."""

from __future__ import annotations

import asyncio
import csv
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import REPO, env_for, read_report, run_cli, sandbox, write_csv
from worker import __version__
from worker.input.shard import shard_of
from worker.model import REPORT_COLUMNS
from worker.settings import Shard

PAIRS = [
    ("T1", "ref-0"),
    ("T1", "ref-1"),
    ("T1", "ref-2"),
    ("123456", "order-42"),
    ("T9", "café/ü?#%"),
    ("", "x"),
]
#: What every process must compute for PAIRS with 7 and with 1000 shards.
KNOWN = {"7": [2, 5, 3, 0, 6, 2], "1000": [9, 13, 683, 899, 940, 191]}

_IN_CHILD = """
import json, sys
from worker.input.shard import shard_of
pairs = json.loads(sys.argv[1])
print(json.dumps({
    "salted": hash("T1"),
    "7": [shard_of(m, r, 7) for m, r in pairs],
    "1000": [shard_of(m, r, 1000) for m, r in pairs],
}))
"""


def test_shard_of_is_even() -> None:
    counts = [0, 0, 0]
    for i in range(3000):
        counts[shard_of("T1", f"ref-{i}", 3)] += 1
    assert all(900 < c < 1100 for c in counts)
    assert Shard.parse("2/3") == Shard(2, 3)


def test_shard_of_is_the_same_in_every_process_whatever_the_hash_seed() -> None:
    # Every pod of an Indexed Job is its own interpreter with its own hash() salt.
    salts = set()
    for seed in ("0", "1", "4242"):
        child = subprocess.run(
            [sys.executable, "-c", _IN_CHILD, json.dumps(PAIRS)],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)},
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        got = json.loads(child.stdout)
        salts.add(got.pop("salted"))
        assert got == KNOWN, f"PYTHONHASHSEED={seed}"
    assert len(salts) == 3  # the seeds did change hash(): the check above means something
    assert {str(n): [shard_of(m, r, n) for m, r in PAIRS] for n in (7, 1000)} == KNOWN


async def test_three_shards_and_merge_cover_the_file_exactly_once(tmp_path: Path) -> None:
    rows = [(f"s{i}", "T1") for i in range(150)] + [("", "T1"), ("s7", "T1")]
    src = write_csv(tmp_path / "pay.csv", rows)
    async with sandbox() as server:
        runs = await asyncio.gather(
            *(
                run_cli(
                    "run",
                    str(src),
                    "--shard",
                    f"{i}/3",
                    "--rate",
                    "500",
                    "--log-format",
                    "json",
                    env=env_for(server),
                    cwd=tmp_path,
                )
                for i in range(2)
            ),
            run_cli(
                "run",
                str(src),
                "--rate",
                "500",
                "--log-format",
                "json",
                env=env_for(server, JOB_COMPLETION_INDEX="2", SHARD_COUNT="3"),
                cwd=tmp_path,
            ),
        )
        # exit 1 only for the shard that holds the invalid row
        invalid_shard = [
            i
            for i in range(3)
            if any(
                r["outcome"] == "invalid"
                for r in read_report(tmp_path / f"pay.report.shard-{i}-of-3.csv")
            )
        ]
        assert len(invalid_shard) == 1
        assert [r.code for r in runs] == [1 if i in invalid_shard else 0 for i in range(3)]
        assert max(server.state.cancels_applied.values()) == 1
        assert sum(server.state.cancels_applied.values()) == 150
    shards = [read_report(tmp_path / f"pay.report.shard-{i}-of-3.csv") for i in range(3)]
    keys = [{(r["merchant_number"], r["payment_reference"], r["line"]) for r in s} for s in shards]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert sum(len(s) for s in shards) == 152
    assert all(len(s) > 20 for s in shards)  # really spread

    reports = [str(tmp_path / f"pay.report.shard-{i}-of-3.csv") for i in range(3)]
    merged = await run_cli(
        "merge-reports", "all.csv", *reports, "--input", str(src), env=env_for(None), cwd=tmp_path
    )
    assert merged.code == 0, merged.stderr
    # `pay.report.shard-*`, as a shell expands it, names each shard's run record and
    # report card too: those are skipped, and the merge is the same
    globbed = sorted(glob.glob(str(tmp_path / "pay.report.shard-*")))
    assert len(globbed) == 9
    again = await run_cli("merge-reports", "globbed.csv", *globbed, env=env_for(None), cwd=tmp_path)
    assert again.code == 0, again.stderr
    assert again.stdout.count("not a report, skipped: ") == 6
    assert read_report(tmp_path / "globbed.csv") == read_report(tmp_path / "all.csv")
    all_rows = read_report(tmp_path / "all.csv")
    assert [int(r["line"]) for r in all_rows] == list(range(2, 154))
    lines = merged.stdout.splitlines()
    assert lines[0] == "merged 3 reports into all.csv: 152 rows, none missing or doubled"
    assert lines[1:4] == ["canceled 150", "duplicate 1", "invalid 1"]

    as_jsonl = await run_cli(
        "merge-reports", "all.jsonl", *reports, env=env_for(None), cwd=tmp_path
    )
    assert as_jsonl.code == 0, as_jsonl.stderr
    typed = [json.loads(x) for x in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert [r["line"] for r in typed] == list(range(2, 154))  # integers, in line order
    canceled = [r for r in typed if r["outcome"] == "canceled"]
    assert all(r["http_status"] == 201 and r["attempts"] == 1 for r in canceled)
    invalid = next(r for r in typed if r["outcome"] == "invalid")
    assert invalid["payment_reference"] is None and invalid["http_status"] is None

    missing = await run_cli("merge-reports", "x.csv", *reports[:2], env=env_for(None), cwd=tmp_path)
    assert missing.code == 1 and "missing" in missing.stderr
    # shard 0's report given twice: every one of its references would be doubled
    doubled = await run_cli(
        "merge-reports", "y.csv", *reports, reports[0], env=env_for(None), cwd=tmp_path
    )
    assert doubled.code == 1 and "appears in both" in doubled.stderr

    # the merge the README warns about: OUT is shard 0, which the glob also names
    before = files_in(tmp_path)
    over = await run_cli("merge-reports", reports[0], *reports, env=env_for(None), cwd=tmp_path)
    assert over.code == 2 and len(over.stderr.strip().splitlines()) == 1, over.stderr
    assert "choose another OUT" in over.stderr and "Traceback" not in over.stderr
    assert files_in(tmp_path) == before  # shard 0 as it was, and nothing written beside it

    # a copy of the shards, one edited by hand: its row on some line names another reference
    edited = tmp_path / "edited"
    copies, line = copy_and_edit(reports, edited)
    plain, checked = await asyncio.gather(
        run_cli("merge-reports", "ok.csv", *copies, env=env_for(None), cwd=edited),
        run_cli(
            "merge-reports", "bad.csv", *copies, "--input", str(src), env=env_for(None), cwd=edited
        ),
    )
    assert plain.code == 0, plain.stderr  # nothing missing or doubled: only --input sees it
    assert checked.code == 1 and len(checked.stderr.strip().splitlines()) == 1, checked.stderr
    assert f"naming another merchant or reference (line {line})" in checked.stderr
    assert "bad.csv" not in files_in(edited)


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def copy_and_edit(reports: list[str], folder: Path) -> tuple[list[str], str]:
    """Copies the shard reports into `folder`, with one reference changed, and that line."""
    folder.mkdir()
    copies = [shutil.copy(r, folder) for r in reports]
    with open(copies[1], newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    victim = next(r for r in rows if r["outcome"] == "canceled")
    victim["payment_reference"] = "not-in-the-input"
    with open(copies[1], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, reader.fieldnames or [])  # whatever columns the shard has
        writer.writeheader()
        writer.writerows(rows)
    return copies, victim["line"]


def write_shards_with_amounts(folder: Path) -> tuple[Path, Path]:
    """Shard 0: CSV with amount, currency and run_id columns and a run record; 1: JSONL."""
    header = ",".join([*REPORT_COLUMNS, "amount", "currency", "run_id"])
    done = "201,,,1,,2026-11-26T01:00:00.000Z"
    zero = folder / "p.report.shard-0-of-2.csv"
    zero.write_text(
        f"{header}\r\n2,T1,a,canceled,{done},1234500,EUR,r0\r\n3,T1,b,canceled,{done},99,EUR,r0\r\n"
    )
    one = folder / "p.report.shard-1-of-2.jsonl"
    row = dict.fromkeys(REPORT_COLUMNS) | {"line": 4, "merchant_number": "T1"}
    row |= {"payment_reference": "c", "outcome": "not_found", "http_status": 404, "attempts": 1}
    one.write_text(json.dumps(row) + "\n")
    return zero, one


RUN_RECORD = {"run_id": "r0", "mode": "run", "shard": "0/2", "exit_code": 0, "complete": True}


async def test_merge_reports_keeps_run_records_and_sums_amounts_released(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "p.csv", [("a", "T1"), ("b", ""), ("c", "T1")])
    zero, one = write_shards_with_amounts(tmp_path)
    (tmp_path / f"{zero.name}.runs.jsonl").write_text(json.dumps(RUN_RECORD) + "\n")
    args = ["merge-reports", "all.csv", zero.name, one.name, "--input", src.name]
    env = env_for(None, BAMBORA_MERCHANT_NUMBER="T1")  # line 3 names no merchant

    merged = await run_cli(*args, env=env, cwd=tmp_path)
    assert merged.code == 0, merged.stderr
    assert merged.stdout.splitlines() == [
        "merged 2 reports into all.csv: 3 rows, none missing or doubled",
        "canceled 2",
        "not_found 1",
        "released 12,345.99 EUR",
        f"no run record beside {one.name}: skipped",
        "run records: all.csv.runs.jsonl",
        "report card: all.csv.html",
    ]
    kept, totals = [json.loads(x) for x in files_in(tmp_path)["all.csv.runs.jsonl"].splitlines()]
    assert kept == {**RUN_RECORD, "report": zero.name}
    assert totals.pop("merged_at").endswith("Z")
    assert totals == {
        "mode": "merge",
        "reports": [zero.name, one.name],
        "rows": 3,
        "outcomes": {"canceled": 2, "not_found": 1},
        "released": {"EUR": 1234599},
        "version": __version__,
    }
    assert [r["run_id"] for r in read_report(tmp_path / "all.csv")] == ["r0", "r0", ""]

    other = await run_cli(*args, "--merchant", "T2", env=env, cwd=tmp_path)
    assert other.code == 1 and "(line 3)" in other.stderr, other.stderr


async def test_merge_reports_writes_nothing_when_a_shard_is_unreadable(tmp_path: Path) -> None:
    zero, one = write_shards_with_amounts(tmp_path)
    torn = files_in(tmp_path)[one.name] + b'{"line": 5'  # a torn last row: rerun that shard first
    (tmp_path / one.name).write_bytes(torn)
    done = await run_cli(
        "merge-reports", "all.csv", zero.name, one.name, env=env_for(None), cwd=tmp_path
    )
    assert done.code == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "cut short" in done.stderr
    assert sorted(files_in(tmp_path)) == sorted([zero.name, one.name])  # no OUT, no temporary


def test_merge_reports_whose_reader_goes_away_still_merges_and_exits_0(tmp_path: Path) -> None:
    header = ",".join(REPORT_COLUMNS) + "\n"
    shards = []
    for i, ref in enumerate(("a", "b")):
        shard = tmp_path / f"p.report.shard-{i}-of-2.csv"
        shard.write_text(header + f"{i + 2},T1,{ref},canceled,201,,Canceled,1,,2026-12-01T21:00Z\n")
        shards.append(str(shard))
    read, write = os.pipe()
    os.close(read)  # `| head -0`: nobody reads standard output
    try:
        done = subprocess.run(
            [sys.executable, "-m", "worker", "merge-reports", "all.csv", *shards],
            cwd=tmp_path,
            env=env_for(None),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert [r["payment_reference"] for r in read_report(tmp_path / "all.csv")] == ["a", "b"]
    assert (tmp_path / "all.csv.html").exists()  # the work after the first line went on
