"""Ledger: why a run stopped. The job owns it; every way a run stops goes through `stop`.

A stop is one of three kinds, each with its exit code (`worker/exits.py`):

- ``abort`` (3): the run cannot go on (refused credentials, an API outage past
  `--give-up-after`, a report or journal that cannot be written, a storage error at
  the end);
- ``guard`` (4): a guard rail (`--stop-on-rejections`, `--max-references`);
- ``signal`` (130 / 143): SIGINT or SIGTERM.

Every stop but `--max-references` on a stream closes the `StopGate` (no new request
is written) and wakes the job, which then shuts the workers down. The first stop of
each kind is kept with its reason; when several happen, the exit code takes the
gravest (abort, then guard rail, then signal).

Usage::

    ledger = Ledger(gate)
    ledger.stop(Stop.abort("the report could not be written: ...", graceful=True))
    await ledger.stopping.wait()        # the job's side
"""

from __future__ import annotations

import asyncio
import signal as signals
from dataclasses import dataclass
from typing import Literal

from worker.control.stop import StopGate
from worker.exits import Exit
from worker.observe import logs

Kind = Literal["abort", "guard", "signal"]


@dataclass(frozen=True, slots=True)
class Stop:
    """One reason to stop. `graceful`: requests on the wire may finish (their cancels
    may land, so their answers are worth having); else they are cancelled at once.
    `closes_gate`: False only for `--max-references` on a stream, where what was read
    is still sent and only the reading stops."""

    kind: Kind
    reason: str
    code: int
    fix: str | None = None  # what a person must change before a rerun can help
    graceful: bool = True
    closes_gate: bool = True

    @classmethod
    def abort(cls, reason: str, *, fix: str | None = None, graceful: bool = False) -> Stop:
        return cls("abort", reason, int(Exit.ABORTED), fix, graceful)

    @classmethod
    def guard(cls, reason: str, *, closes_gate: bool = True) -> Stop:
        return cls("guard", reason, int(Exit.GUARD_RAIL), closes_gate=closes_gate)

    @classmethod
    def signal(cls, signum: int) -> Stop:
        name = signals.Signals(signum).name
        code = Exit.SIGINT if signum == signals.SIGINT else Exit.SIGTERM
        return cls("signal", name, int(code))


class Ledger:
    """The stops of one run, in the order they came; single-threaded (asyncio)."""

    def __init__(self, gate: StopGate | None = None) -> None:
        self.gate = gate or StopGate()
        self.abort: Stop | None = None
        self.guard: Stop | None = None
        self.signal: Stop | None = None
        self.signals = 0  # how many signals came: a second one ends the process
        self.stopping = asyncio.Event()  # set by any stop that closes the gate
        self.not_sent = 0  # references a stop caught before their first request

    @property
    def stopped(self) -> bool:
        return self.stopping.is_set()

    @property
    def graceful(self) -> bool:
        """Requests on the wire may finish: no abort, or only graceful ones."""
        return self.abort is None or self.abort.graceful

    def stop(self, stop: Stop) -> None:
        """Record `stop` (the first of each kind is kept) and, unless it is the
        `--max-references` cap of a stream, close the gate and wake the job."""
        if stop.closes_gate:
            self.gate.stop()  # first: the counts below are taken at the stop
        first = getattr(self, stop.kind) is None
        if first:
            setattr(self, stop.kind, stop)
        if stop.kind == "signal":
            self.signals += 1
        self._log(stop, first)
        if stop.closes_gate:
            self.stopping.set()

    def _log(self, stop: Stop, first: bool) -> None:
        """A signal is told by the job (it knows the grace period); an abort or a guard
        rail here, once: a guard rail after an abort adds nothing a reader needs."""
        if stop.kind == "signal" or not first:
            return
        if stop.kind == "guard" and self.abort is not None:
            return
        event = "aborted" if stop.kind == "abort" else "guard_rail"
        fields = {"in_flight": self.gate.in_flight_at_stop} if stop.closes_gate else {}
        logs.log.error(event, reason=stop.reason, **fields)
