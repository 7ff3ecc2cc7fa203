"""OutageGate: when a failure counts against a reference, when all are held, when to give up."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from worker.control.outage import OutageGate
from worker.errors import ApiUnreachable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_streak_below_the_threshold_counts_then_opens() -> None:
    health = OutageGate(threshold=5, give_up_after=300, clock=Clock())
    refs = [1, 2, 3, 1, 2]
    assert [health.record_trouble(r) for r in refs] == [True, True, True, True, False]
    assert health.is_open
    assert health.record_trouble(3) is False  # while open nothing counts
    health.record_ok()
    assert not health.is_open and health.record_trouble(1) is True


def test_two_references_failing_alone_are_not_an_outage() -> None:
    health = OutageGate(threshold=5, give_up_after=300, clock=Clock())
    # the end of a file: only two references left, both broken, nothing succeeds
    assert all(health.record_trouble(r) for r in [7, 8] * 10)
    assert not health.is_open


def test_interleaved_successes_keep_counting_a_single_bad_reference() -> None:
    health = OutageGate(threshold=5, give_up_after=300, clock=Clock())
    for _ in range(20):
        assert health.record_trouble() is True
        health.record_ok()
    assert not health.is_open


def test_empty_retry_budget_opens_the_gate() -> None:
    health = OutageGate(threshold=1000, give_up_after=300, budget=20, clock=Clock())
    counted = [health.record_trouble() for _ in range(4)]
    assert counted == [True, True, True, True]  # 4 retries x 5 tokens
    assert health.record_trouble() is False and health.is_open  # nothing left to pay with
    health.record_ok()
    assert not health.is_open


def test_timeouts_cost_more() -> None:
    health = OutageGate(threshold=1000, give_up_after=300, budget=20, clock=Clock())
    assert health.record_trouble(timeout=True) is True
    assert health.record_trouble(timeout=True) is True
    assert health.record_trouble(timeout=True) is False


async def test_open_gate_lets_one_probe_through_and_wakes_all_on_recovery() -> None:
    health = OutageGate(threshold=2, give_up_after=300)
    for ref in (1, 2, 3):
        health.record_trouble(ref)
    assert health.is_open
    admitted: list[int] = []

    async def worker(i: int) -> None:
        await health.admit()
        admitted.append(i)

    tasks = [asyncio.create_task(worker(i)) for i in range(6)]
    await asyncio.wait(tasks, timeout=1.5, return_when=asyncio.FIRST_COMPLETED)
    assert len(admitted) == 1  # the first probe, after the first probe interval
    health.record_ok()  # the probe came back good
    await asyncio.gather(*tasks)
    assert sorted(admitted) == list(range(6))


async def test_gives_up_after_the_deadline_with_no_success() -> None:
    clock = Clock()
    health = OutageGate(threshold=2, give_up_after=10, clock=clock)
    for ref in (1, 2, 3):
        health.record_trouble(ref)
    clock.now = 11.0
    with pytest.raises(ApiUnreachable, match="give-up-after"):
        await health.admit()


async def test_probes_go_to_the_waiting_workers_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:  # time passes only when someone waits
        clock.now += delay
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    health = OutageGate(threshold=2, give_up_after=300, clock=clock)
    health.declare_outage()
    probes: list[str] = []

    async def worker(name: str) -> None:
        for _ in range(2):  # probe, fail, queue again at the back
            await health.admit()
            probes.append(name)
            health.record_trouble(0, what="HTTP 503")

    await asyncio.gather(worker("broken"), worker("fresh-1"), worker("fresh-2"))
    # a reference that keeps failing does not keep the probe to itself
    assert probes == ["broken", "fresh-1", "fresh-2"] * 2
    assert health.holding() is not None and "HTTP 503" in health.holding()[0]  # type: ignore[index]


def test_the_abort_reason_names_what_the_api_did() -> None:
    clock = Clock()
    health = OutageGate(threshold=2, give_up_after=10, clock=clock)
    health.record_trouble(1, what="HTTP 503")
    clock.now = 11
    with pytest.raises(ApiUnreachable, match=r"last: HTTP 503"):
        health.check_give_up()


def test_recovery_ends_the_hold_and_counts_its_time() -> None:
    clock = Clock()
    health = OutageGate(threshold=2, give_up_after=300, clock=clock)
    health.declare_outage()
    clock.now = 12.5
    health.record_ok()
    assert health.holding() is None and health.held_seconds == 12.5


def test_token_trouble_holds_at_once_says_so_once_and_its_end_too() -> None:
    clock = Clock()
    health = OutageGate(threshold=5, give_up_after=300, clock=clock)
    url = "https://auth.example/connect/token"
    with capture_logs() as logged:
        health.token_failing(url, "connection refused")
        clock.now = 2.0
        health.token_failing(url, "HTTP 500")  # still the same hold: no second warning
        assert health.holding() == ("token endpoint failing (HTTP 500)", 2.0)
        assert health.held_total == 2.0
        clock.now = 7.0
        health.token_answered()
        health.token_answered()  # nothing was held any more: nothing to say
    assert health.holding() is None and health.held_total == 7.0
    assert health.last_ok == 7.0  # the give-up clock starts afresh
    events = [(e["event"], e.get("reason")) for e in logged]
    assert events == [
        ("holding", f"the token endpoint {url} is failing (connection refused)"),
        ("recovered", None),
    ]
    assert logged[1]["held_seconds"] == 7.0


@pytest.mark.looptime
async def test_probes_wait_for_the_retry_after_the_failing_api_asked_for() -> None:
    """A 503 with `Retry-After: 4` during an outage: probes came 0.5 s, 1 s, 2 s apart
    (the API in maintenance asked for 4 s between tries)."""
    loop = asyncio.get_running_loop()
    gate = OutageGate(threshold=2, give_up_after=60.0, clock=loop.time)
    for ref in range(3):
        gate.record_trouble(ref, what="HTTP 503", retry_after=4.0)
    assert gate.is_open
    start = loop.time()
    await gate.admit()  # the first probe: not before the Retry-After
    first = loop.time() - start
    gate.record_trouble(0, what="HTTP 503", retry_after=4.0)  # the probe's answer
    await gate.admit()
    second = loop.time() - start
    assert first >= 4.0 and second - first >= 4.0


@pytest.mark.looptime
async def test_a_retry_after_outside_an_outage_does_not_delay_a_later_outages_probes() -> None:
    """One reference's 429 with Retry-After: 60 is its own wait; it delayed the first
    probe of a later outage by a minute (past a shorter --give-up-after)."""
    loop = asyncio.get_running_loop()
    gate = OutageGate(threshold=3, give_up_after=30.0, clock=loop.time)
    gate.record_trouble(9, what="HTTP 429", retry_after=60.0)  # counted: the gate stays closed
    assert not gate.is_open
    gate.record_ok()
    for ref in range(3):
        gate.record_trouble(ref, what="HTTP 503")
    assert gate.is_open
    start = loop.time()
    await gate.admit()
    assert loop.time() - start <= 0.5 + 0.01
