"""Sharding and merge-reports: shards are disjoint, cover the file, and merge proves it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO, env_for, read_report, run_cli, sandbox, write_csv
from worker.input.shard import shard_of
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
    all_rows = read_report(tmp_path / "all.csv")
    assert [int(r["line"]) for r in all_rows] == list(range(2, 154))

    missing = await run_cli("merge-reports", "x.csv", *reports[:2], env=env_for(None), cwd=tmp_path)
    assert missing.code == 1 and "missing" in missing.stderr
    # shard 0's report given twice: every one of its references would be doubled
    doubled = await run_cli(
        "merge-reports", "y.csv", *reports, reports[0], env=env_for(None), cwd=tmp_path
    )
    assert doubled.code == 1 and "appears in both" in doubled.stderr
