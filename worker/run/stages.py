"""Stages: one run's pipeline put together over the collaborators given, to its end.

    reader ──▶ asyncio.Queue ──▶ workers ×N ──▶ writer ──▶ report, journal

`run_stages` builds the counts, the ledger, the writer, the reader and its queue, opens
the sending side (`open_sender`: the canceller, tokens, outage gate and throttle),
runs the `Job`, closes the report, settles the journal (kept, or discarded after a
complete night without `failed` rows), and folds it all into one `RunReport`.

It touches no file but through the report and journal it is handed, and no network
but through the sending side it opens, so the same code runs a real night
(`run/main.py` hands it the real ones) and a simulated one (`tests/sim` hands it
fakes on a fake clock).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from worker.control.guard import RejectionGuard
from worker.control.stop import StopGate
from worker.errors import AbortError, StorageError
from worker.input.admission import Admission, Send
from worker.model import Mode, Outcome
from worker.observe.progress import View
from worker.report.journal import IntentJournal
from worker.report.writer import ReportWriter
from worker.run.canceller import Journal
from worker.run.job import Job, hard_exit_soon
from worker.run.ledger import Ledger, Stop
from worker.run.prepare import Prepared
from worker.run.reader import READ_AHEAD, Reader
from worker.run.summary import Calls, Reading, RunReport, Tally
from worker.run.wiring import Sender
from worker.run.writer import Offload, Writer, in_thread
from worker.settings import Settings

#: Opens the sending side of a run: `wiring.open_sender` with the settings bound.
OpenSender = Callable[[Calls, Journal | None, StopGate], AbstractAsyncContextManager[Sender]]


async def run_stages(
    prepared: Prepared,
    report: ReportWriter,
    journal: IntentJournal | None,
    open_sender: OpenSender,
    *,
    view: View,
    every: float,
    admission: Admission | None = None,
    clock: Callable[[], float] = time.monotonic,
    hard_exit: Callable[[int], None] = hard_exit_soon,
    on_job: Callable[[Job], None] = lambda job: None,
    offload: Offload = in_thread,
) -> RunReport:
    """Run `prepared` through the stages; the report is closed on return.

    `every`: seconds between progress updates of `view`; `on_job` sees the job before
    it runs (a simulation sends it signals); `offload` runs the journal's syncs off the
    loop (a real run: `SyncThread`).
    """
    s = prepared.settings
    totals = prepared.prior.totals
    tally = Tally(released_earlier=Counter(totals.released), states=Counter(totals.states))
    ledger = Ledger()  # the run's stops; its gate is obeyed by every send
    writer = Writer(
        report,
        tally,
        journal,
        on_failure=lambda why: ledger.stop(Stop.abort(why, graceful=True)),
        offload=offload,
    )
    calls = Calls()
    reading = Reading()
    refreshes, held = 0, 0.0
    started = clock()
    admission = admission or prepared.admission()
    try:
        async with open_sender(calls, writer if journal else None, ledger.gate) as sender:
            queue: asyncio.Queue[Send | None] = asyncio.Queue(READ_AHEAD)
            job = Job(
                reader=Reader(
                    prepared.source,
                    admission,
                    queue,
                    writer,
                    workers=s.concurrency,
                    max_sends=s.max_references,
                    on_cap=lambda why: ledger.stop(Stop.guard(why, closes_gate=False)),
                    screened=prepared.screened,
                    dry_run=s.dry_run,
                    before=prepared.before,
                ),
                queue=queue,
                processor=sender.canceller,
                writer=writer,
                ledger=ledger,
                concurrency=s.concurrency,
                grace_seconds=s.grace_seconds,
                guard=RejectionGuard(s.stop_on_rejections, check=s.mode is Mode.CHECK),
                requests=lambda: calls.requests,
                extras=lambda: _pace_and_hold(s, calls, sender),
                hard_exit=hard_exit,
                clock=clock,
            )
            on_job(job)
            reading = await job.run(view, every, prepared.total)
            refreshes, held = sender.token_refreshes(), sender.held_seconds()
    except AbortError as exc:  # e.g. the token endpoint refused before any worker ran
        ledger.stop(Stop.abort(str(exc), fix=exc.fix))
    finally:
        try:
            report.close()
        except StorageError as exc:
            ledger.stop(Stop.abort(f"the report could not be written: {exc}"))
    skipped = prepared.before.open_intents if prepared.before else 0  # see `skip`
    _settle_journal(
        journal, ledger, reading, tally, writer.unwritten, admission.open_intents + skipped
    )
    return RunReport(
        mode=s.mode,
        strict=s.strict,
        reading=reading,
        rows_written=tally.rows_written,
        rows_already_reported=tally.rows_already_reported,
        rows_unwritten=writer.unwritten,
        outcomes=tally.outcomes,
        decisive=tally.decisive,
        released=tally.released,
        released_total=tally.released_earlier + tally.released,
        states=tally.states,
        calls=calls,
        token_refreshes=refreshes,
        held_seconds=held,
        elapsed=clock() - started,
        abort_reason=ledger.abort.reason if ledger.abort else None,
        fix=ledger.abort.fix if ledger.abort else reading.fix,
        guard_reason=ledger.guard.reason if ledger.guard else None,
        signal_code=ledger.signal.code if ledger.signal else None,
    )


def _settle_journal(
    journal: IntentJournal | None,
    ledger: Ledger,
    reading: Reading,
    tally: Tally,
    unwritten: int,
    open_intents: int = 0,
) -> None:
    """A complete run whose every row is in the report, none `failed`, needs no journal;
    otherwise it is kept (a rerun queries what it names before any cancel), and one that
    cannot be kept stops the run (exit 3: the rerun cannot trust it). Kept too when it
    names references this run took as settled that a `--retry-outcomes` run reopens
    (`open_intents`): a killed retry run's cancels, which a later retry must query."""
    if journal is None:
        return
    stopped = ledger.abort or ledger.guard or ledger.signal
    every_row = not unwritten and tally.rows_written + tally.rows_already_reported == reading.rows
    clean = not tally.outcomes.get(Outcome.FAILED.value) and not open_intents
    if reading.done and not stopped and every_row and clean:
        journal.discard()
        return
    try:
        journal.close()
    except StorageError as exc:
        ledger.stop(Stop.abort(f"the intent journal could not be written: {exc}"))


def _pace_and_hold(s: Settings, calls: Calls, sender: Sender) -> dict[str, Any]:
    """What the progress display adds to the counts: the pace against the cap, 429s,
    and whether references are held behind an outage."""
    extras: dict[str, Any] = {"rate_cap": s.rate, "throttled": calls.throttled}
    if sender.throttle is not None:
        extras["rate_now"] = sender.throttle.current_rate
    if sender.health is not None and (holding := sender.health.holding()) is not None:
        extras["holding"], extras["holding_seconds"] = holding
    return extras
