"""Fakes shared by the unit tests: a clock that moves only when code waits on it."""

from __future__ import annotations

import asyncio
import random

import pytest


class FakeTime:
    """A clock that moves only when a test or a patched `asyncio.sleep` moves it.

    `oversleep` adds up to that many seconds to every wait, at seeded random, as a
    busy event loop wakes late; `sleeps` records every wait asked for.
    """

    def __init__(self, now: float = 0.0, oversleep: float = 0.0, seed: int = 7) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.oversleep = oversleep
        self.rng = random.Random(seed)

    def __call__(self) -> float:
        return self.now


def run_on(monkeypatch: pytest.MonkeyPatch, fake: FakeTime) -> None:
    """Make `asyncio.sleep` move `fake` instead of waiting (other tasks still run)."""
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        fake.sleeps.append(delay)
        # Never shorter than asked: the code under test relies on no more than that.
        fake.now += max(delay, 0.0) + fake.oversleep * fake.rng.random()
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
