"""The verdict line: how the last run ended and what is left, from the files alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.page.reports import end_record, row, write_report
from worker.page.night import gather
from worker.page.verdict import Verdict, judge

DONE = row(2, "A", "canceled", amount=1, currency="EUR")


def verdict(tmp_path: Path, rows: list, records: list, command: str | None = None) -> Verdict:
    return judge(gather(write_report(tmp_path / "v.csv", rows, records)), command)


def test_settled_with_follow_ups_says_so_and_needs_no_command(tmp_path: Path) -> None:
    v = verdict(tmp_path, [DONE, row(3, "B", "not_found")], [end_record("r")])
    assert v.tone == "follow-up" and v.command is None
    assert v.headline == (
        "Complete; the last run: exit 0, settled: canceled, already_canceled, or follow-ups "
        "(not_cancelable, not_found). "
        "1 follow-up for support (not cancelable, not found)."
    )


def test_rows_for_a_person(tmp_path: Path) -> None:
    v = verdict(tmp_path, [DONE, row(3, "", "invalid")], [end_record("r", exit_code=1)])
    assert v.tone == "person" and v.command is None
    assert "1 row needs a person (invalid or rejected)" in v.headline


def test_rows_for_a_person_agree_in_number(tmp_path: Path) -> None:
    rows = [DONE, row(3, "", "invalid"), row(4, "C", "rejected")]
    v = verdict(tmp_path, rows, [end_record("r", exit_code=1)])
    assert "2 rows need a person (invalid or rejected)" in v.headline


def test_failed_references_say_to_rerun_once(tmp_path: Path) -> None:
    records = [end_record("r", exit_code=5)]
    v = verdict(tmp_path, [DONE, row(3, "B", "failed")], records, command="cancel-worker run x")
    assert v.tone == "left" and v.command == "cancel-worker run x"
    assert v.headline.startswith("Complete, 1 reference left to retry; the last run: exit 5")
    assert v.headline.lower().count("rerun the same command") == 1, v.headline
    assert "person" not in v.headline and "Nothing left" not in v.headline
    # and what else is left is said too, not hidden behind the retries
    rows = [DONE, row(3, "B", "failed"), row(4, "C", "rejected"), row(5, "D", "not_cancelable")]
    v = verdict(tmp_path, rows, records, command="cancel-worker run x")
    assert v.headline.endswith(
        "1 row needs a person (invalid or rejected); "
        "1 follow-up for support (not cancelable, not found)."
    ), v.headline


def test_a_run_stopped_by_its_input_says_why_and_what_to_do(tmp_path: Path) -> None:
    why = "input became unreadable after 2 rows: in.csv changed during the run"
    fix = "if the change is meant, run the same command with --allow-changed-input"
    records = [end_record("r", exit_code=1, complete=False, stopped_by=why, fix=fix)]
    v = verdict(tmp_path, [DONE], records, command="cancel-worker run in.csv")
    assert v.tone == "left"
    assert v.headline.startswith(f"Not finished; the last run: exit 1, stopped: {why}.")
    assert v.headline.endswith(f"to fix: {fix}.") and "rows need a person" not in v.headline


@pytest.mark.parametrize("code", [3, 4, 130, 143])
def test_a_run_that_stopped_early_is_not_finished(tmp_path: Path, code: int) -> None:
    records = [end_record("r", exit_code=code, complete=False)]
    v = verdict(tmp_path, [DONE], records, command="cancel-worker run in.csv --sandbox")
    assert v.tone == "left" and v.headline.startswith(f"Not finished; the last run: exit {code}")
    assert v.command == "cancel-worker run in.csv --sandbox"


def test_a_start_record_without_its_end_is_a_killed_run(tmp_path: Path) -> None:
    records = [
        end_record("r1"),
        {"event": "start", "run_id": "r2", "started_at": "2026-11-27T02:00:00.000Z"},
    ]
    v = verdict(tmp_path, [DONE], records)
    assert v.tone == "left"
    assert "the last run (started 2026-11-27T02:00:00.000Z) ended without a record" in v.headline
    assert v.command is not None and v.command.startswith("cancel-worker run payments.csv")


def test_a_start_record_then_its_end_is_one_finished_run(tmp_path: Path) -> None:
    records = [{"event": "start", "run_id": "r", "started_at": "x"}, end_record("r")]
    v = verdict(tmp_path, [DONE], records)
    assert v.tone == "done" and v.headline.endswith("Nothing left to do.")


def test_a_report_without_run_records(tmp_path: Path) -> None:
    v = verdict(tmp_path, [DONE, row(3, "B", "failed")], [])
    assert v.tone == "left"
    assert "it has no run record" in v.headline and "1 reference left to retry" in v.headline
    assert v.headline.endswith("is unknown. 1 reference left to retry."), v.headline


def test_a_sharded_check_run_is_rebuilt_with_its_shard(tmp_path: Path) -> None:
    records = [end_record("r", mode="check", shard="1/4", exit_code=143, complete=False)]
    v = verdict(tmp_path, [row(2, "A", "checked")], records)
    assert v.command is not None
    assert v.command.startswith(f"cancel-worker check payments.csv --report {tmp_path / 'v.csv'}")
    assert "--shard 1/4" in v.command and "plus the other options" in v.command


def test_a_killed_sandbox_run_is_rebuilt_with_sandbox(tmp_path: Path) -> None:
    """Without `--sandbox` the command the page gave was refused (another target)."""
    start = {"event": "start", "run_id": "r", "started_at": "x", "target": "sandbox"}
    v = verdict(tmp_path, [DONE], [start])
    assert v.command is not None and " --sandbox" in v.command
    api = {**start, "target": "https://api.example"}
    v = verdict(tmp_path, [DONE], [api])
    assert v.command is not None and "--sandbox" not in v.command
