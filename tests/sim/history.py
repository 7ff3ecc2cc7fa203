"""History: one seeded night, run to each crash and resumed until it is complete.

A seed chooses the input (its size, duplicates, invalid rows, up to three merchants),
each payment's state at the API, the settings, and for each of the first few runs a
fault schedule, a crash step (a kill or a power cut, torn or not), a SIGTERM step and
a full disk. Each run starts from what the disk kept, with the real `prepare()`, on an
event loop whose clock only moves when every task waits (`looptime`), so the same seed
replays the same history. The runs after the last faulty one are clean: the night
must then complete. The invariants (`invariants.py`) are checked after the night.

Replay one seed: `python -m tests.sim --seed 12345` (prints its history), or, for a
seed of the CI's range, `pytest tests/sim -k "night[seed_12345]"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import looptime
import structlog

from tests.sim import invariants
from tests.sim.disk import Disk
from tests.sim.steps import Crash, Timeline
from tests.sim.world import (
    API_URL,
    AUTH_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    Faults,
    Payment,
    RunResult,
    World,
    start_run,
)
from worker.access import Credentials
from worker.input import screened, source
from worker.model import Mode
from worker.report import survey
from worker.run.prepare import Prepared, UsageError, prepare
from worker.settings import MAX_REFERENCE, Settings

STATES = {"Authorized": 80, "Canceled": 6, "Captured": 6, "Declined": 3, None: 5}
CURRENCIES = ("DKK", "EUR", "SEK")
#: Where the nights' files live: memory-backed when the machine has it.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None


@dataclass(frozen=True)
class RunPlan:
    faults: Faults
    crash: Crash | None = None
    signal_at: int | None = None
    full_at: int | None = None

    def __str__(self) -> str:
        f = self.faults
        parts = [f"api faults {f.api_rate:.0%}", f"token faults {f.token_rate:.0%}"]
        if f.refuse_from is not None:
            parts.append(f"client refused from token request {f.refuse_from}")
        if self.crash:
            parts.append(str(self.crash))
        if self.signal_at:
            parts.append(f"SIGTERM at step {self.signal_at}")
        if self.full_at:
            parts.append(f"disk full from step {self.full_at}")
        return ", ".join(parts)


CLEAN = RunPlan(Faults())


@dataclass
class Plan:
    """Everything a seed decides before the night starts."""

    seed: int
    rows: list[tuple[str, str]]  # (reference, merchant), in input order
    payments: dict[tuple[str, str], Payment]
    settings: dict[str, Any]
    token_life: float
    runs: list[RunPlan]
    forbidden: frozenset[str] = frozenset()
    #: odd seeds: the run reads the file again (as past `READ_ONCE_ROWS`), not the
    #: pre-pass's screened rows; from the seed alone, so no other draw moves
    reread: bool = False

    def describe(self) -> list[str]:
        merchants = len({m for _, m in self.rows})
        s = self.settings
        lines = [
            f"seed {self.seed}: {len(self.rows)} rows, {len(self.payments)} payments, "
            f"{merchants} merchant(s); concurrency {s['concurrency']}, max_attempts "
            f"{s['max_attempts']}, rate {s['rate']}, grace {s['grace_seconds']} s, "
            f"token life {self.token_life:g} s"
            + "".join(f", no access to merchant {m}" for m in sorted(self.forbidden))
            + (", the run reads the file again" if self.reread else ", the file read once")
        ]
        lines += [f"  run {i + 1} plan: {run}" for i, run in enumerate(self.runs)]
        return lines


def make_plan(seed: int) -> Plan:
    rng = random.Random(seed)
    n = rng.randint(2, 30)
    merchants = ["T1", "T2", "T3"][: rng.randint(1, 3)]
    payments: dict[tuple[str, str], Payment] = {}
    for i in range(n):
        key = (rng.choice(merchants), f"p{i:03d}")
        state = rng.choices(list(STATES), list(STATES.values()))[0]
        if state is not None:
            payments[key] = Payment(
                key[0], key[1], state, rng.randint(100, 99_999), rng.choice(CURRENCIES)
            )
        else:
            payments[key] = Payment(key[0], key[1], "", 0, "")  # not found: removed below
    keys = list(payments)
    rows = [(r, m) for m, r in keys]
    for _ in range(rng.randint(0, n // 4)):  # duplicates
        m, r = rng.choice(keys)
        rows.insert(rng.randint(0, len(rows)), (r, m))
    for _ in range(rng.randint(0, 2)):  # invalid rows
        bad = rng.choice(["", "x" * (MAX_REFERENCE + 1)])
        rows.insert(rng.randint(0, len(rows)), (bad, rng.choice(merchants)))
    rng.shuffle(rows)
    payments = {k: p for k, p in payments.items() if p.state}
    settings = {
        "concurrency": rng.choice([1, 2, 3, 4, 8]),
        "max_attempts": rng.choice([2, 3, 5]),
        "rate": rng.choice([None, 5.0, 20.0]),
        "grace_seconds": rng.choice([0.5, 5.0, 20.0]),
    }
    runs = []
    for _ in range(rng.randint(1, 3)):
        faults = Faults(
            api_rate=rng.choice([0.0, 0.1, 0.25, 0.4]),
            token_rate=rng.choice([0.0, 0.0, 0.2]),
            refuse_from=rng.choice([None] * 8 + [1, 2]),
        )
        crash = None
        if rng.random() < 0.75:
            crash = Crash(
                step=rng.randint(1, 6 * n + 10),
                after=rng.random() < 0.5,
                power_cut=rng.random() < 0.4,
                tear=rng.random() < 0.5,
            )
        signal_at = rng.randint(1, 6 * n + 10) if rng.random() < 0.15 else None
        full_at = rng.randint(1, 6 * n + 10) if rng.random() < 0.1 else None
        runs.append(RunPlan(faults, crash, signal_at, full_at))
    forbidden = frozenset({"T3"}) if len(merchants) == 3 and rng.random() < 0.2 else frozenset()
    life = rng.choice([30.0, 120.0, 600.0])
    return Plan(seed, rows, payments, settings, life, runs, forbidden, reread=seed % 2 == 1)


class SimLoop(looptime.make_event_loop_class(asyncio.SelectorEventLoop)):  # type: ignore[misc]
    """An event loop on `looptime`'s fake clock: time moves only when every task waits.

    What the run hands to a thread (the journal's fsync) runs at once, in line: a
    history must not depend on how the OS schedules threads. Signal handlers are not
    installed: the sim delivers its SIGTERM itself, at a chosen step.
    """

    #: Loop turns one run may take (a night takes a few thousand): past it, a livelock.
    MAX_TURNS = 1_000_000

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # looptime watches executor futures on every turn; ours are done at once, so
        # there is nothing to watch (an empty WeakSet still costs ~10 % of a history).
        self._LoopTimeEventLoop__sync_futures = ()
        self._reads = 0
        self._turns = 0
        self.livelock = False

    def clock(self) -> float:
        """The run's clock: the loop's time, plus a nanosecond per reading. A real clock
        moves between two readings; looptime's stands still until every task waits, so
        code that sleeps what a float rounding left (1e-15 s) and reads the clock again
        would spin forever on it, which no real run does."""
        self._reads += 1
        return float(self.time()) + self._reads * 1e-9

    def _run_once(self) -> None:
        self._turns += 1
        if self._turns > self.MAX_TURNS and not self.livelock:
            self.livelock = True
            self.stop()
        super()._run_once()

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        future = self.create_future()
        try:
            future.set_result(func(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def add_signal_handler(self, sig: int, callback: Callable[..., Any], *args: Any) -> None:
        raise NotImplementedError

    def remove_signal_handler(self, sig: int) -> bool:
        raise NotImplementedError


def _drop(*_: Any) -> Any:
    raise structlog.DropEvent


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """The run's own log events are not the history: keep them off the terminal."""
    old = structlog.get_config()
    structlog.configure(processors=[_drop])
    try:
        yield
    finally:
        structlog.configure(**old)


@dataclass
class History:
    seed: int
    log: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    runs: int = 0
    requests: int = 0

    def text(self) -> str:
        return "\n".join(self.log + [f"VIOLATION {v}" for v in self.violations])


def replay_command(seed: int) -> str:
    return f"python -m tests.sim --seed {seed}"


def run_history(seed: int, *, keep: Path | None = None) -> History:
    """Play the night of `seed`; its files go to `keep` when given (else removed)."""
    plan = make_plan(seed)
    folder = Path(tempfile.mkdtemp(prefix=f"sim-{seed}-", dir=SCRATCH)) if keep is None else keep
    kept, reads, spacing, least = (
        screened.READ_ONCE_ROWS,
        source.CHUNK,
        survey.SPACING,
        survey.MIN_BYTES,
    )
    screened.READ_ONCE_ROWS = 0 if plan.reread else kept
    # Small reads give a small file many checkpoints (one per chunk: no spacing), so
    # reruns start past finished rows (`run.skip`) at many places. Drawn apart from the
    # plan, so that each seed's night stays the one it was.
    source.CHUNK = random.Random(f"reads/{seed}").choice((reads, 512, 97))
    survey.SPACING = survey.MIN_BYTES = 0
    try:
        with quiet_logs():
            return _night(plan, folder)
    finally:
        screened.READ_ONCE_ROWS, source.CHUNK = kept, reads
        survey.SPACING, survey.MIN_BYTES = spacing, least
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def _settings(plan: Plan, folder: Path) -> Settings:
    return Settings(
        mode=Mode.RUN,
        input=str(folder / "in.csv"),
        report=folder / "report.csv",
        credentials=Credentials(CLIENT_ID, CLIENT_SECRET),
        api_url=API_URL,
        auth_url=AUTH_URL,
        timeout=5.0,
        card=False,
        stop_on_rejections=0,
        use_uvloop=False,
        **plan.settings,
    )


def _night(plan: Plan, folder: Path) -> History:
    history = History(plan.seed, plan.describe())
    log = history.log
    rng = random.Random(f"world/{plan.seed}")
    (folder / "in.csv").write_text(
        "payment_reference,merchant_number\n" + "".join(f"{r},{m}\n" for r, m in plan.rows)
    )
    settings = _settings(plan, folder)
    disk = Disk()
    world = World(rng, plan.payments, Timeline(0, log), token_life=plan.token_life)
    world.forbidden = plan.forbidden
    results: list[tuple[int, RunResult]] = []
    max_runs = len(plan.runs) + 2
    complete = False
    for run in range(max_runs):
        rp = plan.runs[run] if run < len(plan.runs) else CLEAN
        tl = Timeline(run + 1, log, rp.crash, rp.signal_at, rp.full_at)
        disk.timeline = tl
        disk.settle(folder)
        world.new_run(tl, rp.faults, invariants.final_keys(settings.report))
        random.seed(f"{plan.seed}/{run}")  # tenacity's full jitter draws from `random`
        try:
            prepared = prepare(settings, f"run{run + 1}")
        except UsageError as exc:
            history.violations.append(f"prepare: run {run + 1} refused to start: {exc}")
            break
        result = _run(prepared, world, disk, prepared.run_id)
        history.runs += 1
        if result is None:
            if rp.crash is not None and rp.crash.power_cut:
                lost = disk.power_cut(folder, rng, rp.crash.tear)
                tl.note(f"power cut lost: {', '.join(lost) or 'nothing'}")
            continue
        # An abort the world caused (a refused client, a full disk): 3. One caused after
        # the SIGTERM may go unnoticed by a run that stops anyway: 3 or 143.
        causes = [c for c in (world.refused_step, tl.disk_full_step) if c is not None]
        signal_step = rp.signal_at if tl.signalled and rp.signal_at else None
        abort = any(signal_step is None or c < signal_step for c in causes)
        late_abort = bool(causes) and not abort
        tl.note(
            f"ended: exit {result.exit_code}, complete {result.complete}, "
            f"{tl.step} steps, reason {result.abort_reason}"
        )
        history.violations += invariants.exit_code(
            run + 1,
            result.exit_code,
            settings.report,
            abort=abort,
            signalled=tl.signalled,
            late_abort=late_abort,
        )
        results.append((run + 1, result))
        if run >= len(plan.runs) - 1 and result.complete and result.exit_code in (0, 1):
            complete = True
            break
    history.requests = world.requests
    if not complete:
        history.violations.append(f"incomplete: the night did not complete in {max_runs} runs")
    elif results:
        history.violations += invariants.night(
            plan.rows, world, settings.report, folder, results[-1][1], [CLIENT_SECRET]
        )
    log.append(f"  night: {history.runs} runs, {world.requests} requests")
    return history


async def _tear_down() -> None:
    """Whatever still waits (on a frozen world) ends with the process."""
    pending = asyncio.all_tasks() - {asyncio.current_task()}
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _run(prepared: Prepared, world: World, disk: Disk, run_id: str) -> RunResult | None:
    """One process's life: None when it crashed."""
    loop = SimLoop(noop_cycles=0)
    tl = disk.tl

    def unhandled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not tl.frozen:  # after a crash, the dead process's tasks do not count
            tl.note(f"unhandled in the event loop: {context.get('message')}")
            world.violations.append(f"loop-error: run {tl.run}: {context.get('message')}")

    loop.set_exception_handler(unhandled)

    async def drive() -> RunResult | None:
        task = asyncio.ensure_future(start_run(prepared, world, disk, run_id))
        tl.on_crash = task.cancel
        try:
            return await task
        except (asyncio.CancelledError, Exception):
            if tl.frozen:  # whatever the dead process was doing is moot
                return None
            raise

    try:
        return loop.run_until_complete(drive())
    except RuntimeError:
        if not loop.livelock:
            raise
        tl.note(f"livelock: {SimLoop.MAX_TURNS:,} loop turns at {loop.time():.3f} s")
        world.violations.append(f"livelock: run {tl.run} spun without its clock moving")
        tl.frozen = True  # taken as a crash: the night goes on from what the disk kept
        return None
    finally:
        loop.run_until_complete(_tear_down())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        prepared.source.close()
        prepared.store.close()
        if tl.frozen:  # the process died: the kernel drops its locks, the lock file stays
            lock: Any = prepared.lock
            for name in ("_file_fd", "_fd"):
                if (fd := getattr(lock, name)) is not None:
                    os.close(fd)
                    setattr(lock, name, None)
        else:
            prepared.lock.release()
