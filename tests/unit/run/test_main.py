"""Main, in-process: a whole run on the embedded sandbox, and what its end is told from.

`prepare` and `execute` run in the test's own event loop (no subprocess), so a failure
injected at the end of a run can be seen in the run record it leaves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tenacity import wait_none

from worker.errors import StorageError
from worker.model import Mode
from worker.report.journal import IntentJournal, journal_path
from worker.run.main import execute
from worker.run.prepare import prepare
from worker.settings import Settings


def night(tmp_path: Path, refs: list[str]) -> Settings:
    path = tmp_path / "night.csv"
    rows = "".join(f"{ref},T123456\n" for ref in refs)
    path.write_text("payment_reference,merchant_number\n" + rows)
    return Settings(
        mode=Mode.RUN,
        input=str(path),
        report=tmp_path / "night.report.csv",
        sandbox=True,
        rate=None,
        log_format="json",
        card=False,
    )


def end_record(report: Path) -> dict[str, object]:
    runs = report.with_name(report.name + ".runs.jsonl").read_text().splitlines()
    record: dict[str, object] = json.loads(runs[-1])
    assert record["event"] == "end"
    return record


async def test_a_normal_night_ends_green_and_its_record_says_so(tmp_path: Path) -> None:
    s = night(tmp_path, [f"EOD-2026-11-26-{i:04}" for i in range(1, 11)])
    code = await execute(prepare(s))
    record = end_record(s.report)
    assert code == 0 and record["exit_code"] == 0 and record["complete"] is True
    assert record["outcomes"] == {"canceled": 10}
    assert record["rows_read"] == record["rows_reported"] == 10
    assert not journal_path(s.report).exists()  # a complete night needs none


async def test_a_journal_that_cannot_be_kept_is_an_abort_the_record_tells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cannot_close(self: IntentJournal) -> None:
        raise StorageError(f"{self.path}: No space left on device")

    monkeypatch.setattr(IntentJournal, "close", cannot_close)
    # `broken-` answers 503 to everything: its row ends `failed`, so the journal must be
    # kept for the rerun; the fast backoff keeps the test short
    s = night(tmp_path, ["EOD-2026-11-26-0001", "broken-1"])
    code = await execute(prepare(s), wait=wait_none())
    record = end_record(s.report)
    assert record["outcomes"] == {"canceled": 1, "failed": 1}
    # exit 5 would send operations to a rerun that cannot trust the journal: 3, said so
    assert code == 3 and record["exit_code"] == 3 and record["complete"] is False
