"""Report card: what a person reads when a run ends, and what Kubernetes keeps of it.

The `summary` log event is for machines; this is the same night in a few lines for
the operator at the terminal: outcomes with counts, amounts released per currency,
elapsed time and pace, the report's path, and, when anything is left to do, the exact
command that finishes it. `termination_line` is one line under 4 KB for
`/dev/termination-log`, which `kubectl describe pod` shows after the logs are gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from worker.observe import words

#: Kubernetes reads at most 4096 bytes of a termination message.
TERMINATION_LIMIT = 4096
EXIT_MEANING = {
    0: "done",
    1: "finished; some references did not end canceled",
    2: "usage or input error",
    3: "aborted",
    4: "stopped by a guard rail",
    130: "interrupted (SIGINT)",
    143: "interrupted (SIGTERM)",
}


@dataclass(frozen=True)
class Card:
    outcomes: Mapping[str, int]
    released: Mapping[str, int]  # currency -> minor units
    elapsed: float
    requests: int
    report: str
    exit_code: int
    resume_command: str | None  # set when something is left to do


def money(minor: int, currency: str) -> str:
    """Minor units as an amount; two decimals, which most currencies use."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole:,}.{cents:02d} {currency}"


def render(card: Card) -> str:
    width = max((len(o) for o in card.outcomes), default=7)
    lines = [f"cancel-worker: {EXIT_MEANING.get(card.exit_code, 'ended')} (exit {card.exit_code})"]
    for outcome, count in sorted(card.outcomes.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {outcome:<{width}}  {count:>9,}")
    if not card.outcomes:
        lines.append("  (no rows)")
    for currency, minor in sorted(card.released.items()):
        lines.append(f"  released  {money(minor, currency)}")
    rate = card.requests / card.elapsed if card.elapsed > 0 else 0.0
    lines.append(
        f"  {card.elapsed:,.1f} s, {words.count(card.requests, 'request')} ({rate:,.1f}/s); "
        f"report: {card.report}"
    )
    if card.resume_command:
        lines.append(f"  to finish, run the same command again: {card.resume_command}")
    return "\n".join(lines)


def termination_line(card: Card) -> str:
    counts = " ".join(f"{o}={n}" for o, n in sorted(card.outcomes.items()))
    released = " ".join(money(m, c) for c, m in sorted(card.released.items()))
    text = f"exit {card.exit_code}: {counts or 'no rows'}"
    if released:
        text += f"; released {released}"
    text += f"; report {card.report}"
    if card.resume_command:
        text += f"; to finish: {card.resume_command}"
    return text.encode("utf-8")[: TERMINATION_LIMIT - 1].decode("utf-8", "ignore")
