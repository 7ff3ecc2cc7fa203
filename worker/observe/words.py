"""Words for people: counts with their noun, written one way on every screen.

Thousands separators everywhere (`4,190 references`, never `4190`), the singular for
one (`1 reference`, not `1 references`), and durations never "about 0 s". The
preview, the resume line, the report card and the live display all use these, so
the same number reads the same wherever it appears.
"""

from __future__ import annotations


def count(n: int, noun: str) -> str:
    """`1 reference`, `4,190 references`."""
    return f"{n:,} {noun if n == 1 else noun + 's'}"


def per_second(n: int, seconds: float) -> float:
    """A run's rate, over one whole second at least: 2 requests in 0.06 s are 2 in
    that second, not 34/s (which reads as past a `--rate 20`)."""
    return n / max(seconds, 1.0)


def duration(seconds: float) -> str:
    """A rough duration for a person: `under a second`, `about 12 s`, `about 4 min`,
    `about 1.5 h`."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
