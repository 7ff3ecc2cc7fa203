"""The report card through the real CLI: written beside the report at the end of a run
(hostile input included), skipped on request, built alone by `report-card`, and for a
merged report by `merge-reports`."""

from __future__ import annotations

import os
import stat
from collections import Counter
from pathlib import Path

from tests.support import env_for, latest, read_report, run_cli, write_csv
from tests.unit.page.parse import body_rows, read_page
from tests.unit.page.reports import end_record, row, write_report
from tests.unit.page.safety import HOSTILE, assert_inert

FAST = ("--sandbox", "--rate", "2000", "--concurrency", "16", "--log-format", "json")
SCRIPT, IMG, SVG, IFRAME = HOSTILE


def hostile_input(folder: Path) -> Path:
    return write_csv(
        folder / "in.csv",
        [
            ("plain-1", "T1", SCRIPT),
            (f"captured-{SCRIPT}", "T1", IMG),
            (f"unknown-{IMG}", "T1", SVG),
            (f"forbidden-{SVG}", "T1", IFRAME),
            (IFRAME, "", SCRIPT),  # no merchant: invalid, its reference on the page as is
        ],
        header="payment_reference,merchant_number,comment",
    )


async def test_a_run_writes_an_inert_page_whose_figures_are_the_report(tmp_path: Path) -> None:
    src = hostile_input(tmp_path)
    done = await run_cli("run", str(src), *FAST, env=env_for(None), cwd=tmp_path)
    assert done.code == 1, done.stderr[-2000:]
    report = tmp_path / "in.report.csv"
    page_path = tmp_path / "in.report.csv.html"
    assert '"event":"report_card_written"' in done.stderr
    assert stat.S_IMODE(page_path.stat().st_mode) == stat.S_IMODE(report.stat().st_mode)
    shown = read_page(page_path.read_text(encoding="utf-8"))
    assert_inert(shown)
    for value in HOSTILE:
        assert value in shown.text
    assert f"captured-{SCRIPT}" in [r[1] for r in body_rows(shown.tables["not_cancelable"])]
    assert [r[1] for r in body_rows(shown.tables["not_found"])] == [f"unknown-{IMG}"]
    assert [r[1] for r in body_rows(shown.tables["rejected"])] == [f"forbidden-{SVG}"]
    assert [r[1] for r in body_rows(shown.tables["invalid"])] == [IFRAME]
    rows = read_report(report)
    expected = Counter(r["outcome"] for r in [*latest(rows).values()])
    table = body_rows(shown.tables["outcome-table"])
    assert {r[1]: int(r[2]) for r in table if len(r) == 4 and r[1]} == expected
    released: Counter[str] = Counter()
    for r in rows:
        if r["outcome"] == "canceled":
            released[r["currency"]] += int(r["amount"])
    page_money = {r[0]: r[1] for r in body_rows(shown.tables["released"])}
    assert page_money == {c: f"{m // 100:,}.{m % 100:02d} {c}" for c, m in released.items()}
    assert [r[0] for r in body_rows(shown.tables["runs"])] == [rows[0]["run_id"]]


async def test_no_card_and_its_env_var_skip_the_page(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("plain-1", "T1")])
    done = await run_cli("run", str(src), *FAST, "--no-card", env=env_for(None), cwd=tmp_path)
    assert done.code == 0, done.stderr[-2000:]
    env = env_for(None, CANCEL_WORKER_NO_CARD="1")
    checked = await run_cli("check", str(src), *FAST, env=env, cwd=tmp_path)
    assert checked.code == 0, checked.stderr[-2000:]
    assert (tmp_path / "in.report.csv").exists() and (tmp_path / "in.check.csv").exists()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".html")]


async def test_report_card_builds_the_page_of_a_report(tmp_path: Path) -> None:
    report = write_report(
        tmp_path / "night.csv",
        [row(2, "A", "canceled", amount=150000, currency="JPY"), row(3, "B", "failed")],
        [end_record("r1", exit_code=5)],
    )
    os.chmod(report, 0o600)
    out = tmp_path / "card.html"
    done = await run_cli("report-card", str(report), "--out", str(out), env={}, cwd=tmp_path)
    assert (done.code, done.stdout) == (0, f"report card: {out}\n"), done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    shown = read_page(out.read_text(encoding="utf-8"))
    assert body_rows(shown.tables["released"]) == [["JPY", "150,000 JPY"]]
    assert "1 reference left to retry" in shown.texts["verdict"]
    missing = await run_cli("report-card", str(tmp_path / "nope.csv"), env={}, cwd=tmp_path)
    assert missing.code == 2
    assert missing.stderr.strip().count("\n") == 0 and "nope.csv" in missing.stderr


def _files(folder: Path) -> dict[str, bytes]:
    """Every regular file of `folder` with its bytes (links left out)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.is_symlink()}


async def test_report_card_never_writes_over_the_report_its_records_or_input(
    tmp_path: Path,
) -> None:
    report = write_report(tmp_path / "night.csv", [row(2, "A", "canceled")], [end_record("r1")])
    (tmp_path / "payments.csv").write_text("payment_reference\nA\n")  # the recorded input
    (tmp_path / "night.csv.journal").write_text("")
    (tmp_path / "link.csv").symlink_to(report)
    kept = _files(tmp_path)
    for out in ["night.csv", "link.csv", "night.csv.runs.jsonl", "night.csv.journal",
                "night.csv.lock", "payments.csv", str(tmp_path / "payments.csv")]:  # fmt: skip
        done = await run_cli("report-card", str(report), "--out", out, env={}, cwd=tmp_path)
        assert done.code == 2, (out, done.stdout, done.stderr)
        assert done.stderr.startswith("Error: ") and done.stderr.strip().count("\n") == 0
        assert "would overwrite" in done.stderr, done.stderr
        assert _files(tmp_path) == kept, out
    assert not (tmp_path / "night.csv.lock").exists()


async def test_merge_reports_writes_the_page_of_the_merged_report(tmp_path: Path) -> None:
    names = [tmp_path / f"in.report.shard-{i}-of-2.csv" for i in range(2)]
    for i, name in enumerate(names):
        rows = [
            row(2 + i, f"R{i}", "canceled", amount=100 * (i + 1), currency="EUR", run_id=f"s{i}")
        ]
        write_report(name, rows, [end_record(f"s{i}", shard=f"{i}/2")])
    out = tmp_path / "merged.csv"
    done = await run_cli("merge-reports", str(out), *map(str, names), env={}, cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"report card: {out}.html"
    shown = read_page((tmp_path / "merged.csv.html").read_text(encoding="utf-8"))
    assert body_rows(shown.tables["shard-table"]) == [
        ["0/2", "1", "1", "0", "0", "0", "1.00 EUR"],
        ["1/2", "1", "1", "0", "0", "0", "2.00 EUR"],
    ]
    assert body_rows(shown.tables["released"]) == [["EUR", "3.00 EUR"]]
