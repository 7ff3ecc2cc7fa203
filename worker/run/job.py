"""Pipeline: wires the stages of one run and owns start-up, shutdown and the tally.

    input ──reader──▶ rows ──queue (bounded)──▶ workers ×N ──▶ results ──queue──▶ writer ──▶ report
              │                                                     ▲
              └── invalid / duplicate rows go straight to the writer ┘

`prepare` does everything that can fail before a request (input, report, resume,
the duplicate pre-pass) and raises `UsageError` for exit 2. `execute` runs the
stages. Data flows one way. Shutdown follows Go's "pipelines and cancellation":
closing the input (the feeder stops) drains the workers; a signal stops the feeder,
lets busy workers finish within `--grace-seconds`, then cancels them; an abort
(credentials refused, API gone) cancels at once. The writer always drains what
reached it, so every finished reference has its row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from worker.bambora.api import ApiClient, make_session
from worker.bambora.auth import AuthUnavailable, ClientCredentials, CredentialsRefused, StaticToken
from worker.control.health import ApiUnreachable, Health
from worker.control.throttle import Throttle
from worker.input.dedup import CandidateDeduper, Deduper, ExactDeduper, find_candidates, key_of
from worker.input.shard import in_shard
from worker.input.source import CHUNK, InputError, Parsed, Source, open_input, validate
from worker.model import SUCCESS_OUTCOMES, Outcome, Rejected, Result, Row
from worker.observe import logs, progress
from worker.observe.progress import Snapshot, View
from worker.report.writer import (
    CHECK_FINAL,
    RUN_FINAL,
    IntentJournal,
    PriorRows,
    ReportError,
    ReportWriter,
    StorageError,
    check_report_path,
    journal_path,
    load_report,
    repair_torn_tail,
)
from worker.run.canceller import Canceller, Stats
from worker.settings import Mode, Settings

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE, EXIT_ABORTED = 0, 1, 2, 3
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
WRITE_BATCH = 512
#: After a second signal, the process ends within this many seconds whatever is stuck.
HARD_EXIT_SECONDS = 3.0


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
    total: int | None


@dataclass
class Tally:
    """Rows in, rows out and outcomes in the latest-row view."""

    rows_read: int = 0
    rows_written: int = 0
    rows_already_reported: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    decisive: Counter[str] = field(default_factory=Counter)  # without duplicates

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome.value] += 1
        if outcome is not Outcome.DUPLICATE:
            self.decisive[outcome.value] += 1


def final_set(settings: Settings) -> frozenset[Outcome]:
    return CHECK_FINAL if settings.mode is Mode.CHECK else RUN_FINAL


def _shard_rows(settings: Settings, parsed: Iterable[Parsed]) -> Iterator[Row | Rejected]:
    """Validated rows of this shard, in input order."""
    shard = settings.shard
    for row in parsed:
        item = validate(row, settings.merchant)
        if shard.active and not in_shard(item, shard):
            continue
        yield item


def prepare(settings: Settings) -> Prepared:
    """Everything before the first request; raises UsageError (exit 2) on bad input."""
    if settings.input != "-" and Path(settings.input).resolve() == settings.report.resolve():
        raise UsageError("the report path is the input file; choose another --report")
    try:
        check_report_path(settings.report)
        source = open_input(settings.input, settings.input_format)
    except (InputError, ReportError) as exc:
        raise UsageError(str(exc)) from None
    try:
        prior = load_report(settings.report, final_set(settings))
        pending = (
            IntentJournal.load(journal_path(settings.report), prior)
            if settings.mode is Mode.RUN and not settings.dry_run
            else set()
        )
        deduper: Deduper
        total: int | None = None
        if source.rereadable:
            deduper, total = _prepass(settings, source)
        else:
            deduper = ExactDeduper()
    except (InputError, ReportError) as exc:
        source.close()
        raise UsageError(str(exc)) from None
    return Prepared(settings, source, prior, pending, deduper, total)


def _prepass(settings: Settings, run_source: Source) -> tuple[CandidateDeduper, int]:
    """First read of a file: count rows and find keys that may repeat (see `dedup`)."""
    source = open_input(settings.input, settings.input_format)
    count = 0

    def keys() -> Iterator[bytes]:
        nonlocal count
        for item in _shard_rows(settings, source.rows()):
            count += 1
            if isinstance(item, Row):
                yield key_of(item.merchant, item.reference)

    try:
        candidates = find_candidates(keys(), run_source.estimated_lines())
    except OSError as exc:
        raise InputError(f"cannot read input {settings.input}: {exc.strerror or exc}") from None
    except InputError as exc:
        raise InputError(f"cannot read input {settings.input}: {exc}") from None
    finally:
        source.close()
    return CandidateDeduper(candidates), count


class Job:
    """One run of `run` or `check` over prepared input."""

    def __init__(self, prepared: Prepared) -> None:
        self.p = prepared
        self.s = prepared.settings
        self.tally = Tally()
        self.stats = Stats()
        self.run_id = uuid.uuid4().hex[:12]
        self.exit_code: int | None = None
        self.abort_reason: str | None = None
        # (row, maybe_landed): whether a killed earlier run may have sent its cancel
        self._rows: asyncio.Queue[tuple[Row, bool] | None] = asyncio.Queue(
            maxsize=self.s.concurrency * 4
        )
        self._results: asyncio.Queue[Result | None] = asyncio.Queue(
            maxsize=self.s.concurrency * 8 + WRITE_BATCH
        )
        self._stopping = False
        self._busy: set[asyncio.Task[None]] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._feeder: asyncio.Task[None] | None = None
        self._signals = 0
        self._stop_event = asyncio.Event()
        self._input_done = False
        self._input_error: str | None = None
        self._lines_lost = 0
        self._stats_lines = (0, 0)  # physical lines read, blank rows skipped
        self._graceful_abort = False
        self._started = time.monotonic()
        self.tokens_refreshes: Callable[[], int] = lambda: 0
        self.unwritten = 0  # finished rows the report could not take

    # -- stages ---------------------------------------------------------------------

    async def _feed(self) -> None:
        """Reader stage: rows to the workers, unsent rows straight to the writer."""
        prior = self.p.prior
        source = self.p.source
        try:
            async with contextlib.aclosing(_batches(source)) as batches:
                async for parsed in batches:
                    for item in _shard_rows(self.s, parsed):
                        if self._stopping:
                            return
                        await self._dispatch(item, prior)
            self._input_done = True
            if source.lines_seen != source.lines_accounted:
                self._lines_lost = source.lines_seen - source.lines_accounted
        except (OSError, InputError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._input_error = f"input became unreadable after {self.tally.rows_read} rows: {why}"
            logs.log.error("input_error", error=self._input_error)
        finally:
            source.close()
            self._stats_lines = (source.lines_seen, source.blank_rows)
        # Close the channel: one end-marker per worker. Not in `finally`: when the feeder
        # is cancelled nobody may be left to take them, and a blocked put would hang.
        for _ in range(self.s.concurrency):
            await self._rows.put(None)

    async def _dispatch(self, item: Row | Rejected, prior: PriorRows) -> None:
        self.tally.rows_read += 1
        if isinstance(item, Rejected):
            await self._unsent(item, prior)
            return
        key = key_of(item.merchant, item.reference)  # once per row: dedup, resume, journal
        if not self.p.deduper.first_time(key):
            dup = Rejected(
                item.line,
                item.merchant,
                item.reference,
                Outcome.DUPLICATE,
                "repeats an earlier row of the input",
            )
            await self._unsent(dup, prior)
            return
        done = prior.done.get(key) if prior.done else None
        if done is not None:
            self.tally.rows_already_reported += 1
            self.tally.count(done)
            return
        await self._rows.put((item, key in self.p.pending))

    async def _unsent(self, item: Rejected, prior: PriorRows) -> None:
        if item.line in prior.unsent_lines:
            self.tally.rows_already_reported += 1
            self.tally.count(prior.unsent_lines[item.line])
            return
        await self._results.put(
            Result(item.line, item.merchant, item.reference, item.outcome, detail=item.detail)
        )

    async def _work(self, canceller: Canceller | DryRun) -> None:
        task = asyncio.current_task()
        assert task is not None
        while True:
            work = await self._rows.get()
            if work is None or self._stopping:
                return
            self._busy.add(task)
            try:
                result = await self._process(canceller, *work)
            finally:
                self._busy.discard(task)
            if result is None:
                return
            await self._results.put(result)

    async def _process(
        self, canceller: Canceller | DryRun, row: Row, landed: bool
    ) -> Result | None:
        """The row's result; None when the run must abort (the row stays unreported)."""
        try:
            return await canceller.process(row, maybe_landed=landed)
        except (CredentialsRefused, AuthUnavailable, ApiUnreachable) as exc:
            self._abort(str(exc))
            return None
        except StorageError as exc:  # the journal: this cancel was not sent
            self._abort(f"the intent journal could not be written: {exc}", graceful=True)
            return None
        except Exception as exc:  # a bug must cost one row's outcome, never the row
            logs.log.exception("internal_error", line=row.line)
            return Result(
                row.line,
                row.merchant,
                row.reference,
                Outcome.FAILED,
                error_type="internal_error",
                detail=f"{type(exc).__name__}: {exc}"[:300],
            )

    async def _write(self, writer: ReportWriter) -> None:
        """Writer stage: the only task that touches the report.

        It never stops taking rows before the end marker, whatever fails, so no worker
        can block on a full queue: a row that cannot be written is counted as lost
        (its cancel is in the journal; the rerun asks the API) and the run stops.
        """
        results = self._results
        done = False
        while not done:
            batch: list[Result] = []
            item = await results.get()
            while True:
                if item is None:
                    done = True
                    break
                batch.append(item)
                if len(batch) >= WRITE_BATCH or results.empty():
                    break
                item = results.get_nowait()
            if not batch:
                continue
            try:
                writer.write(batch)
            except StorageError as exc:
                self.unwritten += len(batch)
                self._abort(f"the report could not be written: {exc}", graceful=True)
                continue
            for r in batch:
                self.tally.count(r.outcome)
                if logs.is_debug():
                    logs.log.debug(
                        "reference_done",
                        line=r.line,
                        merchant=r.merchant,
                        reference=r.reference,
                        outcome=r.outcome.value,
                        http_status=r.http_status,
                        attempts=r.attempts,
                    )
        self.tally.rows_written = writer.rows_written

    # -- control ----------------------------------------------------------------------

    def _abort(self, reason: str, *, graceful: bool = False) -> None:
        """Stop sending. `graceful`: in-flight requests may still finish (their cancels
        may have landed, so their answers are worth having); otherwise cancel at once."""
        if self.abort_reason is None:
            self.abort_reason = reason
            self._graceful_abort = graceful
            logs.log.error("aborted", reason=reason)
        self._stopping = True
        self._stop_event.set()

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self.exit_code is None:
            self.exit_code = EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM
        name = signal.Signals(signum).name
        if self._signals == 1:
            logs.log.warning(
                "stopping",
                signal=name,
                grace_seconds=self.s.grace_seconds,
                hint="in-flight requests may finish; a second signal stops at once",
            )
        else:
            logs.log.warning("stopping_now", signal=name)
            # Whatever is stuck (a request, a full disk), the process ends soon: every
            # row already written is whole, and the journal covers what was sent.
            timer = threading.Timer(HARD_EXIT_SECONDS, os._exit, args=(self.exit_code,))
            timer.daemon = True
            timer.start()
        self._stopping = True
        self._stop_event.set()

    async def _shutdown_workers(self) -> None:
        if self._feeder is not None:
            self._feeder.cancel()
        for task in self._workers:
            if task not in self._busy:
                task.cancel()
        busy = [t for t in self._workers if not t.done()]
        graceful = self.abort_reason is None or self._graceful_abort
        if busy and graceful and self._signals < 2:
            second = asyncio.ensure_future(self._second_signal())
            await asyncio.wait(
                [asyncio.ensure_future(asyncio.wait(busy)), second],
                timeout=self.s.grace_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            second.cancel()
        abandoned = [t for t in self._workers if not t.done()]
        for task in abandoned:
            task.cancel()
        if abandoned:
            logs.log.warning("abandoned_in_flight", references=len(abandoned))
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _second_signal(self) -> None:
        seen = self._signals
        while self._signals == seen:
            self._stop_event.clear()
            await self._stop_event.wait()

    def _snapshot(self) -> Snapshot:
        return Snapshot(
            done=sum(self.tally.outcomes.values()),
            total=self.p.total,
            outcomes=self.tally.outcomes,
            requests=self.stats.requests,
            elapsed=time.monotonic() - self._started,
        )

    async def _progress(self, view: View, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            view.update(self._snapshot())

    # -- the run ----------------------------------------------------------------------

    async def execute(self) -> int:
        s = self.s
        writer = ReportWriter(s.report)
        try:
            if self.p.prior.torn_bytes:
                repair_torn_tail(s.report, self.p.prior.torn_bytes)
                logs.log.warning(
                    "report_repaired",
                    report=str(s.report),
                    removed_bytes=self.p.prior.torn_bytes,
                    why="its last line had no newline (cut short by a crash); that row is redone",
                )
            writer.open()
        except (ReportError, OSError) as exc:
            raise UsageError(str(exc)) from None
        journal: IntentJournal | None = None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self._on_signal, signum)
        writer_task = asyncio.create_task(self._write(writer))
        view = progress.choose(s.log_format)
        # A bar can redraw often; a log line every --progress-seconds is enough.
        every = 0.5 if isinstance(view, progress.BarProgress) else s.progress_seconds
        progress_task = asyncio.create_task(self._progress(view, every))
        try:
            async with self._client() as canceller:
                if s.mode is Mode.RUN and not s.dry_run:
                    journal = IntentJournal(journal_path(s.report))
                    canceller.attach_journal(journal)
                self._feeder = asyncio.create_task(self._feed())
                self._workers = [
                    asyncio.create_task(self._work(canceller)) for _ in range(s.concurrency)
                ]
                all_done: asyncio.Future[object] = asyncio.ensure_future(
                    asyncio.gather(*self._workers, self._feeder)
                )
                stop: asyncio.Future[object] = asyncio.ensure_future(self._stop_event.wait())
                await asyncio.wait([all_done, stop], return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if not all_done.done():
                    await self._shutdown_workers()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._feeder
                all_done.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await all_done
        except (CredentialsRefused, AuthUnavailable, ApiUnreachable) as exc:
            self._abort(str(exc))
        finally:
            progress_task.cancel()
            view.update(self._snapshot())
            view.close()
            if not writer_task.done():  # it only ends on the marker; never wait on a dead one
                await self._results.put(None)
            try:
                await writer_task
                writer.close()
            except StorageError as exc:
                self._abort(f"the report could not be written: {exc}", graceful=True)
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
        return self._finish(journal)

    def _finish(self, journal: IntentJournal | None) -> int:
        t = self.tally
        complete = self.abort_reason is None and self.exit_code is None and self._input_done
        reported = t.rows_written + t.rows_already_reported
        if self.abort_reason is not None:
            code = EXIT_ABORTED
        elif self.exit_code is not None:
            code = self.exit_code
        elif self._input_error is not None:
            code = EXIT_INCOMPLETE
        elif reported != t.rows_read:
            logs.log.error(
                "rows_lost",
                rows_read=t.rows_read,
                rows_reported=reported,
                hint="some input rows have no report row; rerun the same command to finish them",
            )
            code = EXIT_INCOMPLETE
        elif self._lines_lost:
            logs.log.error(
                "lines_lost",
                lines_read=self._stats_lines[0],
                lines_unaccounted=self._lines_lost,
                hint="some input lines became no row; this is a bug: please report it",
            )
            code = EXIT_INCOMPLETE
        else:
            bad = sum(n for o, n in t.decisive.items() if Outcome(o) not in SUCCESS_OUTCOMES)
            code = EXIT_OK if bad == 0 else EXIT_INCOMPLETE
        if journal is not None:
            if complete and not t.outcomes.get(Outcome.FAILED.value):
                journal.discard()
            else:
                try:
                    journal.close()
                except StorageError as exc:
                    self._abort(f"the intent journal could not be written: {exc}")
                    code = EXIT_ABORTED
        elapsed = time.monotonic() - self._started
        if self.s.pushgateway:
            from worker.observe.metrics import push

            push(
                self.s.pushgateway,
                job=self.s.job_name,
                shard=f"{self.s.shard.index}-of-{self.s.shard.count}",
                outcomes=t.outcomes,
                duration=elapsed,
                exit_code=code,
                retries=self.stats.retries,
                throttled=self.stats.throttled,
                token_refreshes=self.tokens_refreshes(),
                requests=self.stats.requests,
            )
        logs.log.info(
            "summary",
            outcomes=dict(sorted(t.outcomes.items())),
            rows_read=t.rows_read,
            rows_reported=reported,
            rows_written=t.rows_written,
            rows_already_reported=t.rows_already_reported,
            rows_unwritten=self.unwritten,
            lines_read=self._stats_lines[0],
            blank_rows=self._stats_lines[1],
            requests=self.stats.requests,
            retries=self.stats.retries,
            throttled=self.stats.throttled,
            token_refreshes=self.tokens_refreshes(),
            elapsed_seconds=round(elapsed, 3),
            requests_per_second=round(self.stats.requests / elapsed, 1) if elapsed > 0 else 0.0,
            report=str(self.s.report),
            exit_code=code,
            complete=complete,
        )
        return code

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[Canceller | DryRun]:
        s = self.s
        if s.dry_run:
            yield DryRun()
            return
        async with make_session(concurrency=s.concurrency, timeout=s.timeout) as session:
            creds = s.credentials
            tokens: ClientCredentials | StaticToken
            if creds.token:
                tokens = StaticToken(creds.token)
            else:
                assert creds.client_id and creds.client_secret
                tokens = ClientCredentials(
                    session,
                    s.auth_url,
                    creds.client_id,
                    creds.client_secret,
                    timeout=s.timeout,
                    give_up_after=s.give_up_after,
                )
            self.tokens_refreshes = lambda: tokens.refreshes
            # A streak of at least --max-attempts failures means "everyone is failing"
            # (health.py explains why); larger with more workers in flight.
            health = Health(
                threshold=max(s.max_attempts, min(s.concurrency, 10)),
                give_up_after=s.give_up_after,
            )
            yield Canceller(
                ApiClient(session, s.api_url),
                tokens,
                Throttle(s.rate),
                health,
                max_attempts=s.max_attempts,
                comment=s.comment,
                check_only=s.mode is Mode.CHECK,
                stats=self.stats,
            )


class DryRun:
    """Stands in for the canceller under `--dry-run`: every valid row would be sent."""

    def attach_journal(self, journal: IntentJournal) -> None:
        pass

    async def process(self, row: Row, *, maybe_landed: bool = False) -> Result:
        return Result(row.line, row.merchant, row.reference, Outcome.WOULD_CANCEL)


async def _batches(source: Source) -> AsyncGenerator[list[Parsed], None]:
    """The input's rows, a chunk's worth at a time, as the bytes arrive.

    A regular file never blocks, so it is read on the loop's thread (measured faster
    than a thread, which makes the loop wait for the GIL). Anything else (a pipe, a
    FIFO, a terminal) is read through the event loop, so that a producer that is slow
    or never closes cannot hold up a signal: cancelling this generator ends the read.
    """
    if stat.S_ISREG(os.fstat(source.fd).st_mode):
        for batch in source.batches():
            yield batch
            await asyncio.sleep(0)
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), source.stream
    )
    try:
        head, source.head = source.head, b""
        yield source.feed(head)
        while data := await reader.read(CHUNK):
            yield source.feed(data)
        yield source.finish()
    finally:
        transport.close()
