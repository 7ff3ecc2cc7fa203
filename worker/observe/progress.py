"""Progress: how far the run is, as a log event in a container or a live display on a terminal.

`Snapshot` is the one set of numbers (done, total, outcome counts, requests, the rate cap
and the throttle's adaptive rate, 429s, a hold during an outage). `LogProgress` emits it as
a `progress` event every `--progress-seconds`; `BarProgress` draws it with rich on standard
error when that is a terminal and the logs are not JSON, laid out for 80 columns first
(README "Logs and progress").

A view ends once (`end`): the final numbers are drawn, and nothing after that redraws or
logs, because a progress line after `aborted` or `summary` reads as if the run went on.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.segment import Segment
from rich.text import Text

from worker.observe import logs, words
from worker.observe.live import Reflowing


@dataclass(frozen=True)
class Snapshot:
    """The run's numbers at one moment; the fields after `elapsed` default to "nothing"."""

    done: int
    total: int | None
    outcomes: Mapping[str, int]
    requests: int
    elapsed: float
    rate_cap: float | None = None  # --rate; None: no limit
    rate_now: float | None = None  # the throttle's adaptive rate after 429s; None: at the cap
    throttled: int = 0  # 429 answers so far
    holding: str | None = None  # why references are held, e.g. "API failing (503)"
    holding_seconds: float | None = None  # for how long they have been held
    #: Of `done`, rows an earlier run settled (resume): read past, not this run's work.
    settled_before: int = 0

    @property
    def requests_per_second(self) -> float:
        return words.per_second(self.requests, self.elapsed)

    @property
    def eta_seconds(self) -> float | None:
        """None when unknown, and while references are held: an outage has no ETA. The
        pace is this run's own (rows earlier runs settled are read past, not sent)."""
        per_row = (self.done - self.settled_before) / self.elapsed if self.elapsed > 0 else 0.0
        if not self.total or per_row <= 0 or self.holding is not None:
            return None
        return max(self.total - self.done, 0) / per_row

    @property
    def rate_lowered(self) -> float | None:
        """The adaptive rate, only while it is below the cap (or there is no cap)."""
        now, cap = self.rate_now, self.rate_cap
        return now if now is not None and (cap is None or now < cap) else None


class View(Protocol):
    """What the job drives: `update` now and then, `close` at the end. A view may also
    have `finish(final, interrupted=...)` (see `Finishing`); `end` uses it when it is there,
    so a test's fake needs only these two."""

    def update(self, snap: Snapshot) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Finishing(Protocol):
    def finish(self, final: Snapshot, *, interrupted: bool = False) -> None: ...


def end(view: View, final: Snapshot, *, interrupted: bool = False) -> None:
    """End `view` with the run's final numbers; `interrupted`: the run stopped before its
    input ended, and the person should hear how to resume."""
    if isinstance(view, Finishing):
        view.finish(final, interrupted=interrupted)
    else:
        view.update(final)
        view.close()


def progress_fields(snap: Snapshot) -> dict[str, Any]:
    eta, lowered, held = snap.eta_seconds, snap.rate_lowered, snap.holding_seconds
    return {
        "done": snap.done,
        "total": snap.total,
        "outcomes": dict(snap.outcomes),
        "requests": snap.requests,
        "requests_per_second": round(snap.requests_per_second, 1),
        "eta_seconds": round(eta) if eta is not None else None,
        "rate_cap": snap.rate_cap,
        "rate_now": round(lowered, 1) if lowered is not None else None,
        "throttled": snap.throttled,
        "holding": snap.holding,
        "holding_seconds": round(held) if held is not None else None,
    }


class LogProgress:
    """The `progress` event; silent once closed (the `summary` event has the final numbers)."""

    _closed = False

    def update(self, snap: Snapshot) -> None:
        if not self._closed:
            logs.log.info("progress", **progress_fields(snap))

    def close(self) -> None:
        self._closed = True

    def finish(self, final: Snapshot, *, interrupted: bool = False) -> None:
        self.close()


#: How the live display names outcomes, in the order it shows them (README "Logs and
#: progress"): short enough that a run's usual counts fit one 80-column line.
SHORT = {
    "canceled": "ok",
    "already_canceled": "already",
    "not_cancelable": "uncancelable",
    "not_found": "notfound",
    "rejected": "rejected",
    "failed": "failed",
    "invalid": "invalid",
    "duplicate": "dup",
    "would_cancel": "would-cancel",
    "checked": "checked",
}
#: Below this many columns the bar says nothing; the ETA or hold then gets its own line.
MIN_BAR = 10
#: A wider bar tells no more; the room goes to the counts.
MAX_BAR = 40
GAP = "  "
#: "Rate now" is measured over this many seconds of snapshots: the run's average lags
#: for minutes after a slow start or a hold.
RATE_WINDOW = 5.0


def clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def number(x: float) -> str:
    """`1,234`, or `0.5` for a fractional rate below 10."""
    return f"{x:.1f}" if x < 10 and x != int(x) else f"{x:,.0f}"


class RecentRate:
    """Requests per second over the last RATE_WINDOW seconds of snapshots."""

    def __init__(self) -> None:
        self._points: deque[tuple[float, int]] = deque()

    def add(self, snap: Snapshot) -> float:
        points = self._points
        points.append((snap.elapsed, snap.requests))
        while len(points) > 2 and snap.elapsed - points[1][0] >= RATE_WINDOW:
            points.popleft()
        (t0, r0), (t1, r1) = points[0], points[-1]
        return (r1 - r0) / (t1 - t0) if t1 > t0 else snap.requests_per_second


