"""Progress: the numbers, and that the terminal bar shows them."""

from __future__ import annotations

import io

from rich.console import Console

from worker.observe.progress import BarProgress, Snapshot


def test_snapshot_rate_and_eta() -> None:
    snap = Snapshot(done=250, total=1000, outcomes={"canceled": 250}, requests=300, elapsed=10.0)
    assert snap.requests_per_second == 30.0
    assert snap.eta_seconds == 30.0  # 750 left at 25 rows/s
    assert Snapshot(0, None, {}, 0, 0.0).eta_seconds is None
    assert Snapshot(5, 3, {}, 5, 1.0).eta_seconds == 0.0


def test_bar_shows_done_total_rate_and_counts() -> None:
    out = io.StringIO()
    bar = BarProgress(Console(file=out, force_terminal=True, width=200))
    bar.update(Snapshot(40, 100, {"canceled": 38, "not_found": 2}, 44, 2.0))
    bar.close()
    text = out.getvalue()
    assert "40/100" in text and "22 req/s" in text
    assert "canceled=38" in text and "not_found=2" in text
