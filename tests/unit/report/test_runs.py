"""The run record's binding: input, kind, target and shard, old records and new."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from worker.errors import ReportError
from worker.report.runs import (
    Binding,
    append_run,
    check_binding,
    read_runs,
    recorded_inputs,
    run_count,
    runs_path,
)

DATA = b"payment_reference,merchant_number\nA,T1\nB,T1\n"
REPORT = Path("night.report.csv")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def binding(data: bytes = DATA, *, stream: bool = False, **kw: Any) -> Binding:
    fields: dict[str, Any] = {
        "kind": "run",
        "input": "-" if stream else "night.csv",
        "input_sha256": None if stream else sha(data),
        "target": "https://api.bambora.com",
        "shard": "0/1",
        "head": lambda n: sha(data[:n]) if len(data) >= n else None,
        "stream": stream,
    }
    return Binding(**(fields | kw))


def check(runs: list[dict[str, Any]], this: Binding, allow: bool = False) -> str | None:
    return check_binding(
        REPORT, runs, this, allow_changed_input=allow, instead=lambda other: f"--report X{other}"
    )


def start(data: bytes = DATA, **kw: Any) -> dict[str, Any]:
    record = {"event": "start", "run_id": "r1", "mode": "run", "started_at": "T0"}
    record |= binding(data).fields() | {
        "input_head_bytes": len(data),
        "input_head_sha256": sha(data),
    }
    return record | kw


def test_a_start_record_alone_binds_the_report_like_an_ended_run() -> None:
    assert check([start()], binding()) is None
    with pytest.raises(ReportError, match=r"belongs to input night.csv .*--report XTrue"):
        check([start()], binding(b"payment_reference\nZ\n"))
    with pytest.raises(ReportError, match=r"written by `run`.*--report XFalse"):
        check([start()], binding(kind="check"))
    assert "changed input" in str(check([start()], binding(b"other\n"), allow=True))


def test_the_target_binds_sandbox_and_api_apart() -> None:
    sandbox = start(target="sandbox")
    assert check([sandbox], binding(target="sandbox")) is None  # two sandbox runs: one target
    with pytest.raises(ReportError, match=r"against the embedded sandbox .* targets the API at"):
        check([sandbox], binding())
    with pytest.raises(ReportError, match=r"against the API at https://api\.bambora\.com"):
        check([start()], binding(target="sandbox"))
    with pytest.raises(ReportError, match=r"shard 0/1 .* shard 1/2"):
        check([start()], binding(shard="1/2"))


def test_an_older_versions_record_is_an_end_record_whose_target_is_its_api_url() -> None:
    old = {"run_id": "r0", "mode": "run", "started_at": "T0", "input": "night.csv"}
    old |= {"input_sha256": sha(DATA), "shard": "0/1", "api_url": "http://127.0.0.1:41234"}
    assert check([old], binding(target="sandbox")) is None  # its sandbox had a loopback URL
    with pytest.raises(ReportError, match=r"127\.0\.0\.1:41234"):
        check([old], binding())
    with pytest.raises(ReportError, match="belongs to input"):
        check([old], binding(b"x\n", target="sandbox"))
    assert check([{"run_id": "r0", "mode": "run"}], binding()) is None  # nothing to compare


def test_a_loopback_api_recorded_as_target_is_not_the_sandbox() -> None:
    # a fake or a standalone sandbox on loopback, named by this version's `target`: the
    # embedded sandbox's payments are other payments, in both directions
    local = start(target="http://127.0.0.1:41234")
    with pytest.raises(ReportError, match=r"against the API at http://127\.0\.0\.1:41234"):
        check([local], binding(target="sandbox"))
    with pytest.raises(ReportError, match=r"against the embedded sandbox"):
        check([start(target="sandbox")], binding(target="http://127.0.0.1:41234"))
    assert check([local], binding(target="http://127.0.0.1:41234")) is None


def test_a_stream_is_bound_by_its_first_bytes() -> None:
    head = start(DATA, input="-", input_kind="stream", input_sha256=None)
    assert check([head], binding(stream=True)) is None  # the same bytes again
    assert check([head], binding(DATA + b"C,T1\n", stream=True)) is None  # and then more
    with pytest.raises(ReportError, match=r"standard input \(first 44 bytes.*other first bytes"):
        check([head], binding(DATA.replace(b"B", b"Q"), stream=True))
    with pytest.raises(ReportError, match="belongs to input standard input"):
        check([head], binding(DATA[:20], stream=True))  # shorter: not the same stream
    assert check([head], binding()) is None  # a file with those bytes is that input


def test_a_streams_end_record_hash_counts_only_when_it_was_read_to_its_end() -> None:
    part = sha(DATA[:20])  # an interrupted stream's hash is of what it read
    end = start(DATA, event="end", input_kind="stream", input_sha256=part, input_complete=False)
    assert check([end], binding()) is None  # compared by its first bytes instead
    whole = end | {"input_sha256": sha(DATA), "input_complete": True}
    with pytest.raises(ReportError, match="belongs to input"):
        check([whole], binding(DATA + b"C,T1\n"))


def test_runs_are_counted_by_id_and_inputs_found_by_path_and_name(tmp_path: Path) -> None:
    runs = [start(), start(event="end"), start(run_id="r2")]
    assert run_count(runs) == 2
    report = tmp_path / "out" / "p.report.csv"
    found = recorded_inputs(report, [{"input": "p.csv", "input_path": "/data/p.csv"}])
    assert found == [
        (Path("/data/p.csv"), "p.csv"),
        (Path("p.csv"), "p.csv"),
        (tmp_path / "out" / "p.csv", "p.csv"),
    ]
    assert recorded_inputs(report, [{"input": "-"}]) == []


def test_a_run_record_that_cannot_be_read_is_a_report_error(tmp_path: Path) -> None:
    report = tmp_path / "night.report.csv"
    assert read_runs(report) == []  # none yet
    (tmp_path / "night.report.csv.runs.jsonl").mkdir()
    with pytest.raises(ReportError, match="cannot read run record"):
        read_runs(report)


def test_a_record_torn_by_a_power_cut_is_cut_off_before_the_next_run_appends(
    tmp_path: Path,
) -> None:
    # Found by the simulator (tests/sim): the next record was glued onto the torn line,
    # and the run after that refused to start ("not a JSON object", exit 2).
    report = tmp_path / "r.csv"
    append_run(report, {"event": "start", "run_id": "a"})
    with open(runs_path(report), "ab") as f:
        f.write(b'{"event": "end", "run_')  # a power cut kept half of the end record
    assert [r["run_id"] for r in read_runs(report)] == ["a"]
    append_run(report, {"event": "start", "run_id": "b"})
    append_run(report, {"event": "end", "run_id": "b"})
    assert [r["run_id"] for r in read_runs(report)] == ["a", "b", "b"]
