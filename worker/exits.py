"""Exit codes: the one table of what each code means and what to do about it.

Operations act on the exit code alone (a pod failure policy, an alert rule, a shell
`case`), so each code names one thing to do: nothing (0), read the report (1), fix the
command (2), retry later (3, 5, 130, 143), or find out why the guard rail fired (4).
The CLI's help, the human summary's first line, the metrics and the deploy checks all
read this table; `run.summary.exit_code` is the rule that picks a run's code.
Plain data: this module imports nothing that does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    NEEDS_PERSON = 1
    USAGE = 2
    ABORTED = 3
    GUARD_RAIL = 4
    FAILED_ROWS = 5
    SIGINT = 130
    SIGTERM = 143


@dataclass(frozen=True)
class Meaning:
    """`summary`: the human summary's first line; `help`: the CLI's --help;
    `rerun_helps`: running the same command again can change the result (the
    Kubernetes samples retry these codes and treat the others as final)."""

    summary: str
    help: str
    rerun_helps: bool


MEANINGS: dict[Exit, Meaning] = {
    Exit.OK: Meaning(
        "done",
        "settled: canceled, already_canceled, or follow-ups (not_cancelable, not_found)",
        False,
    ),
    Exit.NEEDS_PERSON: Meaning(
        "finished; some rows need a person (see the report)",
        "finished, rows need a person: invalid or rejected (with --strict: follow-ups too)",
        False,
    ),
    Exit.USAGE: Meaning(
        "usage or input error", "usage, configuration or input error: nothing sent", False
    ),
    Exit.ABORTED: Meaning(
        "aborted",
        "aborted: credentials refused, API unreachable, report unwritable",
        True,
    ),
    Exit.GUARD_RAIL: Meaning(
        "stopped by a guard rail",
        "stopped by a guard rail (wrong merchant, credentials, file or URL): nothing sent",
        False,
    ),
    Exit.FAILED_ROWS: Meaning(
        "finished; some references failed (a rerun retries them)",
        "finished, some references failed: rerun the same command to retry them",
        True,
    ),
    Exit.SIGINT: Meaning("interrupted (SIGINT)", "interrupted by SIGINT: rerun to resume", True),
    Exit.SIGTERM: Meaning("interrupted (SIGTERM)", "interrupted by SIGTERM: rerun to resume", True),
}


def summary_line(code: int) -> str:
    """What the human summary says of an exit code."""
    try:
        return MEANINGS[Exit(code)].summary
    except ValueError:
        return "ended"


def help_text() -> str:
    """The exit codes for --help, one per line."""
    return "\n".join(f"  {int(code):>3}  {m.help}" for code, m in MEANINGS.items())


#: Codes after which running the same command again can change the result.
RERUN_HELPS = frozenset(code for code, m in MEANINGS.items() if m.rerun_helps)
