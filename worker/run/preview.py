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

from worker.observe.words import count, duration
from worker.run.prepare import Prepared
from worker.settings import is_loopback

#: Up to this many references to send, `y` confirms; above it, the count must be typed.
SMALL_RUN = 10
#: Merchants listed by name in the preview; the rest are summed up.
MERCHANTS_SHOWN = 5


def render(prepared: Prepared) -> str:
    """A few lines, none wider than 80 columns but for long file names."""
    s = prepared.settings
    counts = prepared.to_send
    lines = []
    if counts is None:
        lines.append(f"about to cancel the references read from {s.input}")
        lines.append("  (read once, as they arrive: not counted first)")
    else:
        total = sum(counts.values())
        lines.append(f"about to cancel {count(total, 'reference')} from {s.input}")
        lines.append("  (counted after validation, duplicates, shard and resume)")
        for merchant, n in counts.most_common(MERCHANTS_SHOWN):
            lines.append(f"  merchant {merchant}: {n:,}")
        if len(counts) > MERCHANTS_SHOWN:
            rest = sum(n for _, n in counts.most_common()[MERCHANTS_SHOWN:])
            lines.append(f"  {count(len(counts) - MERCHANTS_SHOWN, 'more merchant')}: {rest:,}")
        if s.rate:
            unit = "request/s" if s.rate == 1 else "requests/s"
            lines.append(f"  at most {s.rate:g} {unit}: {duration(total / s.rate)}")
    lines.append(f"  API: {where(s.api_url)}")
    lines.append(f"  report: {s.report}")
    return "\n".join(lines)


def where(api_url: str) -> str:
    """The API's host, with its port when the URL names one (a sandbox, a proxy)."""
    url = yarl.URL(api_url)
    host = url.host or api_url
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{url.explicit_port}" if url.explicit_port else host


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
        answer = ask(f"type {total:,} to cancel them, anything else stops: ")
        return answer.strip().replace(",", "") == str(total)
    return ask("cancel them? [y/N] ").strip().lower() in ("y", "yes")
