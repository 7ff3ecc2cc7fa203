"""Main: one run put together: wiring, the job, the journal's fate, the summary.

The only place that knows every collaborator of a run; each is built by `wiring` or
the report package and handed to the `Job`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog

from worker.bambora.auth import AuthUnavailable, CredentialsRefused
from worker.control.health import ApiUnreachable
from worker.model import Mode, Outcome
from worker.observe import logs, progress
from worker.report.journal import IntentJournal, journal_path
from worker.report.records import ReportError
from worker.report.resume import repair_torn_tail
from worker.report.storage import StorageError
from worker.report.writer import ReportWriter
from worker.run.canceller import Stats
from worker.run.job import Job
from worker.run.prepare import Prepared, UsageError
from worker.run.summary import EXIT_ABORTED, Ending, Tally, exit_code
from worker.run.wiring import connect, sandboxed
from worker.settings import Settings

#: A live bar can redraw often; log lines come every --progress-seconds.
BAR_REDRAW_SECONDS = 0.5


async def execute(prepared: Prepared) -> int:
    """Run prepared input to the end; returns the exit code. UsageError: exit 2."""
    run_id = uuid.uuid4().hex[:12]
    structlog.contextvars.bind_contextvars(run_id=run_id)
    async with sandboxed(prepared.settings) as (s, sandbox_url):
        logs.log.info("start", **start_fields(s, sandbox_url))
        writer = _open_writer(prepared)
        journal = (
            IntentJournal(journal_path(s.report)) if s.mode is Mode.RUN and not s.dry_run else None
        )
        stats, tally = Stats(), Tally()
        started = time.monotonic()
        refreshes = _no_refreshes
        end = Ending()
        try:
            async with connect(s, stats, journal) as wired:
                refreshes = wired.token_refreshes
                job = Job(
                    source=prepared.source,
                    admission=prepared.admission(),
                    processor=wired.canceller,
                    writer=writer,
                    concurrency=s.concurrency,
                    grace_seconds=s.grace_seconds,
                    tally=tally,
                    requests=lambda: stats.requests,
                )
                view = progress.choose(s.log_format)
                bar = isinstance(view, progress.BarProgress)
                end = await job.run(
                    view, BAR_REDRAW_SECONDS if bar else s.progress_seconds, prepared.total
                )
        except (CredentialsRefused, AuthUnavailable, ApiUnreachable) as exc:
            end.abort_reason = end.abort_reason or str(exc)
            logs.log.error("aborted", reason=end.abort_reason)
        finally:
            try:
                writer.close()
            except StorageError as exc:
                end.abort_reason = end.abort_reason or f"the report could not be written: {exc}"
                logs.log.error("aborted", reason=end.abort_reason)
        code = exit_code(end, tally)
        code = _settle_journal(journal, end, tally, code)
        elapsed = time.monotonic() - started
        _push_metrics(s, tally, stats, refreshes(), elapsed, code)
        logs.log.info("summary", **summary_fields(s, end, tally, stats, refreshes(), elapsed, code))
        return code


def _no_refreshes() -> int:
    return 0


def _open_writer(prepared: Prepared) -> ReportWriter:
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
        writer = ReportWriter(report)
        writer.open()
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


def _push_metrics(
    s: Settings, tally: Tally, stats: Stats, refreshes: int, elapsed: float, code: int
) -> None:
    if not s.pushgateway:
        return
    from worker.observe.metrics import push

    push(
        s.pushgateway,
        job=s.job_name,
        shard=f"{s.shard.index}-of-{s.shard.count}",
        outcomes=tally.outcomes,
        duration=elapsed,
        exit_code=code,
        retries=stats.retries,
        throttled=stats.throttled,
        token_refreshes=refreshes,
        requests=stats.requests,
    )


def start_fields(s: Settings, sandbox_url: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"sandbox": sandbox_url} if sandbox_url else {}
    return fields | {
        "mode": "dry-run" if s.dry_run else s.mode.value,
        "input": s.input,
        "report": str(s.report),
        "concurrency": s.concurrency,
        "rate": s.rate,
        "shard": f"{s.shard.index}/{s.shard.count}",
        "api_url": s.api_url,
    }


def summary_fields(
    s: Settings, end: Ending, t: Tally, stats: Stats, refreshes: int, elapsed: float, code: int
) -> dict[str, Any]:
    return {
        "outcomes": dict(sorted(t.outcomes.items())),
        "rows_read": t.rows_read,
        "rows_reported": t.rows_reported,
        "rows_written": t.rows_written,
        "rows_already_reported": t.rows_already_reported,
        "rows_unwritten": end.unwritten,
        "lines_read": end.lines_read,
        "blank_rows": end.blank_rows,
        "requests": stats.requests,
        "retries": stats.retries,
        "throttled": stats.throttled,
        "token_refreshes": refreshes,
        "elapsed_seconds": round(elapsed, 3),
        "requests_per_second": round(stats.requests / elapsed, 1) if elapsed > 0 else 0.0,
        "report": str(s.report),
        "exit_code": code,
        "complete": end.complete,
    }
