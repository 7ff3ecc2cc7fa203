"""Main: one real run, from its first log line to its exit code: the edges of the run.

It opens the report and the intent journal, writes the run record's `start` and `end`,
chooses the progress display, and hands the real report, journal and sending side
(`wiring.open_sender`) to `stages.run_stages`, which runs the pipeline and returns one
`RunReport`. Everything the run says at its end (the summary event, the run record,
the metrics, the human card, the termination message, the exit code) is read from it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Any

import structlog
from tenacity.wait import WaitBaseT

from worker import __version__
from worker.bambora.backoff import BACKOFF
from worker.errors import ReportError, StorageError, UsageError
from worker.exits import RERUN_HELPS
from worker.model import Mode, Outcome
from worker.observe import logs, progress
from worker.observe.report_card import Card, render, termination_line
from worker.report.journal import IntentJournal, journal_path
from worker.report.resume import repair_torn_tail, torn_pair
from worker.report.runs import append_run
from worker.report.survey import remove_survey, survey_path
from worker.report.writer import Echo, ReportWriter, utc_now
from worker.run.prepare import Prepared
from worker.run.stages import run_stages
from worker.run.summary import (
    RunReport,
    log_losses,
    push_metrics,
    summary_fields,
)
from worker.run.wiring import open_sender, sandboxed
from worker.run.writer import SyncThread
from worker.settings import Settings, in_effect, run_kind

#: A live bar can redraw often; log lines come every --progress-seconds.
BAR_REDRAW_SECONDS = 0.5
#: Kubernetes shows this file's text in `kubectl describe pod` after the pod ended.
TERMINATION_LOG = Path("/dev/termination-log")


async def execute(
    prepared: Prepared, command: str = "cancel-worker", *, wait: WaitBaseT = BACKOFF
) -> int:
    """Run prepared input to the end; returns the exit code. UsageError: exit 2.

    `command` is the command line as typed, for the "to finish, run ..." hint; `wait`
    the retry backoff policy (tests pass a fast one).
    """
    try:
        return await _execute(prepared, command, wait)
    finally:
        prepared.store.close()  # the on-disk index lives for one run only
        prepared.lock.release()


async def _execute(prepared: Prepared, command: str, wait: WaitBaseT) -> int:
    run_id = prepared.run_id or uuid.uuid4().hex[:12]
    structlog.contextvars.bind_contextvars(run_id=run_id)
    started_at = utc_now()
    async with sandboxed(prepared.settings) as (s, sandbox_url):
        logs.log.info("start", **(start_fields(s, sandbox_url) | _decided(prepared)))
        report = _open_report(prepared, run_id)
        try:
            _record_start(prepared, s, run_id, started_at)
        except UsageError:
            report.close()
            raise
        real = prepared.lock.real  # the journal and run record follow the report's real file
        journal = (
            IntentJournal(journal_path(real)) if s.mode is Mode.RUN and not s.dry_run else None
        )
        view = progress.choose(s.log_format)
        every = BAR_REDRAW_SECONDS if isinstance(view, progress.BarProgress) else s.progress_seconds
        syncs = SyncThread()
        try:
            run = await run_stages(
                prepared,
                report,
                journal,
                lambda calls, journaled, gate: open_sender(s, calls, journaled, gate, wait=wait),
                view=view,
                every=every,
                offload=syncs,
            )
        finally:
            syncs.close()
        if run.reading.done and run.reading.rows_seen == 0:
            logs.log.warning(
                "empty_input",
                input=s.input,
                why="the input has a header but no rows: nothing to do (exit 0); "
                "check the export if a night without payments to void is unusual",
            )
        log_losses(run)
        push_metrics(s, run)
        if not logs.for_a_person():  # a person reads the card below instead
            logs.log.info("summary", **summary_fields(s, run))
        _record_run(prepared, s, run_id, started_at, run)
        if run.complete and not run.outcomes.get(Outcome.FAILED.value):
            remove_survey(survey_path(prepared.lock.real))  # nothing left for a rerun
        _write_card(s, prepared.lock.real, command)
        _tell(s, run, command)
        return run.exit_code


def _record_run(
    prepared: Prepared, s: Settings, run_id: str, started_at: str, run: RunReport
) -> None:
    source = prepared.source
    sha = prepared.input_sha256 or (source.digest.hexdigest() if source.digest else None)
    bound = prepared.binding.fields() if prepared.binding else {}
    record = {
        "event": "end",
        "run_id": run_id,
        "mode": run_kind(s.mode, s.dry_run),
        "started_at": started_at,
        "finished_at": utc_now(),
        **bound,
        "input": s.input,
        "input_sha256": sha,
        "input_complete": run.reading.done,
        "shard": f"{s.shard.index}/{s.shard.count}",
        "rows_read": run.reading.rows,
        "rows_reported": run.rows_reported,
        "outcomes": dict(sorted(run.outcomes.items())),
        "released": dict(sorted(run.released.items())),
        "released_total": dict(sorted(run.released_total.items())),
        "follow_ups": run.follow_ups,
        **({"states": dict(sorted(run.states.items()))} if s.mode is Mode.CHECK else {}),
        "requests": run.calls.requests,
        "exit_code": run.exit_code,
        "complete": run.complete,
        **({"stopped_by": logs.mask(run.why_stopped)} if run.why_stopped else {}),
        **({"fix": logs.mask(run.fix)} if run.fix else {}),
        "version": __version__,
        "api_url": s.api_url,
    }
    try:
        append_run(prepared.lock.real, record)
    except (StorageError, OSError) as exc:
        logs.log.error("run_record_not_written", report=str(s.report), error=str(exc))


def _write_card(s: Settings, real: Path, command: str) -> None:
    """The report card page beside the report as named (read from its real file, where
    the run record is); a failure is logged, never the exit code."""
    if not s.card:
        return
    from worker.page.write import card_path, write_card  # Jinja2 is loaded only here

    try:
        path = write_card(real, card_path(s.report), command=logs.REDACTOR.scrub(command))
    except (ReportError, OSError, ValueError) as exc:
        logs.log.warning("report_card_not_written", report=str(s.report), error=str(exc))
        return
    logs.log.info("report_card_written", page=str(path))


def _record_start(prepared: Prepared, s: Settings, run_id: str, started_at: str) -> None:
    """The binding, before the first request: a run killed with SIGKILL binds the report
    like one that ended. Not written: nothing is sent (exit 2)."""
    assert prepared.binding is not None
    record = {
        "event": "start",
        "run_id": run_id,
        "mode": prepared.binding.kind,
        "started_at": started_at,
        **prepared.binding.fields(),
        "version": __version__,
        "api_url": s.api_url,
    }
    if prepared.prior.torn is not None:  # cut off by this run: see resume.torn_rows
        record["torn_row"] = prepared.prior.torn.text
    try:
        append_run(prepared.lock.real, record)
    except (StorageError, OSError) as exc:
        raise UsageError(f"cannot write the run record of {s.report}: {exc}") from None


def _tell(s: Settings, run: RunReport, command: str) -> None:
    """The human summary on standard error, and one line for Kubernetes: why the run
    stopped, and what finishes it (a fix first, when a rerun alone cannot help)."""
    code = run.exit_code
    left = run.fix is None and code in RERUN_HELPS
    card = Card(
        outcomes=run.outcomes,
        released=run.released,
        released_total=run.released_total,
        states=run.states if s.mode is Mode.CHECK else None,
        elapsed=run.elapsed,
        requests=run.calls.requests,
        report=str(s.report),
        exit_code=code,
        resume_command=command if left else None,
        reason=run.why_stopped,
        fix=run.fix,
    )
    logs.say(render(card))
    if TERMINATION_LOG.exists() and os.access(TERMINATION_LOG, os.W_OK):
        with contextlib.suppress(OSError):
            TERMINATION_LOG.write_text(logs.mask(termination_line(card)) + "\n", encoding="utf-8")


def _open_report(prepared: Prepared, run_id: str) -> ReportWriter:
    report, torn = prepared.settings.report, prepared.prior.torn_bytes
    s = prepared.settings
    try:
        if torn:
            pair = torn_pair(report, torn) if s.mode is Mode.RUN and not s.dry_run else None
            if pair is not None:  # its query-first outlives this run if it stops early
                intents = IntentJournal(journal_path(prepared.lock.real))
                try:
                    intents.record([pair])
                finally:
                    intents.close()
            repair_torn_tail(report, torn)
            logs.log.warning(
                "report_repaired",
                report=str(report),
                removed_bytes=torn,
                why="its last line had no newline (cut short by a crash); that row is redone",
            )
        columns = prepared.source.columns
        writer = ReportWriter(
            report,
            run_id=run_id,
            echo=Echo(prepared.settings.echo_columns),
            input_columns=[columns.names[i] for i in columns.others] if columns else None,
        )
        writer.open()
        prepared.lock.cover()  # the report exists now: lock its inode too (hard links)
    except OSError as exc:  # the writer's and the lock's own errors are ReportErrors
        raise ReportError(str(exc)) from None
    return writer


def _decided(prepared: Prepared) -> dict[str, Any]:
    """Settings left to the worker, as it decided them (the start event shows what is in
    effect, not None): the input's format and separator, the log format."""
    source = prepared.source
    columns = source.columns
    return {
        "input_format": source.format,
        "delimiter": columns.delimiter if columns else None,
        "log_format": logs.log_format(),
    }


def start_fields(s: Settings, sandbox_url: str | None) -> dict[str, Any]:
    """Every setting in effect (`settings.in_effect`: secrets hidden), what kind of run
    this is, and where the embedded sandbox listens when there is one."""
    return in_effect(s) | {"mode": run_kind(s.mode, s.dry_run), "sandbox": sandbox_url}
