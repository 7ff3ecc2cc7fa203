"""Ledger: every way a run stops, recorded once, with the gate closed behind it."""

from __future__ import annotations

import signal

from worker.control.stop import StopGate
from worker.run.ledger import Ledger, Stop


def test_a_stop_closes_the_gate_and_wakes_the_job() -> None:
    ledger = Ledger(StopGate())
    assert not ledger.stopped and not ledger.gate.stopped
    ledger.stop(Stop.guard("403s"))
    assert ledger.stopped and ledger.gate.stopped and ledger.guard is not None
    assert ledger.guard.code == 4


def test_the_cap_of_a_stream_stops_reading_but_not_sending() -> None:
    ledger = Ledger()
    ledger.stop(Stop.guard("over --max-references", closes_gate=False))
    assert ledger.guard is not None and not ledger.stopped and not ledger.gate.stopped


def test_the_first_stop_of_each_kind_is_kept_and_signals_are_counted() -> None:
    ledger = Ledger()
    ledger.stop(Stop.signal(signal.SIGTERM))
    ledger.stop(Stop.signal(signal.SIGINT))
    ledger.stop(Stop.abort("disk full", graceful=True))
    ledger.stop(Stop.abort("later"))
    assert ledger.signal is not None and ledger.signal.code == 143 and ledger.signals == 2
    assert ledger.abort is not None and ledger.abort.reason == "disk full"
    assert ledger.graceful  # the first abort's say: in-flight requests may finish


def test_an_abort_that_is_not_graceful_cancels_what_is_in_flight() -> None:
    ledger = Ledger()
    ledger.stop(Stop.abort("credentials refused", fix="check the client"))
    assert not ledger.graceful and ledger.abort is not None
    assert ledger.abort.fix == "check the client" and ledger.abort.code == 3
