"""What a set of shard reports must prove before `merge-reports` merges them.

Their run records (`report.runs`) say it: one night (one kind of run, one target, one
input), every shard of N exactly once, and each shard's last run finished (read its
whole input, not stopped). A shard killed or aborted part-way holds only the rows it
reached: merged, its missing references would pass for "none missing". A report with
no run record (hand-made, or from an older version) says none of this and is only
checked by its name (`.shard-I-of-N.`) and, with `--input`, by its rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.errors import MergeError
from worker.report.runs import is_end, shown_target, whole_hash

SHARD_NAME = re.compile(r"\.shard-(\d+)-of-(\d+)\.")

Rec = dict[str, Any]
Records = dict[Path, list[Rec] | None]


def check_shards(reports: list[Path], records: Records, *, by_input: bool = False) -> None:
    """Raise MergeError unless the reports are every shard of one finished night.
    `by_input`: `--input` was given, and its row check proves every line, so a shard
    rerun alone on a changed input (a fixed invalid line) is not another night."""
    _check_one_night(records, by_input)
    _check_every_shard_once(reports, records)
    _check_finished(records)


def _check_one_night(records: Records, by_input: bool) -> None:
    """One kind of run, one target, one input: a `check` or a sandbox rehearsal left
    under a shard's name, or another night's shard, is not this night's."""
    # an older version's record has no `target` (its `api_url` named a sandbox by a new
    # loopback port each run): only records that say their target are compared
    shown: Callable[[str], str]
    for what, field, shown in (
        ("kind of run", "mode", lambda v: f"`{v}`"),
        ("target", "target", shown_target),
    ):
        seen: dict[str, Path] = {}
        for path, recs in records.items():
            for rec in recs or []:
                value = rec.get(field)
                if isinstance(value, str) and rec.get("mode") != "merge":
                    seen.setdefault(value, path)
        _refuse_two(seen, what, shown, f"merge the shards of one {what}")
    if by_input:
        return
    inputs: dict[str, Path] = {}
    for path, recs in records.items():
        hashes = [h for r in recs or [] if r.get("mode") != "merge" and (h := whole_hash(r))]
        if hashes:  # the latest run's
            inputs.setdefault(hashes[-1], path)
    _refuse_two(
        inputs,
        "input",
        lambda sha: f"an input with SHA-256 {sha[:12]}...",
        "merge the shards of one night (a shard rerun on a changed input: give the "
        "input with --input, which checks every line, or rerun the others on it too)",
    )


def _refuse_two(seen: dict[str, Path], what: str, shown: Callable[[str], str], fix: str) -> None:
    if len(seen) > 1:
        (a, first), (b, second) = list(seen.items())[:2]
        raise MergeError(
            f"the reports are of more than one {what}: {first} is of {shown(a)}, "
            f"{second} of {shown(b)}; {fix}"
        )


def recorded_shard(recs: list[Rec] | None) -> tuple[int, int] | None:
    """The shard `I/N` a report's run records name (their latest), if any."""
    for rec in reversed(recs or []):
        m = re.fullmatch(r"(\d+)/(\d+)", str(rec.get("shard") or ""))
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def _check_every_shard_once(reports: list[Path], records: Records) -> None:
    """Every shard of N is there, once: known from each report's run record, else its name."""
    counts: dict[int, dict[int, Path]] = {}
    for path in reports:
        shard = recorded_shard(records.get(path))
        if shard is None and (m := SHARD_NAME.search(path.name)):
            shard = int(m.group(1)), int(m.group(2))
        if shard is None:
            continue
        index, n = shard
        other = counts.setdefault(n, {}).setdefault(index, path)
        if other != path:
            raise MergeError(
                f"{other} and {path} are both the report of shard {index} of {n}: "
                "merge each shard's report once"
            )
    if len(counts) > 1:
        raise MergeError(
            "the reports are of shards of different counts ("
            + ", ".join(f"of {n}" for n in sorted(counts))
            + "): merge the shards of one night"
        )
    for n, seen in counts.items():
        missing = sorted(set(range(n)) - set(seen))
        if missing:
            which = ", ".join(map(str, missing))
            one = len(missing) == 1
            raise MergeError(
                f"the {'report' if one else 'reports'} of {'shard' if one else 'shards'} "
                f"{which} of {n} {'is' if one else 'are'} missing"
            )


def _check_finished(records: Records) -> None:
    """Each shard's last run read its whole input and was not stopped: its last record
    is an `end` that says `complete` (an older version's, without the field, passes)."""
    for path, recs in records.items():
        runs = [r for r in recs or [] if r.get("mode") != "merge"]
        if not runs:
            continue
        last = runs[-1]
        if not is_end(last):
            how = "was killed before its end, or is still running"
        elif last.get("complete") is False:
            code = last.get("exit_code")
            how = "stopped before the end of its input" + (
                f" (exit {code})" if isinstance(code, int) else ""
            )
        else:
            continue
        raise MergeError(
            f"{path} is not finished: its last run ({last.get('run_id') or 'unnamed'}) {how}, "
            "so references it did not reach have no row; rerun that shard's command until "
            "it ends, then merge"
        )