@dataclass(frozen=True)
class Frame:
    """One drawing of the live display, laid out for the console's width when drawn: bar,
    done/total, rate now vs. cap, ETA (or the hold, or once ended the time taken; on its own
    line if the bar would be narrower than MIN_BAR); then the outcome counts, wrapped; then
    429s and a lowered rate. What fits joins line 1. No line is wider than the console."""

    snap: Snapshot
    rate: float
    final: bool = False

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        total = f"{self.snap.total:,}" if self.snap.total else "?"
        head = [Text(f"{self.snap.done:,}/{total}"), Text(self._rate()), self._tail()]
        below = [head.pop()] if width - len(Text(GAP).join(head)) - 1 < MIN_BAR else []
        first = Text(GAP).join(head)
        bar = min(width - len(first) - 1, MAX_BAR)
        lead = bar + 1 if bar >= MIN_BAR else 0  # the bar and a space before line 1's text
        used = lead + len(first)
        counts, trouble = self._counts(), Text(self._trouble(), style="yellow")
        if not below:  # a wide console: what fits follows on line 1, in order
            if counts and used + len(GAP) + len(whole := Text(" ").join(counts)) <= width:
                first.append(GAP).append_text(whole)
                used, counts = used + len(GAP) + len(whole), []
            if not counts and trouble and used + len(GAP) + len(trouble) <= width:
                first.append(GAP).append_text(trouble)
                used, trouble = used + len(GAP) + len(trouble), Text()
        if lead:
            drawn = list(console.render(ProgressBar(self.snap.total, self.snap.done, bar), options))
            # Without colours rich leaves out the bar's remainder: pad it, so the numbers
            # after it stay put from one drawing to the next.
            yield from [*drawn, Segment(" " * (lead - Segment.get_line_length(drawn)))]
        for line in [first, *below, *self._wrap(counts, width), trouble]:
            if line:
                line.no_wrap = True
                line.truncate(width - lead if line is first else width, overflow="ellipsis")
                yield line

    def _rate(self) -> str:
        cap = self.snap.rate_cap
        return f"{number(self.rate)}/{number(cap)} req/s" if cap else f"{number(self.rate)} req/s"

    def _tail(self) -> Text:
        snap = self.snap
        if self.final:
            return Text(f"took {clock(snap.elapsed)}")
        if snap.holding is not None:
            held = snap.holding_seconds
            for_ = f" for {held:,.0f} s" if held is not None else ""
            return Text(f"holding: {snap.holding}{for_}", style="yellow")
        eta = snap.eta_seconds
        return Text(f"ETA {clock(eta)}" if eta is not None else "ETA ?")

    def _counts(self) -> list[Text]:
        known = [k for k in SHORT if k in self.snap.outcomes]
        others = sorted(k for k in self.snap.outcomes if k not in SHORT)
        return [
            Text.assemble((SHORT.get(k, k), "dim"), " ", (f"{n:,}", "bold"))
            for k in known + others
            if (n := self.snap.outcomes[k]) > 0
        ]

    def _trouble(self) -> str:
        snap, lowered = self.snap, self.snap.rate_lowered
        parts = [f"429s {snap.throttled:,}"] if snap.throttled else []
        if lowered is not None:
            cap = f"/{number(snap.rate_cap)}" if snap.rate_cap else "/s (no --rate)"
            parts.append(f"rate {number(lowered)}{cap}")
        return ", ".join(parts)

    @staticmethod
    def _wrap(items: list[Text], width: int) -> Iterator[Text]:
        line = Text()
        for item in items:
            if line and len(line) + 1 + len(item) > width:
                yield line
                line = Text()
            line.append_text(Text(" ") + item if line else item)
        yield line


class BarProgress:
    """The live display on a terminal. While it is up, rich puts a proxy in `sys.stderr`
    that prints each log line above it (the log stream writes to whatever `sys.stderr` is
    then), so no log line tears it and leaves a stale copy on the screen."""

    def __init__(self, console: Console | None = None) -> None:
        self._rate = RecentRate()
        self._closed = False
        self._live = Live(
            Frame(Snapshot(0, None, {}, 0, 0.0), 0.0),
            console=console or Console(file=sys.stderr),
            auto_refresh=False,  # drawn on update: no thread, nothing drawn after close
            redirect_stdout=False,  # standard output may be a file or a pipe: leave it be
            transient=False,
        )
        # rich has no hook for its live region's cursor moves: swap in one that knows.
        self._live._live_render = Reflowing(self._live.renderable, self._live.console)
        self._live.start(refresh=True)

    def update(self, snap: Snapshot) -> None:
        if not self._closed:
            self._live.update(Frame(snap, self._rate.add(snap)), refresh=True)

    def close(self) -> None:
        """Stop the display once; its last drawing stays on the screen, once."""
        if not self._closed:
            self._closed = True
            self._live.stop()

    def finish(self, final: Snapshot, *, interrupted: bool = False) -> None:
        if self._closed:
            return
        self._live.update(Frame(final, final.requests_per_second, final=True))
        self.close()
        if interrupted:
            of = f" of {final.total:,}" if final.total else ""
            line = f"stopped: {final.done:,}{of} done; run the same command again to resume"
            self._live.console.print(Text(line))


def choose(log_format: str | None) -> View:
    """A live display on an interactive terminal with console logs; log events otherwise."""
    if log_format != "json" and sys.stderr.isatty():
        return BarProgress()
    return LogProgress()
