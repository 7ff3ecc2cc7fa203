"""Verdict: the night in one line, and the one thing to do next.

The exit codes' meanings are `worker.exits`' table, the one the CLI and the summary
use. What is left comes from the report's rows (latest-row view), how the last run
ended from its run record; the command to finish is the one the run was started with
when the run itself writes the page, else the one the run record states, else one
built from the record (input, report, shard), which says to add the first run's other
options.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from worker.exits import MEANINGS, Exit
from worker.page.night import Night
from worker.page.runs import Run
from worker.report.runs import SANDBOX

#: Who or what ends a run early, by its exit code: the codes of a night not finished.
_STOPPED_BY: dict[int, str] = {
    Exit.ABORTED: "aborted by the worker",
    Exit.GUARD_RAIL: "a guard rail",
    Exit.SIGINT: "SIGINT (Ctrl-C)",
    Exit.SIGTERM: "SIGTERM (a pod stop or kill)",
}


def meaning(code: int | None) -> str:
    if code is None:
        return "no exit code recorded"
    try:
        return MEANINGS[Exit(code)].help
    except ValueError:
        return "an exit code this version does not know"


def stopped_by(run: Run) -> str:
    """Who or what ended a run: the record's own word if it has one."""
    if run.stopped_by:
        return run.stopped_by
    if run.killed:
        return "killed: no end record (a crash, SIGKILL or a lost pod)"
    if run.exit_code in _STOPPED_BY:
        return _STOPPED_BY[run.exit_code]
    if run.complete is False:
        return "ended before the input did"
    return "ran to the end of its input"


@dataclass(frozen=True)
class Verdict:
    tone: str  # done / follow-up / person / left: the verdict box's pattern
    headline: str  # the one line
    command: str | None  # what finishes the night, when something is left for the tool


def _rebuilt(night: Night, run: Run) -> str:
    """The command a record implies; the first run's other options must be added."""
    # a start record may say less than an end record: any run of the report had the input
    given = run.input or next((r.input for r in reversed(night.runs) if r.input), None)
    kind = run.mode or night.mode
    mode = "check" if kind == "check" else "run"
    words = ["cancel-worker", mode, given or "INPUT", "--report", str(night.report)]
    if run.shard and run.shard != "0/1":
        words += ["--shard", run.shard]
    if kind == "dry-run":
        words.append("--dry-run")
    if run.target == SANDBOX:  # without it, the rerun is refused: another target
        words.append("--sandbox")
    return shlex.join(words) + "  (plus the other options the first run had)"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def judge(night: Night, command: str | None = None) -> Verdict:
    """The verdict line; `command` is the exact command of the run writing the page."""
    last = next((r for r in reversed(night.runs) if not r.report), None)
    failed, person, follow = (
        night.group("left to retry"),
        night.group("needs a person"),
        night.group("follow-up"),
    )
    rows = _plural(night.rows, "reference")
    if night.merged is not None:
        return _judge_merged(night, failed, person, follow)
    if last is None:
        return Verdict(
            "left" if failed else ("person" if person else "done"),
            f"{rows} in the report; it has no run record, so how its runs ended is unknown."
            + _left(failed, person, follow),
            None,
        )
    again = command or _rebuilt(night, last)
    if last.killed:
        return Verdict(
            "left",
            f"Not finished: the last run (started {last.started_at}) ended without a "
            f"record (killed). Rerun the same command to resume.",
            again,
        )
    code = f"the last run: exit {last.exit_code}, {meaning(last.exit_code)}"
    if last.complete is False or last.exit_code in _STOPPED_BY:
        if last.stopped_by:  # the record says what stopped it, rather than the code
            code = f"the last run: exit {last.exit_code}, stopped: {last.stopped_by}"
        then = (
            f"to fix: {last.fix}."
            if last.fix
            else "rerun the same command to resume: nothing is canceled twice."
        )
        return Verdict("left", f"Not finished; {code}. {rows} reported so far; {then}", again)
    if failed:
        # exit 5's meaning already says to rerun: said twice, it reads as a slip
        rerun = "" if "rerun" in code else " Rerun the same command to retry them."
        rest = _left(0, person, follow) if person or follow else ""  # all that is left
        return Verdict(
            "left",
            f"Complete, {_plural(failed, 'reference')} left to retry; {code}.{rerun}{rest}",
            again,
        )
    tone = "person" if person else ("follow-up" if follow else "done")
    return Verdict(tone, f"Complete; {code}." + _left(0, person, follow), None)


def _left(failed: int, person: int, follow: int) -> str:
    parts = []
    if failed:
        parts.append(f"{_plural(failed, 'reference')} left to retry")
    if person:
        needs = "needs" if person == 1 else "need"
        parts.append(f"{_plural(person, 'row')} {needs} a person (invalid or rejected)")
    if follow:
        parts.append(f"{_plural(follow, 'follow-up')} for support (not cancelable, not found)")
    return (" " + "; ".join(parts) + ".") if parts else " Nothing left to do."


def _judge_merged(night: Night, failed: int, person: int, follow: int) -> Verdict:
    shards = len(night.merged.get("reports") or []) if night.merged else 0
    head = f"Merged report of {_plural(shards, 'shard')}, {_plural(night.rows, 'reference')}."
    if failed:
        todo = sorted(k for k, b in night.shards.items() if b.group("left to retry"))
        where = f" (shards {', '.join(todo)})" if todo else ""
        return Verdict(
            "left",
            f"{head} {_plural(failed, 'reference')} left to retry: rerun the shards that "
            f"have them{where}, then merge again." + _left(0, person, follow),
            None,
        )
    tone = "person" if person else ("follow-up" if follow else "done")
    return Verdict(tone, head + _left(0, person, follow), None)
