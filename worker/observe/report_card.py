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

from worker.exits import Exit, summary_line
from worker.money import money
from worker.observe import words

#: Kubernetes reads at most 4096 bytes of a termination message.
TERMINATION_LIMIT = 4096


@dataclass(frozen=True)
class Card:
    outcomes: Mapping[str, int]
    released: Mapping[str, int]  # currency -> minor units, this run
    elapsed: float
    requests: int
    report: str
    exit_code: int
    resume_command: str | None  # set when something is left to do
    #: currency -> minor units over the whole report (earlier runs included)
    released_total: Mapping[str, int] | None = None
    states: Mapping[str, int] | None = None  # `check`: payment_state -> payments
    reason: str | None = None  # why the run stopped early (an abort, a guard rail)
    fix: str | None = None  # what a person must change first, when a rerun cannot help


FOLLOW_UPS = ("not_cancelable", "not_found")


def render(card: Card) -> str:
    width = max(
        [len(o) for o in card.outcomes] + [len(s) + 2 for s in card.states or {}], default=7
    )
    head = summary_line(card.exit_code)
    if card.reason and card.exit_code == Exit.NEEDS_PERSON:  # the input, not its rows
        head = "stopped before the end of the input (see the reason)"
    lines = [f"cancel-worker: {head} (exit {card.exit_code})"]
    if card.reason:
        lines.append(f"  reason: {card.reason}")
    for outcome, count in sorted(card.outcomes.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {outcome:<{width}}  {count:>9,}")
    if not card.outcomes:
        lines.append("  (no rows)")
    if follow_ups := sum(card.outcomes.get(o, 0) for o in FOLLOW_UPS):
        lines.append(f"  follow-ups: {follow_ups:,} (not_cancelable, not_found: see detail)")
    if card.states:
        lines.append("  payment states:")
        for state, count in sorted(card.states.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {state:<{width - 2}}  {count:>9,}")
    lines.extend(_released(card))
    rate = words.per_second(card.requests, card.elapsed)
    lines.append(
        f"  {card.elapsed:,.1f} s, {words.count(card.requests, 'request')} ({rate:,.1f}/s); "
        f"report: {card.report}"
    )
    if card.resume_command:
        lines.append(f"  to finish, run the same command again: {card.resume_command}")
    if card.fix:
        lines.append(f"  to fix: {card.fix}")
    return "\n".join(lines)


def _released(card: Card) -> list[str]:
    """Amounts with their scope: a resumed night's run releases only part of the report."""
    total = card.released_total if card.released_total is not None else card.released
    lines = []
    for currency in sorted(set(card.released) | set(total)):
        this_run = money(card.released.get(currency, 0), currency)
        lines.append(f"  released, this run      {this_run:>20}")
        lines.append(f"  released, whole report  {money(total.get(currency, 0), currency):>20}")
    return lines


def termination_line(card: Card) -> str:
    counts = " ".join(f"{o}={n}" for o, n in sorted(card.outcomes.items()))
    released = " ".join(money(m, c) for c, m in sorted(card.released.items()))
    total = card.released_total or {}
    text = f"exit {card.exit_code}: {counts or 'no rows'}"
    if card.reason:
        text += f"; reason: {card.reason}"
    if released:
        text += f"; released this run {released}"
    if total:
        text += "; whole report " + " ".join(money(m, c) for c, m in sorted(total.items()))
    text += f"; report {card.report}"
    if card.resume_command:
        text += f"; to finish: {card.resume_command}"
    if card.fix:
        text += f"; to fix: {card.fix}"
    return text.encode("utf-8")[: TERMINATION_LIMIT - 1].decode("utf-8", "ignore")
