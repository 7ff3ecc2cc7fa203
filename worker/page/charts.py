"""Charts: inline SVG drawn in code, so the page needs no script, font or file.

Every shape is labelled with its figure and filled with a pattern per outcome group
(solid, hatched, cross-hatched, dotted), so a chart reads the same printed in grey;
the page shows the same figures as a table beside each chart. Text that comes from
the files (run ids) is escaped here, as the template escapes everything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

#: Group -> the fill its bars get (patterns are defined once, in `DEFS`).
FILL = {
    "done": "url(#p-done)",
    "follow-up": "url(#p-follow)",
    "needs a person": "url(#p-person)",
    "left to retry": "url(#p-left)",
}
DEFS = Markup(
    '<svg width="0" height="0" aria-hidden="true" style="position:absolute">'
    "<defs>"
    '<pattern id="p-done" width="6" height="6" patternUnits="userSpaceOnUse">'
    '<rect width="6" height="6" fill="#1f5130"/></pattern>'
    '<pattern id="p-follow" width="6" height="6" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
    '<rect width="3" height="6" fill="#8a5a00"/></pattern>'
    '<pattern id="p-person" width="6" height="6" patternUnits="userSpaceOnUse">'
    '<rect width="6" height="6" fill="#fff"/><path d="M0 0L6 6M6 0L0 6" '
    'stroke="#9b1c1c" stroke-width="1.6"/></pattern>'
    '<pattern id="p-left" width="5" height="5" patternUnits="userSpaceOnUse">'
    '<rect width="5" height="5" fill="#fff"/><circle cx="2.5" cy="2.5" r="1.4" '
    'fill="#1c3d9b"/></pattern>'
    "</defs></svg>"
)
_BAR_WIDTH = 420  # viewBox units; the SVG scales to its box's width
#: The time axis spans at least this many buckets, so a short night is not one wall.
_MIN_BARS = 30


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    group: str


def outcome_bars(bars: Sequence[Bar], total: int) -> Markup:
    """One horizontal bar per outcome, its count and share written beside it."""
    height = 26 * len(bars) + 4
    top = max((b.value for b in bars), default=0) or 1
    parts = [
        f'<svg class="chart" viewBox="0 0 {_BAR_WIDTH} {height}" role="img" '
        f'aria-label="rows per outcome">'
    ]
    for i, b in enumerate(bars):
        y = 4 + 26 * i
        width = max(2.0, 170 * b.value / top) if b.value else 0
        share = 100 * b.value / total if total else 0
        parts.append(
            f'<text x="122" y="{y + 15}" text-anchor="end">{escape(b.label)}</text>'
            f'<rect x="128" y="{y}" width="{width:.1f}" height="20" fill="{FILL[b.group]}" '
            f'stroke="#222" stroke-width=".6"/>'
            f'<text x="{128 + width + 5:.1f}" y="{y + 15}">{b.value:,} ({share:.1f} %)</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Span:
    """A run on the time axis."""

    label: str
    start: str | None
    end: str | None  # None: no end record (killed): drawn to the last row seen


def _minute(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text[:16])
    except ValueError:
        return None


#: A bucket of this many minutes keeps the chart under this many bars.
_MAX_BARS = 720
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)


def buckets(minutes: Mapping[str, int]) -> tuple[int, list[tuple[datetime, int]]]:
    """Per-minute counts in buckets of 1, 2, 5... minutes (at most `_MAX_BARS` of them),
    from the first minute with rows to the last, empty buckets included."""
    times = sorted((t, n) for k, n in minutes.items() if (t := _minute(k)) is not None)
    if not times:
        return 1, []
    first, last = times[0][0], times[-1][0]
    span = int((last - first).total_seconds() // 60) + 1
    step = next((s for s in _STEPS if span / s <= _MAX_BARS), _STEPS[-1])
    base = first.replace(minute=first.minute - first.minute % step) if step < 60 else first
    counts: dict[int, int] = {}
    for t, n in times:
        index = int((t - base).total_seconds() // 60) // step
        counts[index] = counts.get(index, 0) + n
    out = [(base + timedelta(minutes=i * step), counts.get(i, 0)) for i in range(max(counts) + 1)]
    return step, out


def timeline(step: int, bars: list[tuple[datetime, int]], runs: Sequence[Span]) -> Markup:
    """Bars of cancels per bucket over the night, each run a labelled band under them."""
    if not bars:
        return Markup("")
    n = max(len(bars), _MIN_BARS)
    left, width, top_h, lane = 48, 580, 140, 16
    height = top_h + 24 + lane * len(runs) + 6
    peak = max(v for _, v in bars) or 1
    start = bars[0][0]
    minutes = n * step

    def x_of(t: datetime) -> float:
        offset = (t - start).total_seconds() / 60
        return left + width * min(max(offset, 0), minutes) / minutes

    parts = [
        f'<svg class="chart" viewBox="0 0 {left + width + 12} {height}" role="img" '
        f'aria-label="canceled per {step} minute(s), and the runs">',
        f'<text x="{left - 4}" y="12" text-anchor="end">{peak:,}</text>',
        f'<text x="{left - 4}" y="{top_h}" text-anchor="end">0</text>',
        f'<line x1="{left}" y1="{top_h}" x2="{left + width}" y2="{top_h}" stroke="#222"/>',
    ]
    bar_w = width / n
    for i, (_, value) in enumerate(bars):
        if value:
            h = max(1.0, (top_h - 6) * value / peak)
            parts.append(
                f'<rect x="{left + i * bar_w:.2f}" y="{top_h - h:.2f}" '
                f'width="{max(bar_w - 0.3, 0.4):.2f}" height="{h:.2f}" fill="#1f5130"/>'
            )
    end_t = bars[-1][0] + timedelta(minutes=step)
    parts.append(
        f'<text x="{left}" y="{top_h + 14}">{start:%Y-%m-%d %H:%M}</text>'
        f'<text x="{left + width}" y="{top_h + 14}" text-anchor="end">{end_t:%H:%M} UTC</text>'
    )
    for i, run in enumerate(runs):
        s, e = _minute(run.start), _minute(run.end)
        x1 = x_of(s) if s else left
        x2 = x_of(e + timedelta(minutes=1)) if e else left + width
        y = top_h + 22 + lane * i
        dash = ' stroke-dasharray="3 2"' if run.end is None else ""
        parts.append(
            f'<rect x="{x1:.1f}" y="{y}" width="{max(x2 - x1, 2):.1f}" height="{lane - 4}" '
            f'fill="#fff" stroke="#222"{dash}/>'
            f'<text x="{x1 + 3:.1f}" y="{y + 10}" class="small">{escape(run.label)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
