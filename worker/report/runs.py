"""Run records: `<report>.runs.jsonl`, two JSON objects per run that wrote the report.

A report is the record of one night: one input, one kind of run, one target API, one
shard. Each run appends a `start` record, the binding, before its first request (so
a run killed with SIGKILL binds the report like one that ended), and an `end` record
when it ends (counts, amounts released, exit code). The next run checks the binding
before sending anything: a report must not be resumed from another input, by another
kind of run (`check` rows do not mean what `run` rows mean), against another API (a
sandbox report says nothing about real payments), or by another shard. A report
without records (hand-made, or from an older version) resumes as before, with a
warning; an older version's records (no `event`, no `target`) are read as end
records, their target taken from `api_url`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yarl

from worker.access import is_loopback
from worker.errors import ReportError
from worker.report.storage import FILE_MODE, append_whole, cut_torn_line

#: What a record's `target` says for the embedded sandbox (`--sandbox`).
SANDBOX = "sandbox"


def runs_path(report: Path) -> Path:
    return report.with_name(report.name + ".runs.jsonl")


def read_runs(report: Path) -> list[dict[str, Any]]:
    """The report's run records; a torn last line (a crash mid-append) is skipped."""
    path = runs_path(report)
    runs: list[dict[str, Any]] = []
    try:
        with open(path, "rb") as f:
            lines = list(f)
    except FileNotFoundError:
        return runs
    except OSError as exc:
        raise ReportError(f"cannot read run record {path}: {exc.strerror or exc}") from None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            if raw.endswith(b"\n"):
                raise ReportError(f"run record {path}, line {number}: not a JSON object") from None
            break
        if not isinstance(doc, dict):
            raise ReportError(f"run record {path}, line {number}: not a JSON object")
        runs.append(doc)
    return runs


def append_run(report: Path, record: Mapping[str, Any]) -> None:
    """Append one record; a last line torn by a power cut is cut off first, or this
    record would be glued onto it and the file could no longer be read."""
    path = runs_path(report)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        cut_torn_line(fd)
        append_whole(fd, orjson.dumps(record) + b"\n", path)
    finally:
        os.close(fd)


def is_end(record: Mapping[str, Any]) -> bool:
    """An end-of-run record (an older version's records are all end records)."""
    return bool(record.get("event", "end") == "end")


def read_other_bytes(runs: list[dict[str, Any]], sha256: str) -> bool:
    """The last run that recorded its input's SHA-256 read other bytes than `sha256`."""
    recorded = [r.get("input_sha256") for r in runs if r.get("input_sha256")]
    return bool(recorded) and recorded[-1] != sha256


def run_count(runs: list[dict[str, Any]]) -> int:
    """Runs that wrote the report: a start and an end record are one run."""
    return len({r.get("run_id") for r in runs if r.get("run_id")}) or len(runs)


def recorded_inputs(report: Path, runs: list[dict[str, Any]]) -> list[tuple[Path, str]]:
    """Files the runs of `report` read, with the name each record gives them: the
    absolute `input_path`, and `input` as typed (relative to the folder the run was
    started in, which is the working directory or, for a default report, its folder)."""
    found: list[tuple[Path, str]] = []
    for r in runs:
        name = r.get("input")
        if isinstance(r.get("input_path"), str):
            found.append((Path(r["input_path"]), str(name)))
        if isinstance(name, str) and name not in ("", "-"):
            found += [(Path(name), name), (report.parent / name, name)]
    return found


@dataclass(frozen=True)
class Binding:
    """What this run is, to be checked against the report's earlier runs and recorded."""

    kind: str  # run / check / dry-run
    input: str  # as typed; "-" is standard input
    input_sha256: str | None  # None: not known before reading (standard input, a pipe)
    target: str  # SANDBOX, or the API's URL
    shard: str  # "I/N"
    #: SHA-256 of the input's first n bytes as stored (None: it holds fewer)
    head: Callable[[int], str | None] = field(default=lambda n: None)
    head_bytes: int = 0  # how many first bytes this run records (at most 64 KiB)
    head_sha256: str | None = None  # their SHA-256
    input_path: str | None = None  # absolute, for a named file
    stream: bool = False  # read once (standard input, a pipe, a FIFO)

    def fields(self) -> dict[str, Any]:
        """The binding as it goes into the start and the end record."""
        return {
            "input": self.input,
            "input_path": self.input_path,
            "input_kind": "stream" if self.stream else "file",
            "input_sha256": self.input_sha256,
            "input_head_bytes": self.head_bytes,
            "input_head_sha256": self.head_sha256,
            "shard": self.shard,
            "target": self.target,
        }


