"""Prepare: everything that can fail before the first request, so it fails as exit 2.

The report path is checked and locked, the input opened (once) and its header
checked, the existing report read strictly (by line for a file, by reference
otherwise: see `report.resume`), the intent journal read, and, for a file that can be
read twice, the duplicate pre-pass made. The run's binding (input, kind, target,
shard) is checked against the report's run record. Nothing here sends anything or
writes anything but the run's own on-disk index (`report.index`), which the run removes,
and the survey a rerun may start from (`report.survey`, `run.shortcut`).
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from worker.errors import InputError, ReportError, StorageError, UsageError
from worker.input.admission import Admission
from worker.input.dedup import Deduper, ExactDeduper
from worker.input.head import fresh_head, head_digest
from worker.input.lines import GZIP_MAGIC
from worker.input.screened import Screened
from worker.input.source import Source, open_input
from worker.input.validate import check_default_merchant
from worker.model import Mode
from worker.names import other_report
from worker.observe import logs
from worker.observe.words import count
from worker.report.index import KeyMap, SpillStore
from worker.report.journal import IntentJournal, journal_path
from worker.report.lock import ReportLock, same_file
from worker.report.resume import (
    ByLine,
    PriorRows,
    Progress,
    load_report,
    policy_for,
    torn_rows,
)
from worker.report.runs import (
    SANDBOX,
    Binding,
    check_binding,
    read_other_bytes,
    read_runs,
    run_count,
)
from worker.report.writer import Echo, check_report_path
from worker.run.count import Counts
from worker.run.prepass import Start, Survey, prepass
from worker.run.shortcut import keep_survey, saved_survey, start_at
from worker.run.skip import Before, Watched, before
from worker.settings import Settings, run_kind

NO_LOCKS = "this filesystem does not support locks: make sure no other run uses this report"


@dataclass
class Prepared:
    """What `prepare` learnt before the first request."""

    settings: Settings
    source: Source
    prior: PriorRows
    pending: KeyMap
    deduper: Deduper
    total: int | None  # rows of this shard, when the input could be counted
    lock: ReportLock
    store: SpillStore  # the on-disk index; the caller closes (removes) it at the end
    runs: list[dict[str, Any]] = field(default_factory=list)  # the report's earlier runs
    input_sha256: str | None = None  # known before sending for a file only
    left: int | None = None  # rows of this shard the report does not yet settle
    counts: Counts | None = None  # references to send (files only), exact when asked
    binding: Binding | None = None  # what this run records before its first request
    screened: Screened | None = None  # a small file's rows, screened once (see screened)
    run_id: str = ""  # on every log line from `prepare` on, in every row and record
    before: Before | None = None  # where the run starts reading, past finished rows (`skip`)

    @property
    def to_send(self) -> Counter[str] | None:
        """merchant -> references this run will send, exact (None: a stream, not
        counted). May read the file once more (see `count`): raises InputError."""
        return self.counts.exact() if self.counts is not None else None

    def admission(self) -> Admission:
        return Admission(
            merchant=self.settings.merchant,
            shard=self.settings.shard,
            deduper=self.deduper,
            prior=self.prior,
            pending=self.pending,
            torn=torn_rows(self.prior, self.runs, journaled=bool(self.pending)),
        )


def prepare(settings: Settings, run_id: str | None = None) -> Prepared:
    """Everything before the first request; raises a UsageError (exit 2) on bad input.

    Takes the report's lock first and keeps it (the caller releases it at the end), so
    that a second run on the same report stops here, before reading anything. `run_id`:
    the run's id (a new random one when None; the simulator names its runs).
    """
    s = settings
    run_id = run_id or uuid.uuid4().hex[:12]
    structlog.contextvars.bind_contextvars(run_id=run_id)  # `resuming` and the rest say it too
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
    except OSError as exc:  # the lock file cannot be opened (its own errors are ours)
        raise ReportError(str(exc)) from None
    store = SpillStore(lock.real, settings.memory_budget)
    try:
        store.remove_stale()  # left by a killed run: never shared between runs
        return replace(_prepare(settings, lock, store, run_id), run_id=run_id)
    except BaseException as exc:
        store.close()
        lock.release()
        if isinstance(exc, StorageError):  # the on-disk index, before any request: exit 2
            raise ReportError(str(exc)) from None
        raise


def _prepare(settings: Settings, lock: ReportLock, store: SpillStore, run_id: str) -> Prepared:
    check_default_merchant(settings.merchant)
    if not lock.supported:
        logs.log.warning("report_not_locked", report=str(settings.report), why=NO_LOCKS)
    source = _open(settings)
    try:
        _check_echo(settings, source)
        policy = policy_for(settings.mode, settings.retry_outcomes)
        reading = _reading(settings)
        sends = settings.mode is Mode.RUN and not settings.dry_run
        pending = KeyMap(store)
        if sends:
            for key, intent in IntentJournal.entries(journal_path(lock.real)):
                if intent:
                    pending.set(key, 1)
                else:
                    pending.delete(key)
            pending.flush()
        max_line = _line_bound(source) if source.rereadable else 0
        saved = saved_survey(settings, source, lock.real)
        skips = not settings.retry_outcomes  # a retry reopens finished rows: it reads them
        # A file's rerun is resumed by line; the pre-pass proves the fit (see resume).
        prior = load_report(
            settings.report,
            policy,
            store,
            by_line=source.rereadable,
            max_line=max_line,
            progress=reading,
            into=Watched(policy, max_line, saved, pending) if saved and skips else None,
        )
        runs = read_runs(lock.real)  # beside the real file, whatever its name here
        deduper: Deduper = ExactDeduper(KeyMap(store))
        total = left = sha = None
        counts: Counts | None = None
        screened: Screened | None = None
        start: Start | None = None
        if source.rereadable:
            source.digest = None  # the pre-pass hashes the file
            start = start_at(prior, runs, policy)
            skipped = _skipping_prepass(settings, source, prior, start)
            if skipped is None:  # not the bytes the survey read: the whole file, as before
                start, skipped = None, _prepass(settings, source, prior)
            survey = skipped
            if isinstance(prior, ByLine) and (
                survey.proof != prior.checksum or read_other_bytes(runs, survey.fingerprint.sha256)
            ):
                # A changed file may hold a finished reference on a line the report
                # never reached (in flight at a kill): only a lookup by reference sees it.
                logs.log.info(
                    "resume_by_reference",
                    report=str(settings.report),
                    why="the input changed, or the report's rows do not all match its "
                    "lines (options changed): resuming by merchant and reference instead",
                )
                prior = load_report(settings.report, policy, store, by_line=False, progress=reading)
                start, survey = None, _prepass(settings, source, prior)
            source.expect(survey.fingerprint)  # the run reads what the pre-pass counted
            deduper, total, left = survey.deduper, survey.rows, survey.left
            screened = survey.screened
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
        if source.rereadable:
            keep_survey(settings, source, lock.real, survey, saved, run_id)
    except BaseException:
        source.close()
        raise
    if prior.rows:
        done = None if left is None or total is None else total - left
        logs.log.info(
            "resuming",
            report=str(settings.report),
            rows=prior.rows,
            earlier_runs=run_count(runs),
            references_left=left,
            from_line=start.at.line if start else None,
            message=f"resuming {settings.report}: {count(prior.rows, 'row')} from "
            f"{count(run_count(runs), 'earlier run')}, "
            + ("? references left" if left is None else f"{count(left, 'reference')} left")
            + ("" if done is None else f", {done:,} settled")
            + (f"; reading {settings.input} from line {start.at.line:,}" if start else ""),
        )
    return Prepared(
        settings, source, prior, pending, deduper, total, lock, store, runs, sha, left,
        counts, binding, screened,
        before=before(prior, start.at) if start and isinstance(prior, Watched) else None,
    )  # fmt: skip


def _prepass(
    settings: Settings, source: Source, prior: PriorRows, start: Start | None = None
) -> Survey:
    return prepass(settings, lambda: _open(settings), source.estimated_lines(), prior, start)


def _skipping_prepass(
    settings: Settings, source: Source, prior: PriorRows, start: Start | None
) -> Survey | None:
    """The pre-pass from `start`; None when the file is not the one the survey read
    (its SHA-256, known at the end): then a start in the middle of a line may even have
    read a fragment as another header (InputError), which a whole read must judge."""
    if start is None:
        return _prepass(settings, source, prior)
    assert isinstance(prior, Watched)
    try:
        survey = _prepass(settings, source, prior, start)
    except InputError:
        return None  # the whole read raises it again if the file really is bad
    return survey if survey.fingerprint.sha256 == prior.saved.sha256 else None


def _open(s: Settings) -> Source:
    return open_input(s.input, s.input_format, s.delimiter, s.multiline_cells)


def _check_echo(settings: Settings, source: Source) -> None:
    """`--echo-columns a,b` names columns of the CSV header: a typo would drop a column
    from every row unseen. (A JSON Lines input's names are only known row by row.)"""
    columns = source.columns
    if columns and (unknown := Echo(settings.echo_columns).missing(columns.names)):
        raise UsageError(
            f"--echo-columns names {', '.join(map(repr, unknown))}, which the header of "
            f"{settings.input} does not have; its columns: {', '.join(columns.names)}"
        )


def _line_bound(source: Source) -> int:
    """No line of the file is beyond this: a plain file has at most a line per byte; a
    gzip file's size is only estimated (a low guess only costs a read by reference)."""
    if source.head[:2] == GZIP_MAGIC:
        return source.estimated_lines() * 4
    return os.fstat(source.fd).st_size + 2


def _reading(settings: Settings) -> Progress:
    """A `resuming` event every --progress-seconds while a big report is read."""
    last = time.monotonic()

    def tick(rows: int, at: int, size: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < settings.progress_seconds:
            return
        last = now
        share = at / size if size else 1.0
        logs.log.info(
            "resuming",
            report=str(settings.report),
            rows_read=rows,
            share=round(share, 3),
            message=f"reading {settings.report}: {rows:,} rows so far ({share:.0%})",
        )

    return tick


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
