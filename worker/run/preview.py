"""Preview: what a run is about to do, shown before anything is sent, and the question.

Voiding payments cannot be undone, so on a terminal `run` first says how many
references it will send, to which merchants and which API, at what rate and for about
how long, and asks. Up to `SMALL_RUN` references a `y` will do; above it the operator
types the number, which makes them read it (a `y` is typed without reading). Without a
terminal (a container, a cron job) nothing is asked; `--yes` skips the question;
`--dry-run` shows the preview and sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import yarl

from worker.run.prepare import Prepared
from worker.settings import is_loopback

#: Up to this many references to send, `y` confirms; above it, the count must be typed.
SMALL_RUN = 10
#: Merchants listed by name in the preview; the rest are summed up.
MERCHANTS_SHOWN = 5


def render(prepared: Prepared) -> str:
    s = prepared.settings
    counts = prepared.to_send
    host = yarl.URL(s.api_url).host or s.api_url
    lines = []
    if counts is None:
        lines.append(f"about to cancel the references read from {s.input} (read once: not counted)")
    else:
        total = sum(counts.values())
        lines.append(
            f"about to cancel {total:,} references (after validation, duplicates, shard "
            f"and resume) from {s.input}"
        )
        for merchant, n in counts.most_common(MERCHANTS_SHOWN):
            lines.append(f"  merchant {merchant}: {n:,}")
        if len(counts) > MERCHANTS_SHOWN:
            rest = sum(n for _, n in counts.most_common()[MERCHANTS_SHOWN:])
            lines.append(f"  {len(counts) - MERCHANTS_SHOWN} more merchants: {rest:,}")
        if s.rate:
            lines.append(f"  at most {s.rate:g} requests/s: about {_duration(total / s.rate)}")
    lines.append(f"  API: {host}; report: {s.report}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def should_ask(prepared: Prepared, terminal: bool) -> bool:
    """Ask only a person (a terminal), only before real cancels, only off loopback."""
    s = prepared.settings
    if s.yes or s.dry_run or s.mode.value != "run" or s.sandbox or not terminal:
        return False
    return not is_loopback(yarl.URL(s.api_url).host)


def confirmed(prepared: Prepared, ask: Callable[[str], str]) -> bool:
    """Ask; True only for the exact answer (`y` for a small run, else the count)."""
    counts = prepared.to_send
    total = sum(counts.values()) if counts is not None else None
    if total == 0:
        return True  # nothing will be sent
    if total is not None and total > SMALL_RUN:
        answer = ask(f"type {total} to cancel them, anything else stops: ")
        return answer.strip().replace(",", "") == str(total)
    return ask("cancel them? [y/N] ").strip().lower() in ("y", "yes")
