"""Main: one run put together: wiring, the job, the journal's fate, the summary.

The only place that knows every collaborator of a run; each is built by `wiring` or
the report package and handed to the `Job`.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from tenacity.wait import wait_base

from worker import __version__
from worker.bambora.auth import AuthUnavailable, CredentialsRefused
from worker.bambora.backoff import BACKOFF
from worker.control.guard import RejectionGuard
from worker.control.health import ApiUnreachable
from worker.control.stop import StopGate
from worker.exits import RERUN_HELPS
from worker.model import Mode, Outcome
from worker.observe import logs, progress
from worker.observe.report_card import Card, render, termination_line
from worker.report.journal import IntentJournal, journal_path
from worker.report.records import ReportError
from worker.report.resume import repair_torn_tail
from worker.report.runs import append_run
from worker.report.storage import StorageError
from worker.report.writer import Echo, ReportWriter, utc_now
from worker.run.canceller import Stats
from worker.run.job import Job
from worker.run.outbox import Outbox
from worker.run.prepare import Prepared, UsageError
from worker.run.summary import (
    EXIT_ABORTED,
    Ending,
    Tally,
    exit_code,
    log_losses,
    push_metrics,
    summary_fields,
)
from worker.run.wiring import Wired, connect, sandboxed
from worker.settings import Settings, in_effect, run_kind

#: A live bar can redraw often; log lines come every --progress-seconds.
BAR_REDRAW_SECONDS = 0.5
#: Kubernetes shows this file's text in `kubectl describe pod` after the pod ended.
TERMINATION_LOG = Path("/dev/termination-log")


async def execute(
    prepared: Prepared, command: str = "cancel-worker", wait: wait_base = BACKOFF
) -> int:
    """Run prepared input to the end; returns the exit code. UsageError: exit 2.

    `command` is the command line as typed, for the "to finish, run ..." hint; `wait`
    the canceller's backoff between tries (tests pass a fast one).
    """
    try:
        return await _execute(prepared, command, wait)
    finally:
        prepared.store.close()  # the on-disk index lives for one run only
        prepared.lock.release()


async def _execute(prepared: Prepared, command: str, wait: wait_base) -> int:
    run_id = uuid.uuid4().hex[:12]
    structlog.contextvars.bind_contextvars(run_id=run_id)
    started_at = utc_now()
    async with sandboxed(prepared.settings) as (s, sandbox_url):
        logs.log.info("start", **start_fields(s, sandbox_url))
        writer = _open_writer(prepared, run_id)
        try:
            _record_start(prepared, s, run_id, started_at)
        except UsageError:
            writer.close()
            raise
        real = prepared.lock.real  # the journal and run record follow the report's real file
        journal = (
            IntentJournal(journal_path(real)) if s.mode is Mode.RUN and not s.dry_run else None
        )
        prior = prepared.prior
        stats = Stats()
        tally = Tally(
            released_earlier=Counter(prior.totals.released), states=Counter(prior.totals.states)
        )
        outbox = Outbox(writer, tally, journal)
        started = time.monotonic()
        refreshes: Callable[[], int] = int  # no token fetched yet: 0
        held: Callable[[], float] = float
        end = Ending()
        gate = StopGate()  # one for the run: the job closes it, every send obeys it
        try:
            async with connect(s, stats, outbox if journal else None, gate, wait) as wired:
                refreshes = wired.token_refreshes
                health = wired.health
                if health is not None:
                    held = lambda: health.held_total  # noqa: E731
                job = Job(
                    source=prepared.source,
                    admission=prepared.admission(),
                    processor=wired.canceller,
                    outbox=outbox,
                    concurrency=s.concurrency,
                    grace_seconds=s.grace_seconds,
                    guard=RejectionGuard(s.stop_on_rejections),
                    gate=gate,
                    max_sends=s.max_references,
                    requests=lambda: stats.requests,
                    extras=lambda: _pace_and_hold(s, stats, wired),
                )
                view = progress.choose(s.log_format)
                every = (
                    BAR_REDRAW_SECONDS
                    if isinstance(view, progress.BarProgress)
                    else s.progress_seconds
                )
                end = await job.run(view, every, prepared.total)
        except (CredentialsRefused, AuthUnavailable, ApiUnreachable) as exc:
            if end.abort_reason is None:
                end.abort_reason, end.fix = str(exc), getattr(exc, "fix", None)
            logs.log.error("aborted", reason=end.abort_reason)
        finally:
            try:
                writer.close()
            except StorageError as exc:
                end.abort_reason = end.abort_reason or f"the report could not be written: {exc}"
                logs.log.error("aborted", reason=end.abort_reason)
        if end.input_done and prepared.source.rows_seen == 0:
            logs.log.warning(
                "empty_input",
                input=s.input,
                why="the input has a header but no rows: nothing to do (exit 0); "
                "check the export if a night without payments to void is unusual",
            )
        log_losses(end, tally)
        code = exit_code(end, tally, strict=s.strict)
        code = _settle_journal(journal, end, tally, code)
        elapsed = time.monotonic() - started
        push_metrics(s, tally, stats, refreshes(), elapsed, code, held())
        if not logs.for_a_person():  # a person reads the card below instead
            fields = summary_fields(s, end, tally, stats, refreshes(), elapsed, code)
            logs.log.info("summary", **fields)
        _record_run(prepared, s, run_id, started_at, end, tally, stats.requests, code)
        _write_card(s, prepared.lock.real, command)
        _tell(s, tally, stats.requests, elapsed, code, command, end)
        return code


def _record_run(
    prepared: Prepared,
    s: Settings,
    run_id: str,
    started_at: str,
    end: Ending,
    tally: Tally,
    requests: int,
    code: int,
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
        "input_complete": end.input_done,
        "shard": f"{s.shard.index}/{s.shard.count}",
        "rows_read": tally.rows_read,
        "rows_reported": tally.rows_reported,
        "outcomes": dict(sorted(tally.outcomes.items())),
        "released": dict(sorted(tally.released.items())),
        "released_total": dict(sorted(tally.released_total.items())),
        "follow_ups": tally.follow_ups,
        **({"states": dict(sorted(tally.states.items()))} if s.mode is Mode.CHECK else {}),
        "requests": requests,
        "exit_code": code,
        "complete": end.complete,
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
    try:
        append_run(prepared.lock.real, record)
    except (StorageError, OSError) as exc:
        raise UsageError(f"cannot write the run record of {s.report}: {exc}") from None


def _tell(
    s: Settings,
    tally: Tally,
    requests: int,
    elapsed: float,
    code: int,
    command: str,
    end: Ending,
) -> None:
    """The human summary on standard error, and one line for Kubernetes: why the run
    stopped, and what finishes it (a fix first, when a rerun alone cannot help)."""
    left = end.fix is None and code in RERUN_HELPS
    card = Card(
        outcomes=tally.outcomes,
        released=tally.released,
        released_total=tally.released_total,
        states=tally.states if s.mode is Mode.CHECK else None,
        elapsed=elapsed,
        requests=requests,
        report=str(s.report),
        exit_code=code,
        resume_command=command if left else None,
        reason=end.abort_reason or end.guard_reason,
        fix=end.fix,
    )
    logs.say(render(card))
    if TERMINATION_LOG.exists() and os.access(TERMINATION_LOG, os.W_OK):
        with contextlib.suppress(OSError):
            TERMINATION_LOG.write_text(logs.mask(termination_line(card)) + "\n", encoding="utf-8")


def _pace_and_hold(s: Settings, stats: Stats, wired: Wired) -> dict[str, Any]:
    """What the progress display adds to the counts: the pace against the cap, 429s,
    and whether references are held behind an outage."""
    extras: dict[str, Any] = {"rate_cap": s.rate, "throttled": stats.throttled}
    if wired.throttle is not None:
        extras["rate_now"] = wired.throttle.current_rate
    if wired.health is not None and (holding := wired.health.holding()) is not None:
        extras["holding"], extras["holding_seconds"] = holding
    return extras


def _open_writer(prepared: Prepared, run_id: str) -> ReportWriter:
    report, torn = prepared.settings.report, prepared.prior.torn_bytes
    try:
        if torn:
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
    except (ReportError, OSError) as exc:
        raise UsageError(str(exc)) from None
    return writer


def _settle_journal(journal: IntentJournal | None, end: Ending, tally: Tally, code: int) -> int:
    """A complete run with nothing `failed` needs no journal; otherwise it is kept."""
    if journal is None:
        return code
    if end.complete and not tally.outcomes.get(Outcome.FAILED.value):
        journal.discard()
        return code
    try:
        journal.close()
    except StorageError as exc:
        logs.log.error("aborted", reason=f"the intent journal could not be written: {exc}")
        return EXIT_ABORTED
    return code


def start_fields(s: Settings, sandbox_url: str | None) -> dict[str, Any]:
    """Every setting in effect (`settings.in_effect`: secrets hidden), what kind of run
    this is, and where the embedded sandbox listens when there is one."""
    return in_effect(s) | {"mode": run_kind(s.mode, s.dry_run), "sandbox": sandbox_url}
