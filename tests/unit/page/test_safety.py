"""Values from outside (references, merchants, details, states, run ids, file names)
reach the page as text: escaped, never markup."""

from __future__ import annotations

from pathlib import Path

from tests.unit.page.parse import read_page
from tests.unit.page.reports import end_record, row, write_report
from tests.unit.page.safety import HOSTILE, assert_inert
from worker.page.night import gather
from worker.page.render import page
from worker.page.verdict import judge


def test_hostile_values_everywhere_are_shown_as_text(tmp_path: Path) -> None:
    a, b, c, d = HOSTILE
    rows = [
        row(2, a, "not_cancelable", merchant=b, amount=5, currency="EUR", state=c, run_id=d),
        row(3, b, "not_found", merchant=a, detail=c, run_id=a),
        row(4, c, "rejected", detail=d, comment=a),
        row(5, d, "failed", detail=a, run_id=b),
        row(6, "x", "canceled", merchant=c, amount=7, currency=a[:3], at=b),
    ]
    records = [
        {"event": "start", "run_id": a, "mode": b, "started_at": c},
        end_record(d, input=a, shard=b, stopped_by=c, exit_code=5, complete=True),
    ]
    folder = tmp_path / b.replace("/", "_")
    folder.mkdir()
    report = write_report(folder / f"{a.replace('/', '_')}.csv", rows, records)
    night = gather(report)
    html = page(night, judge(night, command=f"cancel-worker run {c}"))
    shown = read_page(html)
    assert_inert(shown)
    for value in HOSTILE:
        assert value in shown.text, value
    assert "<script>" not in html and "<img" not in html and "<svg onload" not in html