def check_binding(
    report: Path,
    runs: list[dict[str, Any]],
    this: Binding,
    *,
    allow_changed_input: bool,
    instead: Callable[[bool], str],
) -> str | None:
    """Raise ReportError (exit 2) if the report belongs to another input, kind of run,
    target or shard; `instead(another_input)` names the option to run with instead.
    Returns a warning to log, or None."""
    if not runs:
        return None
    since = f"started {runs[0].get('started_at')}"
    kinds = {str(r.get("mode")) for r in runs}
    if kinds != {this.kind}:
        raise ReportError(
            f"report {report} was written by `{', '.join(sorted(kinds))}` ({since}); this is "
            f"`{this.kind}`, whose rows mean something else there. Run the same command "
            f"with {instead(False)} (each kind of run has its own default report)"
        )
    for r in runs:
        theirs = target_of(r)
        older = "target" not in r  # only an older version's api_url may be the sandbox's
        if theirs is not None and not _same_target(theirs, this.target, older=older):
            raise ReportError(
                f"report {report} was written against {shown_target(theirs)} ({since}); this run "
                f"targets {shown_target(this.target)}, whose payments its rows say nothing about. "
                f"Run the same command with {instead(False)}"
            )
        if r.get("shard") not in (None, this.shard):
            raise ReportError(
                f"report {report} was written by shard {r.get('shard')} ({since}); this is "
                f"shard {this.shard}. Run the same command with {instead(False)}"
            )
    earlier = next((r for r in reversed(runs) if _identified(r)), None)
    if earlier is None:
        return None
    same = _same_input(earlier, this)
    if same is None or same:
        return None
    if allow_changed_input:
        return (
            f"resuming {report} with a changed input (--allow-changed-input): rows "
            "already final are not sent again; changed lines are reported afresh"
        )
    if this.input_path is not None and earlier.get("input_path") == this.input_path:
        # the same file, edited: most likely rows fixed (a fresh report would send every
        # reference again, each one already canceled answering 422)
        todo = (
            "Rerun with --allow-changed-input if you fixed rows of it, or run the same "
            f"command with {instead(True)} if it is another night's file"
        )
    else:
        todo = (
            f"Run the same command with {instead(True)}, or rerun with "
            "--allow-changed-input if you fixed rows of the same input"
        )
    raise ReportError(
        f"report {report} belongs to input {_named(earlier.get('input'))} "
        f"({_fingerprint(earlier)}, {since}), not to {_named(this.input)} ("
        + (f"sha256 {this.input_sha256[:12]}..." if this.input_sha256 else "other first bytes")
        + f"). {todo}"
    )


def target_of(record: Mapping[str, Any]) -> str | None:
    target = record.get("target")
    if isinstance(target, str):
        return target
    api = record.get("api_url")  # an older version's record: where it sent
    return api if isinstance(api, str) else None


def _same_target(theirs: str, ours: str, *, older: bool) -> bool:
    if theirs == ours:
        return True
    # An older version recorded the embedded sandbox by its loopback URL (a new port
    # each run): only a run on the sandbox can be taken for it. This version's `target`
    # says `sandbox` for it, so a loopback URL there is another API (a fake, a sandbox
    # run alone), never the embedded sandbox.
    return (
        older
        and ours == SANDBOX
        and theirs.startswith("http://")
        and is_loopback(yarl.URL(theirs).host)
    )


def shown_target(target: str) -> str:
    return "the embedded sandbox (--sandbox)" if target == SANDBOX else f"the API at {target}"


def _named(name: object) -> str:
    return "standard input" if name == "-" else str(name)


def _identified(record: Mapping[str, Any]) -> bool:
    return bool(record.get("input_sha256") or record.get("input_head_sha256"))


def whole_hash(record: Mapping[str, Any]) -> str | None:
    """The record's hash of its whole input: a file's, or a stream's read to its end."""
    sha = record.get("input_sha256")
    if not sha or (record.get("input_kind") == "stream" and not record.get("input_complete")):
        return None
    return str(sha)


def _same_input(record: Mapping[str, Any], this: Binding) -> bool | None:
    """Whether the record's input is this one; None when nothing can tell."""
    whole = whole_hash(record)
    if whole and this.input_sha256:
        return whole == this.input_sha256
    size, head = record.get("input_head_bytes"), record.get("input_head_sha256")
    if isinstance(size, int) and size > 0 and head:
        return bool(this.head(size) == head)
    return None


def _fingerprint(record: Mapping[str, Any]) -> str:
    whole = whole_hash(record)
    if whole:
        return f"sha256 {whole[:12]}..."
    head = str(record.get("input_head_sha256"))[:12]
    return f"first {record.get('input_head_bytes')} bytes: sha256 {head}..."
