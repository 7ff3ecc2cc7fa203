"""Progress: the numbers, the live display as a person sees it at 80 and 200 columns, how it
ends, and the `progress` event."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import structlog
from rich.console import Console
from structlog.testing import capture_logs

from tests.unit.observe.screen import screen
from worker.observe import logs
from worker.observe.progress import BarProgress, LogProgress, Snapshot, end

BAR = "━"
ALL_KINDS = {
    "canceled": 540,
    "already_canceled": 3,
    "not_cancelable": 2,
    "not_found": 1,
    "rejected": 0,
    "failed": 1,
    "invalid": 2,
    "duplicate": 1,
}
SHOWN = ["ok 540", "already 3", "uncancelable 2", "notfound 1", "failed 1", "invalid 2", "dup 1"]


def console(width: int) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=True, force_interactive=True), out


def drawn(width: int, *snaps: Snapshot) -> list[str]:
    """The screen after a live display showed `snaps` and was closed."""
    term, out = console(width)
    bar = BarProgress(term)
    for snap in snaps:
        bar.update(snap)
    bar.close()
    return screen(out.getvalue())


def fits(lines: list[str], width: int) -> bool:
    return all(len(line) <= width for line in lines)


def test_snapshot_rate_and_eta() -> None:
    snap = Snapshot(done=250, total=1000, outcomes={"canceled": 250}, requests=300, elapsed=10.0)
    assert snap.requests_per_second == 30.0
    assert snap.eta_seconds == 30.0  # 750 left at 25 rows/s
    assert Snapshot(0, None, {}, 0, 0.0).eta_seconds is None
    assert Snapshot(5, 3, {}, 5, 1.0).eta_seconds == 0.0
    # a run shorter than a second: its requests in that second, never above the cap's look
    assert Snapshot(2, 2, {}, 2, 0.06).requests_per_second == 2.0
    assert Snapshot(5, 10, {}, 5, 1.0, holding="API failing (503)").eta_seconds is None


def test_the_eta_uses_this_runs_pace_not_the_rows_earlier_runs_settled() -> None:
    # The night of the issue: 810 rows settled before the resume, 297 by this run in
    # 7.4 s (40/s); 3,893 left take 97 s at that pace, not the 26 s that counting the
    # earlier rows as this run's work gave.
    snap = Snapshot(1107, 5000, {"canceled": 1107}, 297, 7.425, settled_before=810)
    assert snap.eta_seconds == pytest.approx(3893 / 40)
    assert Snapshot(810, 5000, {}, 0, 1.0, settled_before=810).eta_seconds is None  # no pace yet


def test_the_rate_counts_as_lowered_only_below_the_cap() -> None:
    assert Snapshot(0, None, {}, 0, 1.0, rate_cap=60, rate_now=22).rate_lowered == 22
    assert Snapshot(0, None, {}, 0, 1.0, rate_cap=60, rate_now=60).rate_lowered is None
    assert Snapshot(0, None, {}, 0, 1.0, rate_cap=None, rate_now=5).rate_lowered == 5
    assert Snapshot(0, None, {}, 0, 1.0, rate_cap=60).rate_lowered is None


@pytest.mark.parametrize("width", [80, 200])
def test_the_display_shows_bar_count_rate_eta_outcomes_and_429s_within_the_width(
    width: int,
) -> None:
    snap = Snapshot(550, 5000, ALL_KINDS, 600, 30.0, rate_cap=60, rate_now=22, throttled=61)
    lines = drawn(width, snap)
    assert fits(lines, width), lines
    [first] = [line for line in lines if BAR in line]  # one bar, and it has room
    assert first.count(BAR) >= 10
    assert "550/5,000" in first and "20/60 req/s" in first and "ETA 4:03" in first
    text = "\n".join(lines)
    assert all(count in text for count in SHOWN), text
    assert "rejected" not in text  # a kind that has not happened takes no room
    assert "429s 61, rate 22/60" in text
    if width == 200:  # a wide console has room for everything on one line
        assert lines == [first] and "dup 1" in first and "429s 61" in first
    else:  # at 80 columns the counts have their own line
        assert "ok 540 already 3 uncancelable 2 notfound 1 failed 1 invalid 2 dup 1" in lines


@pytest.mark.parametrize("width", [80, 200])
def test_a_hold_replaces_the_eta(width: int) -> None:
    snap = Snapshot(
        1540, 5000, {"canceled": 1540}, 1600, 60.0, rate_cap=60, holding="API failing (503)",
        holding_seconds=12.4,
    )  # fmt: skip
    lines = drawn(width, snap)
    assert fits(lines, width), lines
    bar_line = next(line for line in lines if BAR in line)
    assert "holding: API failing (503) for 12 s" in bar_line
    assert "ETA" not in "\n".join(lines)


def test_large_counts_wrap_between_counts_at_80_columns() -> None:
    big = {kind: 1_234_567 for kind in ALL_KINDS}
    snap = Snapshot(9_876_543, 10_000_000, big, 9_999_999, 3600.0, rate_cap=1000, rate_now=123.5)
    lines = drawn(80, snap)
    assert fits(lines, 80), lines
    assert sum(BAR in line for line in lines) == 1 and "ETA" in lines[0]
    text = " ".join(lines)
    for label in ["ok", "already", "uncancelable", "notfound", "rejected", "failed", "dup"]:
        assert f"{label} 1,234,567" in text  # never split inside a count
    assert "rate 124/1,000" in text


def test_the_rate_shown_is_the_recent_one_not_the_average() -> None:
    # 10 requests in the first 10 s, then 50/s: the average (25.5/s) would understate it.
    snaps = [Snapshot(0, 100, {}, 10, 10.0)]
    snaps += [Snapshot(0, 100, {}, 10 + 50 * s, 10.0 + s, rate_cap=60) for s in range(1, 11)]
    lines = drawn(80, *snaps)
    assert "50/60 req/s" in lines[0]


def test_close_leaves_one_final_display_and_nothing_redraws_after_it() -> None:
    term, out = console(80)
    bar = BarProgress(term)
    bar.update(Snapshot(10, 100, {"canceled": 10}, 10, 1.0))
    bar.close()
    after_close = out.getvalue()
    bar.close()
    bar.update(Snapshot(99, 100, {"canceled": 99}, 99, 2.0))
    end(bar, Snapshot(99, 100, {"canceled": 99}, 99, 2.0), interrupted=True)
    assert out.getvalue() == after_close
    [line] = screen(after_close)  # short counts join the bar's line
    assert "10/100" in line and line.endswith("ok 10")


def test_an_interrupted_run_ends_with_one_bar_and_how_to_resume() -> None:
    term, out = console(80)
    bar = BarProgress(term)
    bar.update(Snapshot(1000, 5000, {"canceled": 1000}, 1100, 20.0, rate_cap=60))
    end(bar, Snapshot(1234, 5000, {"canceled": 1234}, 1300, 24.0, rate_cap=60), interrupted=True)
    lines = screen(out.getvalue())
    assert fits(lines, 80), lines
    assert sum(BAR in line for line in lines) == 1
    assert "1,234/5,000" in lines[0] and "took 0:24" in lines[0] and "ETA" not in lines[0]
    assert lines[1:] == [
        "ok 1,234",
        "stopped: 1,234 of 5,000 done; run the same command again to resume",
    ]


def test_a_run_that_ended_by_itself_says_nothing_about_resuming() -> None:
    term, out = console(80)
    end(BarProgress(term), Snapshot(5, 5, {"canceled": 5}, 5, 1.0))
    assert "stopped" not in out.getvalue()


def test_end_gives_a_view_without_finish_its_last_update_then_closes_it() -> None:
    calls: list[object] = []

    class Fake:
        def update(self, snap: Snapshot) -> None:
            calls.append(snap)

        def close(self) -> None:
            calls.append("close")

    final = Snapshot(3, 3, {}, 3, 1.0)
    end(Fake(), final, interrupted=True)
    assert calls == [final, "close"]


@pytest.fixture
def saved_logging() -> Iterator[None]:
    config = structlog.get_config()
    yield
    structlog.configure(**config)


def test_log_lines_print_above_the_live_display_and_never_tear_it(
    saved_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = io.StringIO()  # the one terminal that the display and the logs share
    monkeypatch.setattr("sys.stderr", terminal)
    logs.configure("console")
    bar = BarProgress(Console(file=terminal, width=80, force_terminal=True, force_interactive=True))
    bar.update(Snapshot(10, 100, {"canceled": 10}, 10, 1.0))
    logs.log.warning("stopping", signal="SIGINT")
    bar.update(Snapshot(20, 100, {"canceled": 20}, 20, 2.0))
    end(bar, Snapshot(20, 100, {"canceled": 20}, 20, 2.0), interrupted=True)
    lines = screen(terminal.getvalue())
    assert "stopping signal=SIGINT" in lines[0]
    assert sum(BAR in line for line in lines) == 1 and "20/100" in lines[1]
    assert lines[-1].startswith("stopped: 20 of 100 done")


def test_the_progress_event_carries_the_rate_429s_and_the_hold() -> None:
    snap = Snapshot(
        40, 100, {"canceled": 40}, 44, 2.0, rate_cap=60.0, rate_now=22.44, throttled=61,
        holding="API failing (503)", holding_seconds=12.4,
    )  # fmt: skip
    with capture_logs() as events:
        LogProgress().update(snap)
    assert events == [
        {
            "event": "progress",
            "log_level": "info",
            "done": 40,
            "total": 100,
            "outcomes": {"canceled": 40},
            "requests": 44,
            "requests_per_second": 22.0,
            "eta_seconds": None,  # held: no ETA
            "rate_cap": 60.0,
            "rate_now": 22.4,
            "throttled": 61,
            "holding": "API failing (503)",
            "holding_seconds": 12,
        }
    ]


def test_no_progress_event_once_the_run_has_ended() -> None:
    view = LogProgress()
    with capture_logs() as events:
        view.update(Snapshot(1, 10, {"canceled": 1}, 1, 1.0))
        end(view, Snapshot(2, 10, {"canceled": 2}, 2, 2.0), interrupted=True)
        view.update(Snapshot(3, 10, {"canceled": 3}, 3, 3.0))
        view.close()
        view.update(Snapshot(4, 10, {"canceled": 4}, 4, 4.0))
    assert [e["done"] for e in events] == [1]


def test_narrowing_the_terminal_leaves_no_stale_line() -> None:
    # At 200 columns everything fits on one 100+-column line; narrowed to 80, the
    # terminal re-wraps that line onto two rows, and the redraw must clear both.
    snap = Snapshot(550, 5000, ALL_KINDS, 600, 30.0, rate_cap=60, rate_now=22, throttled=61)
    term, out = console(200)
    bar = BarProgress(term)
    bar.update(snap)
    [wide] = screen(out.getvalue())
    assert len(wide) > 80
    mark = len(out.getvalue())
    term.width = 80
    bar.update(snap)
    bar.close()
    rewrapped = "\n".join(wide[i : i + 80] for i in range(0, len(wide), 80))
    assert screen(rewrapped + out.getvalue()[mark:]) == drawn(80, snap)
