"""The job's event loop and the collector set for it (worker/run/eventloop.py)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
import uvloop

from worker.run import eventloop


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector as it was, after the test."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tune_collector_freezes_what_is_alive_and_collects_the_young_less_often(
    collector: None,
) -> None:
    gc.unfreeze()
    _, middle, old = gc.get_threshold()
    eventloop.tune_collector()
    assert gc.get_threshold() == (eventloop.YOUNG_COLLECTION, middle, old)
    assert gc.get_freeze_count() > 0
    assert eventloop.YOUNG_COLLECTION > 700  # CPython's default: what this is about


@pytest.mark.parametrize("use_uvloop", [True, False])
def test_run_loop_returns_the_jobs_exit_code_on_the_loop_asked_for(
    collector: None, use_uvloop: bool
) -> None:
    loops: list[type[asyncio.AbstractEventLoop]] = []

    async def job() -> int:
        loops.append(type(asyncio.get_running_loop()))
        return 5

    assert eventloop.run_loop(job, use_uvloop) == 5
    assert (loops[0] is uvloop.Loop) is use_uvloop
