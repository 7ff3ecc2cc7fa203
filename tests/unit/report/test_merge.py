"""merge-reports in process: refusals, whole writes, JSON types, columns, --input, run records."""

from __future__ import annotations

import csv
import errno
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import write_csv
from worker import __version__
from worker.errors import (
    MergeError,
    OutRefused,
    ReportError,
    UnreadableReport,
    UsageError,
)
from worker.input.admission import moved_detail
from worker.model import REPORT_COLUMNS, Outcome
from worker.report import merge as merge_module
from worker.report.merge import merge
from worker.report.runs import runs_path


def row(line: int, ref: str, outcome: str = "canceled", merchant: str = "T1", **extra: Any) -> Any:
    return {
        "line": line,
        "merchant_number": merchant,
        "payment_reference": ref,
        "outcome": outcome,
        "http_status": 201 if outcome == "canceled" else "",
        "error_type": "",
        "payment_state": "",
        "attempts": 1,
        "detail": "",
        "finished_at": "2026-11-26T01:02:03.000Z",
        **extra,
    }


def csv_report(path: Path, rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, [*REPORT_COLUMNS, *extra], lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    return [
        csv_report(tmp_path / "p.report.shard-0-of-2.csv", [row(2, "a"), row(4, "c")]),
        csv_report(tmp_path / "p.report.shard-1-of-2.csv", [row(3, "b", "not_found")]),
    ]


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # the usual umask, under which a plain open() gives 0644
    try:
        yield
    finally:
        os.umask(old)


def spellings(tmp_path: Path, target: Path) -> dict[str, Path]:
    """Other names for `target`: another path to it, a symlink, a hard link."""
    (tmp_path / "sub").mkdir(exist_ok=True)
    (tmp_path / "symlink.csv").symlink_to(target)
    os.link(target, tmp_path / "hardlink.csv")
    return {
        "same": target,
        "dotted": tmp_path / "sub" / ".." / target.name,
        "symlink": tmp_path / "symlink.csv",
        "hardlink": tmp_path / "hardlink.csv",
    }


@pytest.mark.parametrize("how", ["same", "dotted", "symlink", "hardlink"])
def test_an_out_that_is_an_input_report_is_refused_and_nothing_is_written(
    tmp_path: Path, shards: list[Path], how: str
) -> None:
    out = spellings(tmp_path, shards[0])[how]
    before = shards[0].read_bytes()
    files = sorted(tmp_path.iterdir())
    with pytest.raises(OutRefused, match="choose another OUT"):
        merge(out, shards)
    assert shards[0].read_bytes() == before
    assert sorted(tmp_path.iterdir()) == files  # no run record, no temporary file


def test_an_out_that_would_overwrite_a_run_record_or_the_input_is_refused(
    tmp_path: Path, shards: list[Path]
) -> None:
    records = runs_path(shards[0])
    records.write_text('{"run_id": "r0"}\n')
    os.link(records, tmp_path / "other.csv.runs.jsonl")  # OUT=other.csv: its record is shard 0's
    src = write_csv(tmp_path / "p.csv", [("a", "T1"), ("b", "T1"), ("c", "T1")])
    for out in (records, tmp_path / "other.csv", src):
        with pytest.raises(OutRefused, match="would overwrite"):
            merge(out, shards, src)
    assert records.read_text() == '{"run_id": "r0"}\n'
    assert not (tmp_path / "other.csv").exists()


def test_a_merge_is_written_whole_with_mode_0640(
    tmp_path: Path, shards: list[Path], umask_022: None
) -> None:
    out = tmp_path / "all.csv"
    merged = merge(out, shards)
    with open(out, newline="", encoding="utf-8") as f:
        assert [r["payment_reference"] for r in csv.DictReader(f)] == ["a", "b", "c"]
    assert out.stat().st_mode & 0o777 == 0o640
    assert runs_path(out).stat().st_mode & 0o777 == 0o640
    assert merged.lines()[0] == f"merged 2 reports into {out}: 3 rows, none missing or doubled"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_an_unreadable_shard_leaves_no_out_and_an_old_out_as_it_was(
    tmp_path: Path, shards: list[Path]
) -> None:
    shards[1].write_bytes(shards[1].read_bytes() + b'5,T1,"torn')  # no final newline
    with pytest.raises(ReportError, match="cut short"):
        merge(tmp_path / "all.csv", shards)
    assert not (tmp_path / "all.csv").exists()
    old = tmp_path / "old.jsonl"
    old.write_bytes(b"yesterday\n")
    with pytest.raises(ReportError):
        merge(old, shards)
    assert old.read_bytes() == b"yesterday\n"
    assert not runs_path(tmp_path / "all.csv").exists()


def test_a_failed_write_removes_its_temporary_files(
    tmp_path: Path, shards: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(merge_module.os, "fsync", full_disk)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(OutRefused, match="No space left on device"):
        merge(tmp_path / "all.jsonl", shards)
    assert sorted(tmp_path.iterdir()) == before


def test_jsonl_output_keeps_json_types_from_csv_shards(tmp_path: Path) -> None:
    extra = ("amount", "currency")
    one = csv_report(
        tmp_path / "r.shard-0-of-2.csv",
        [row(2, "007", amount="1250", currency="EUR"), row(5, "", "invalid", merchant="")],
        extra,
    )
    two = tmp_path / "r.shard-1-of-2.jsonl"
    two.write_text(json.dumps(row(3, "x", "failed", http_status=503, attempts=5)) + "\n")
    merge(tmp_path / "all.jsonl", [one, two])
    got = {r["line"]: r for r in jsonl(tmp_path / "all.jsonl")}
    assert got[2]["payment_reference"] == "007" and got[2]["merchant_number"] == "T1"
    assert (got[2]["http_status"], got[2]["attempts"], got[2]["amount"]) == (201, 1, 1250)
    assert got[2]["currency"] == "EUR" and got[2]["error_type"] is None
    assert got[5]["payment_reference"] is None and got[5]["http_status"] is None
    assert (got[3]["http_status"], got[3]["amount"], got[3]["currency"]) == (503, None, None)
    assert list(got[3]) == [*REPORT_COLUMNS, *extra]


def test_a_csv_shard_with_a_bad_number_is_unreadable(tmp_path: Path) -> None:
    shard = csv_report(tmp_path / "r.csv", [row(2, "a", attempts="two")])
    with pytest.raises(UnreadableReport, match="row 1: attempts is not a whole number"):
        merge(tmp_path / "all.jsonl", [shard])


def test_csv_output_has_the_contract_columns_then_extras_in_the_order_first_seen(
    tmp_path: Path,
) -> None:
    one = csv_report(
        tmp_path / "r.shard-0-of-2.csv",
        [row(2, "a", amount="5", currency="SEK")],
        ("currency", "amount"),
    )
    two = tmp_path / "r.shard-1-of-2.jsonl"
    two.write_text(json.dumps(row(3, "b", run_id="r1", amount=7, echo="x")) + "\n")
    merge(tmp_path / "all.csv", [one, two])
    with open(tmp_path / "all.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == [*REPORT_COLUMNS, "currency", "amount", "run_id", "echo"]
    assert [(r["amount"], r["currency"], r["run_id"]) for r in rows] == [
        ("5", "SEK", ""),
        ("7", "", "r1"),
    ]


def input_and_shards(tmp_path: Path) -> tuple[Path, Path, Path]:
    long_ref = "L" * 2500  # invalid: too long; its report row echoes the first 200 characters
    src = write_csv(tmp_path / "p.csv", [("a", "T1"), ("b", ""), (long_ref, "T1"), ("d", "T1")])
    one = csv_report(
        tmp_path / "p.report.shard-0-of-2.csv",
        [row(2, "a"), row(4, long_ref[:200], "invalid")],
    )
    two = csv_report(tmp_path / "p.report.shard-1-of-2.csv", [row(3, "b"), row(5, "d")])
    return src, one, two


def test_input_rows_match_their_report_rows_by_line_and_content(tmp_path: Path) -> None:
    src, one, two = input_and_shards(tmp_path)
    assert merge(tmp_path / "all.csv", [one, two], src, "T1").totals["rows"] == 4
    with pytest.raises(
        MergeError, match=r"^1 input row has a report row naming another .* \(line 3\)$"
    ):
        merge(tmp_path / "all.csv", [one, two], src, "T2")  # line 3 names no merchant: T2's
    two.write_text(two.read_text().replace(",d,", ",e,"))  # a shard edited: another reference
    with pytest.raises(MergeError, match=r"naming another merchant or reference \(line 5\)"):
        merge(tmp_path / "all.csv", [one, two], src, "T1")


def test_input_rows_without_rows_and_rows_without_input_rows_are_named(tmp_path: Path) -> None:
    src, one, two = input_and_shards(tmp_path)
    csv_report(two, [row(3, "b"), row(9, "d")])
    with pytest.raises(MergeError) as caught:
        merge(tmp_path / "all.csv", [one, two], src, "T1")
    assert str(caught.value) == (
        "1 input row has no report row (line 5); "
        "1 report row is on lines where the input has no row (line 9)"
    )
    assert not (tmp_path / "all.csv").exists()


def test_run_records_are_merged_with_a_totals_record(tmp_path: Path) -> None:
    one = csv_report(
        tmp_path / "p.report.shard-0-of-2.csv",
        [row(2, "a", amount="1250", currency="EUR"), row(3, "a", "duplicate")],
        ("amount", "currency"),
    )
    two = csv_report(
        tmp_path / "p.report.shard-1-of-2.csv",
        [row(4, "b", "failed"), row(4, "b", "canceled")],  # the latest row wins
    )
    runs = [{"run_id": "r1", "shard": "0/2", "exit_code": 1}, {"run_id": "r2", "exit_code": 0}]
    runs_path(one).write_text("".join(json.dumps(r) + "\n" for r in runs) + "\n")
    out = tmp_path / "all.jsonl"
    merged = merge(out, [one, two])
    *kept, totals = jsonl(runs_path(out))
    assert kept == [{**r, "report": str(one)} for r in runs]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", totals.pop("merged_at"))
    assert totals == {
        "mode": "merge",
        "reports": [str(one), str(two)],
        "rows": 3,
        "outcomes": {"canceled": 2, "duplicate": 1},
        "released": {"EUR": 1250},
        "version": __version__,
    }
    assert merged.unrecorded == [two]
    assert f"no run record beside {two}: skipped" in merged.lines()


@pytest.mark.parametrize("second", ["[1, 2]\n", '{"run_id": "r2"\n'])
def test_an_unreadable_run_record_is_a_usage_error(
    tmp_path: Path, shards: list[Path], second: str
) -> None:
    runs_path(shards[1]).write_text('{"run_id": "r1"}\n' + second)
    with pytest.raises(UsageError, match=r"runs.jsonl, line 2: not a JSON object"):
        merge(tmp_path / "all.csv", shards)
    assert not (tmp_path / "all.csv").exists()


def test_a_torn_last_run_record_is_skipped(tmp_path: Path, shards: list[Path]) -> None:
    runs_path(shards[1]).write_text('{"run_id": "r1"}\n{"run_id": "r2", "mo')
    merge(tmp_path / "all.csv", shards)
    *kept, _ = jsonl(runs_path(tmp_path / "all.csv"))
    assert kept == [{"run_id": "r1", "report": str(shards[1])}]


def test_released_sums_canceled_rows_that_state_amount_and_currency(tmp_path: Path) -> None:
    extra = ("amount", "currency")
    rows = [
        row(2, "a", amount="1234500", currency="EUR"),
        row(3, "b", amount="5", currency="EUR"),
        row(4, "c", amount="99", currency="USD"),
        row(5, "d", "not_cancelable", amount="7000", currency="EUR"),  # not released
        row(6, "e", "already_canceled", amount="7000", currency="EUR"),  # not by this run
        row(7, "f", amount="", currency="EUR"),
        row(8, "g", amount="300", currency=""),
    ]
    merged = merge(tmp_path / "all.csv", [csv_report(tmp_path / "r.csv", rows, extra)])
    assert merged.totals["released"] == {"EUR": 1234505, "USD": 99}
    assert merged.lines()[1:] == [
        "already_canceled 1",
        "canceled 5",
        "not_cancelable 1",
        "released 12,345.05 EUR",
        "released 0.99 USD",
        f"no run record beside {tmp_path / 'r.csv'}: skipped",
        f"run records: {tmp_path / 'all.csv.runs.jsonl'}",
    ]


def test_a_doubled_reference_or_line_is_named_in_words(tmp_path: Path) -> None:
    first = csv_report(tmp_path / "p.report.shard-0-of-2.csv", [row(2, "a"), row(5, "", "invalid")])
    again = csv_report(tmp_path / "p.report.shard-1-of-2.csv", [row(2, "a")])
    with pytest.raises(MergeError) as caught:
        merge(tmp_path / "all.csv", [first, again])
    assert str(caught.value) == f"reference a of merchant T1 appears in both {first} and {again}"
    line = csv_report(tmp_path / "q.report.shard-1-of-2.csv", [row(5, "", "invalid")])
    with pytest.raises(MergeError) as caught:
        merge(tmp_path / "all.csv", [first, line])
    assert str(caught.value) == f"the row of line 5 appears in both {first} and {line}"
    # shards run with different --merchant: line 5 invalid in one, canceled in the other
    merchant = csv_report(tmp_path / "m.report.shard-1-of-2.csv", [row(5, "e", merchant="T9")])
    with pytest.raises(MergeError) as caught:
        merge(tmp_path / "all.csv", [first, merchant])
    assert str(caught.value) == f"line 5 is reported in both {first} and {merchant}"
    # but line 5 fixed (a reference added) and both shards rerun with
    # --allow-changed-input: the reference hashes to the other shard, whose later row
    # replaces the stale invalid one, as a later row on a line does within one report
    later = "2026-11-26T02:00:00.000Z"
    fixed = csv_report(
        tmp_path / "f.report.shard-1-of-2.csv", [row(5, "e", finished_at=later), row(3, "c")]
    )
    merged = merge(tmp_path / "fixed.csv", [first, fixed])
    assert merged.totals["outcomes"] == {"canceled": 3}


def test_echoed_values_of_a_jsonl_shard_keep_their_json_types(tmp_path: Path) -> None:
    echoed = {"n": 5, "b": True, "o": {"k": [1, 2]}, "s": "007", "f": 1.5}
    shard = tmp_path / "r.shard-0-of-1.jsonl"
    shard.write_text(json.dumps(row(2, "a", **echoed)) + "\n")
    merge(tmp_path / "all.jsonl", [shard])
    (got,) = jsonl(tmp_path / "all.jsonl")
    assert {k: got[k] for k in echoed} == echoed
    merge(tmp_path / "all.csv", [shard])
    with open(tmp_path / "all.csv", newline="", encoding="utf-8") as f:
        (cells,) = list(csv.DictReader(f))
    assert [cells[k] for k in echoed] == ["5", "true", '{"k":[1,2]}', "007", "1.5"]


def test_a_row_restated_on_its_new_line_keeps_the_earlier_rows_money(tmp_path: Path) -> None:
    # --allow-changed-input moved b from line 4 to line 3: the rerun restated its row
    moved = moved_detail(Outcome.CANCELED, 4)
    rows = [
        row(2, "a", amount="100", currency="EUR"),
        row(4, "b", amount="250", currency="EUR"),
        row(3, "b", detail=moved),
    ]
    report = csv_report(tmp_path / "r.csv", rows, ("amount", "currency"))
    merged = merge(tmp_path / "all.jsonl", [report])
    assert merged.totals["released"] == {"EUR": 350}  # was 100: b's row had no amount
    got = {r["payment_reference"]: r for r in jsonl(tmp_path / "all.jsonl")}
    assert (got["b"]["line"], got["b"]["amount"], got["b"]["currency"]) == (3, 250, "EUR")


def recorded(report: Path, *, finished: bool | None = True, **fields: Any) -> Path:
    """The run records beside `report` of a run that ended complete (`finished`), ended
    stopped (False), or was killed (None: its start record alone)."""
    start = {"event": "start", "run_id": "r", "mode": "run", "target": "https://api", **fields}
    records = [start]
    if finished is not None:
        end = {**start, "event": "end", "complete": finished, "exit_code": 0 if finished else 143}
        records.append(end)
    runs_path(report).write_text("".join(json.dumps(r) + "\n" for r in records))
    return report


def test_a_shard_missing_is_found_from_the_run_records_whatever_the_names(
    tmp_path: Path,
) -> None:
    """Shards run with their own --report names: the records say 0/3 and 1/3, so shard 2
    is missing (the merge said "none missing or doubled")."""
    zero = recorded(csv_report(tmp_path / "night-0.csv", [row(2, "a")]), shard="0/3")
    one = recorded(csv_report(tmp_path / "night-1.csv", [row(3, "b")]), shard="1/3")
    with pytest.raises(MergeError, match="shard 2 of 3 is missing"):
        merge(tmp_path / "all.csv", [zero, one])
    two = recorded(csv_report(tmp_path / "night-2.csv", [row(4, "c")]), shard="2/3")
    assert merge(tmp_path / "all.csv", [zero, one, two]).totals["rows"] == 3
    four = recorded(csv_report(tmp_path / "other.csv", [row(5, "d")]), shard="3/4")
    with pytest.raises(MergeError, match="different counts"):
        merge(tmp_path / "mixed.csv", [zero, one, two, four])
    assert not (tmp_path / "mixed.csv").exists()


@pytest.mark.parametrize(
    ("field", "theirs", "words"),
    [
        ("mode", "check", "kind of run: .* is of `run`, .* of `check`"),
        ("target", "sandbox", "target: .* the API at https://api, .* the embedded sandbox"),
    ],
)
def test_shards_of_another_kind_of_run_or_target_are_not_merged(
    tmp_path: Path, shards: list[Path], field: str, theirs: str, words: str
) -> None:
    """A check, or a --sandbox rehearsal, left under a shard's name: its rows say nothing
    of the night's cancels (the merge counted sandbox cancels as money released)."""
    recorded(shards[0], shard="0/2")
    recorded(shards[1], shard="1/2", **{field: theirs})
    with pytest.raises(MergeError, match=words):
        merge(tmp_path / "all.csv", shards)
    assert not (tmp_path / "all.csv").exists()
    recorded(shards[1], shard="1/2")
    assert merge(tmp_path / "all.csv", shards).totals["rows"] == 3


def test_a_report_given_twice_is_refused_even_without_rows(tmp_path: Path) -> None:
    """An empty shard given twice passed as 'none missing or doubled'."""
    empty = csv_report(tmp_path / "p.report.shard-1-of-2.csv", [])
    full = csv_report(tmp_path / "p.report.shard-0-of-2.csv", [row(2, "a")])
    with pytest.raises(MergeError, match="given twice"):
        merge(tmp_path / "all.csv", [full, empty, tmp_path / "." / empty.name])


def test_records_of_an_older_version_without_a_target_still_merge(
    tmp_path: Path, shards: list[Path]
) -> None:
    """Its sandbox runs recorded only their loopback api_url, a new port each run."""
    for n, (shard, port) in enumerate(zip(shards, (37363, 43089), strict=True)):
        record = {"mode": "run", "api_url": f"http://127.0.0.1:{port}", "shard": f"{n}/2"}
        runs_path(shard).write_text(json.dumps(record) + "\n")
    assert merge(tmp_path / "all.csv", shards).totals["rows"] == 3


@pytest.mark.parametrize(
    ("finished", "how"),
    [
        (None, "was killed before its end"),
        (False, r"stopped before the end of its input \(exit 143\)"),
    ],
)
def test_a_shard_whose_last_run_did_not_finish_is_not_merged(
    tmp_path: Path, shards: list[Path], finished: bool | None, how: str
) -> None:
    """A shard killed (or aborted) part-way holds only the rows it reached: merged, its
    missing references passed as "none missing or doubled"."""
    recorded(shards[0], shard="0/2")
    recorded(shards[1], shard="1/2", finished=finished)
    with pytest.raises(MergeError, match=f"{re.escape(str(shards[1]))} is not finished: .*{how}"):
        merge(tmp_path / "all.csv", shards)
    assert not (tmp_path / "all.csv").exists()
    recorded(shards[1], shard="1/2")  # rerun to its end
    assert merge(tmp_path / "all.csv", shards).totals["rows"] == 3


def test_two_reports_of_one_shard_are_not_merged(tmp_path: Path) -> None:
    """A set of shard indexes let shard 0 twice (of two nights) pass, shard 1 missing."""
    zero = recorded(csv_report(tmp_path / "a-0.csv", [row(2, "a")]), shard="0/2")
    one = recorded(csv_report(tmp_path / "a-1.csv", [row(3, "b")]), shard="1/2")
    again = recorded(csv_report(tmp_path / "b-0.csv", [row(12, "y")]), shard="0/2")
    with pytest.raises(MergeError, match=r"a-0\.csv and .*b-0\.csv are both the report of shard 0"):
        merge(tmp_path / "all.csv", [zero, one, again])


def test_shards_of_two_inputs_are_not_merged(tmp_path: Path, shards: list[Path]) -> None:
    """The shards' latest runs read files with different SHA-256s: two nights."""
    recorded(shards[0], shard="0/2", input_sha256="a" * 64)
    recorded(shards[1], shard="1/2", input_sha256="b" * 64)
    with pytest.raises(MergeError, match=r"more than one input: .* aaaaaaaaaaaa.*bbbbbbbbbbbb"):
        merge(tmp_path / "all.csv", shards)
    recorded(shards[1], shard="1/2", input_sha256="a" * 64)
    assert merge(tmp_path / "all.csv", shards).totals["rows"] == 3


def test_with_the_input_a_shard_rerun_on_a_changed_input_still_merges(tmp_path: Path) -> None:
    """docs/kubernetes.md's way: fix an invalid line, rerun the shard that now holds it
    with --allow-changed-input, merge with --input (which checks every line)."""
    src, one, two = input_and_shards(tmp_path)
    recorded(one, shard="0/2", input_sha256="a" * 64)
    recorded(two, shard="1/2", input_sha256="b" * 64)
    with pytest.raises(MergeError, match="more than one input"):
        merge(tmp_path / "all.csv", [one, two])
    assert merge(tmp_path / "all.csv", [one, two], src, "T1").totals["rows"] == 4
