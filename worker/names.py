"""Report names: each input's, kind's and shard's default report, and what to suggest
instead when a report belongs to another night.

The defaults live here, beside nothing else, so that the README's table and the
refusals' suggestions have one source: `<INPUT name without suffixes>.<kind>.csv` in
the working directory, `.shard-I-of-N` added for a shard.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol


class Shard(Protocol):
    """Shard I of N (`settings.Shard`, which imports this module)."""

    @property
    def index(self) -> int: ...

    @property
    def count(self) -> int: ...


#: Each kind of run has its own default report, so that a `check` before the nightly
#: `run` (or a dry run) can never be resumed by it: their rows mean other things.
REPORT_NAMES = {"run": "report", "check": "check", "dry-run": "dry-run"}


def default_report(input_arg: str, shard: Shard, kind: str = "run") -> Path:
    """`<INPUT name without suffixes>.<report|check|dry-run>.csv` in the working directory:
    the name up to its first dot, so `payments.csv.gz` and `payments.jsonl` both give
    `payments.report.csv`. Dated names of one folder (`night.2026-12-01.csv`) share it
    too: the second night is refused, naming its own `--report` (a rule that kept the
    date would move the report of every such night already run, and its journal, on an
    upgrade). Standard input has no name: `report.csv`.
    """
    if input_arg == "-":
        return _report_name("", shard, kind)
    base = Path(input_arg).name
    stem = base.split(".", 1)[0] if not base.startswith(".") else base
    return _report_name(stem or "input", shard, kind)


def _report_name(stem: str, shard: Shard, kind: str) -> Path:
    name = f"{stem}.{REPORT_NAMES[kind]}" if stem else REPORT_NAMES[kind]
    if shard.count > 1:
        name = f"{name}.shard-{shard.index}-of-{shard.count}"
    return Path(f"{name}.csv")


def other_report(
    input_arg: str, report: Path, kind: str, shard: Shard, *, other_input: bool = False
) -> Path:
    """A report to suggest when `report` belongs to another kind of run, shard, target
    or (`other_input`) input. For the same input, this kind's and shard's default when
    it is another file, even an existing one (it resumes that kind's night). Otherwise
    the first that does not exist of: that default, for another input the default
    spelled with the input's whole name (`night.jsonl.report.csv`: different inputs of
    one folder never share it), then numbered names (`report-2.csv`)."""
    names = [default_report(input_arg, shard, kind)]
    if other_input and input_arg != "-":
        whole = Path(input_arg).name
        names.append(report.with_name(_report_name(whole, shard, kind).name))
    names += [report.with_stem(f"{report.stem}-{n}") for n in range(2, 100)]
    same = os.path.realpath(report)
    if not other_input and os.path.realpath(names[0]) != same:
        # this kind's (and shard's) own default, even when it exists: for the same input
        # it resumes; a fresh numbered one would send again what it settled
        return names[0]
    return next(
        (p for p in names if os.path.realpath(p) != same and not os.path.lexists(p)), names[-1]
    )
