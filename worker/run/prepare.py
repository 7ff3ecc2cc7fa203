"""Prepare: everything that can fail before the first request, so it fails as exit 2.

The report path is checked and locked, the input opened (once) and its header
checked, the existing report read strictly, the intent journal read, and, for a file
that can be read twice, the duplicate pre-pass made. The run's binding (input, kind,
target, shard) is checked against the report's run record. Nothing here sends
anything or writes anything.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from worker.input.admission import Admission, screen, unsent_before
from worker.input.dedup import CandidateDeduper, CandidateFinder, Deduper, ExactDeduper, key_of
from worker.input.fingerprint import Fingerprint, Recorder
from worker.input.head import fresh_head, head_digest
from worker.input.lines import InputError
from worker.input.source import Source, open_input
from worker.model import Mode, Row
from worker.observe import logs
from worker.observe.words import count
from worker.report.journal import IntentJournal, journal_path
from worker.report.lock import ReportLock, same_file
from worker.report.records import ReportError
from worker.report.resume import PriorRows, load_report, policy_for
from worker.report.runs import SANDBOX, Binding, check_binding, read_runs, run_count
from worker.report.writer import check_report_path
from worker.run.count import Counts
from worker.settings import Settings, other_report, run_kind

NO_LOCKS = "this filesystem does not support locks: make sure no other run uses this report"


class UsageError(Exception):
    """Found before any request: exit 2."""


@dataclass
class Prepared:
    """What `prepare` learnt before the first request."""

    settings: Settings
    source: Source
    prior: PriorRows
    pending: set[bytes]
    deduper: Deduper
    total: int | None  # rows of this shard, when the input could be counted
    lock: ReportLock
    runs: list[dict[str, Any]] = field(default_factory=list)  # the report's earlier runs
    input_sha256: str | None = None  # known before sending for a file only
    left: int | None = None  # rows of this shard the report does not yet settle
    counts: Counts | None = None  # references to send (files only), exact when asked
    binding: Binding | None = None  # what this run records before its first request

    @property
    def to_send(self) -> Counter[str] | None:
        """merchant -> references this run will send, exact (None: a stream, not
        counted). May read the file once more (see `count`): raises InputError."""
        return self.counts.exact() if self.counts is not None else None

    def admission(self) -> Admission:
        s = self.settings
        return Admission(
            merchant=s.merchant,
            shard=s.shard,
            deduper=self.deduper,
            prior=self.prior,
            pending=self.pending,
        )


def prepare(settings: Settings) -> Prepared:
    """Everything before the first request; raises UsageError (exit 2) on bad input.

    Takes the report's lock first and keeps it (the caller releases it at the end), so
    that a second run on the same report stops here, before reading anything.
    """
    s = settings
    if s.input != "-" and same_file(Path(s.input), s.report):
        kind = run_kind(s.mode, s.dry_run)
        raise UsageError(
            "the report path is the input file; run the same command with --report "
            f"{other_report(s.input, s.report, kind, s.shard)}"
        )
    lock = ReportLock(settings.report)
    try:
        check_report_path(settings.report)
        check_report_path(lock.real)  # a symlink's target must have its folder too
        lock.acquire()
    except (ReportError, OSError) as exc:
        raise UsageError(str(exc)) from None
    try:
        return _prepare(settings, lock)
    except BaseException:
        lock.release()
        raise


def _prepare(settings: Settings, lock: ReportLock) -> Prepared:
    if not lock.supported:
        logs.log.warning("report_not_locked", report=str(settings.report), why=NO_LOCKS)
    try:
        source = _open(settings)
    except (InputError, ReportError) as exc:
        raise UsageError(str(exc)) from None
    try:
        prior = load_report(settings.report, policy_for(settings.mode, settings.retry_outcomes))
        runs = read_runs(lock.real)  # beside the real file, whatever its name here
        sends = settings.mode is Mode.RUN and not settings.dry_run
        pending = IntentJournal.load(journal_path(lock.real), prior) if sends else set()
        deduper: Deduper = ExactDeduper()
        total = left = sha = None
        counts: Counts | None = None
        if source.rereadable:
            source.digest = None  # the pre-pass hashes the file
            survey = _prepass(settings, source, prior)
            source.expect(survey.fingerprint)  # the run reads what the pre-pass counted
            deduper, total, left = survey.deduper, survey.rows, survey.left
            sha = survey.fingerprint.sha256
            counts = Counts(
                settings,
                prior,
                lambda: _open(settings),
                survey.fingerprint,
                survey.candidates,
                survey.to_send,
            )
            if settings.max_references is not None:
                _check_cap(settings, sum(counts.exact().values()))
        binding = _check_binding(settings, source, prior, runs, sha)
    except (InputError, ReportError) as exc:
        source.close()
        raise UsageError(str(exc)) from None
    if prior.rows:
        done = None if left is None or total is None else total - left
        logs.log.info(
            "resuming",
            report=str(settings.report),
            rows=prior.rows,
            earlier_runs=run_count(runs),
            references_left=left,
            message=f"resuming {settings.report}: {count(prior.rows, 'row')} from "
            f"{count(run_count(runs), 'earlier run')}; "
            + ("? references left" if left is None else f"{count(left, 'reference')} left")
            + ("" if done is None else f", {done:,} settled"),
        )
    return Prepared(
        settings, source, prior, pending, deduper, total, lock, runs, sha, left, counts, binding
    )


def _open(settings: Settings) -> Source:
    return open_input(
        settings.input, settings.input_format, settings.delimiter, settings.multiline_cells
    )


def _check_cap(settings: Settings, sending: int) -> None:
    cap = settings.max_references
    if cap is not None and sending > cap:
        raise UsageError(
            f"{settings.input} holds {sending:,} references to send (after validation, "
            f"duplicates, shard and resume); --max-references is {cap:,}. Check the file, "
            "or raise the cap"
        )


def _check_binding(
    settings: Settings,
    source: Source,
    prior: PriorRows,
    runs: list[dict[str, Any]],
    sha: str | None,
) -> Binding:
    """This run's binding, checked against the report's records (ReportError: exit 2)."""
    if prior.rows and not runs:
        logs.log.warning(
            "report_without_run_record",
            report=str(settings.report),
            why="written by hand or by an older version: resumed as it is, unchecked",
        )
    s = settings
    kind = run_kind(s.mode, s.dry_run)
    this = Binding(
        kind=kind,
        input=s.input,
        input_sha256=sha,
        target=SANDBOX if s.sandbox else s.api_url,
        shard=f"{s.shard.index}/{s.shard.count}",
        head=lambda size: head_digest(source, size),
        input_path=os.path.realpath(s.input) if source.rereadable else None,
        stream=not source.rereadable,
    )
    warning = check_binding(
        s.report,
        runs,
        this,
        allow_changed_input=s.allow_changed_input,
        instead=lambda other_input: (
            "--report "
            + str(other_report(s.input, s.report, kind, s.shard, other_input=other_input))
        ),
    )
    if warning:
        logs.log.warning("input_changed", message=warning)
    size = fresh_head(source)  # after the check, which may have read further
    return replace(this, head_bytes=size, head_sha256=head_digest(source, size) if size else None)


@dataclass
class Survey:
    """What the first pass over a file learnt."""

    deduper: CandidateDeduper
    rows: int  # rows of this shard
    left: int  # of those, rows the report does not settle yet
    fingerprint: Fingerprint  # the bytes read: their size, SHA-256 and block marks
    #: merchant -> references this run would send (first sight, not settled; a key the
    #: duplicate filter mistook for a repeat, ~0.1 %, is missing from it: see `count`)
    to_send: Counter[str]
    candidates: dict[bytes, int]  # keys that may repeat -> the offer that made them one


def _prepass(settings: Settings, run_source: Source, prior: PriorRows) -> Survey:
    """First read of a file: count rows, find keys that may repeat (see `dedup`), count
    what an earlier run settled and what this one would send, fingerprint the bytes."""
    source = _open(settings)
    source.digest = recorder = Recorder()
    finder = CandidateFinder(run_source.estimated_lines())
    rows = settled = 0
    to_send: Counter[str] = Counter()
    try:
        for parsed in source.rows():
            item = screen(parsed, settings.merchant, settings.shard)
            if item is None:
                continue
            rows += 1
            if isinstance(item, Row):
                key = key_of(item.merchant, item.reference)
                done = key in prior.done
                settled += done
                if not finder.offer(key) and not done:
                    to_send[item.merchant] += 1
            else:
                settled += unsent_before(prior, item)
    except OSError as exc:
        raise InputError(f"cannot read input {settings.input}: {exc.strerror or exc}") from None
    except InputError as exc:
        raise InputError(f"cannot read input {settings.input}: {exc}") from None
    finally:
        source.close()
    return Survey(
        CandidateDeduper(finder.candidates),
        rows,
        rows - settled,
        recorder.fingerprint(),
        to_send,
        finder.candidates,
    )
