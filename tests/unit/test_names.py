"""Report names: the default per input, kind and shard, and the one suggested instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.names import default_report, other_report
from worker.settings import Shard


@pytest.mark.parametrize(
    ("given", "kind", "shard", "expected"),
    [
        ("payments.csv", "run", Shard(), "payments.report.csv"),
        ("payments.csv.gz", "run", Shard(), "payments.report.csv"),
        ("payments.jsonl.GZ", "check", Shard(), "payments.check.csv"),
        ("/data/in/payments.jsonl", "dry-run", Shard(), "payments.dry-run.csv"),
        ("payments.txt", "run", Shard(), "payments.report.csv"),
        ("payments", "run", Shard(), "payments.report.csv"),
        # as every earlier version named them: a rerun after an upgrade finds its report
        ("night.2026-12-01.csv", "run", Shard(), "night.report.csv"),
        ("-", "run", Shard(), "report.csv"),
        ("-", "check", Shard(2, 4), "check.shard-2-of-4.csv"),
        ("payments.csv", "run", Shard(1, 3), "payments.report.shard-1-of-3.csv"),
    ],
)
def test_the_default_report_is_the_input_name_up_to_its_first_dot(
    given: str, kind: str, shard: Shard, expected: str
) -> None:
    assert default_report(given, shard, kind) == Path(expected)


def test_the_report_suggested_instead_is_free_and_tells_inputs_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    taken = Path("night.report.csv")  # the default of night.csv, night.jsonl, night.csv.gz
    taken.write_text("")
    one = Shard()
    assert other_report("night.jsonl", taken, "run", one, other_input=True) == Path(
        "night.jsonl.report.csv"
    )
    assert other_report("night.jsonl", taken, "run", one) == Path("night.report-2.csv")
    assert other_report("night.csv", taken, "check", one) == Path("night.check.csv")
    assert other_report("night.csv", taken, "run", Shard(1, 2)) == Path(
        "night.report.shard-1-of-2.csv"
    )
    # the kind's own default is named even when it exists: it resumes that kind's night
    Path("night.check.csv").write_text("")
    assert other_report("night.csv", taken, "check", one) == Path("night.check.csv")
    Path("report.csv").write_text("")
    Path("report-2.csv").symlink_to("elsewhere.csv")  # a name in use, even dangling
    assert other_report("-", Path("./report.csv"), "run", one) == Path("report-3.csv")
