"""Steps: the numbered steps of one simulated run, and the crash or signal that hits one.

Every write, fsync, request and answer of a run is one step. A seed picks the step a
crash hits (and whether it lands just before or just after it) and the step a SIGTERM
comes at; from the crash on the world is frozen: no write reaches the disk and no
request reaches the fake API. `log` is the history a person reads when a seed fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn


@dataclass(frozen=True)
class Crash:
    """Where one run ends without warning."""

    step: int
    after: bool  # the step's effect lands (the write is made, the request arrives)
    power_cut: bool  # also lose what was not fsynced
    tear: bool  # a power cut keeps part of the unsynced bytes (a torn last write)

    def __str__(self) -> str:
        kind = "power cut" if self.power_cut else "kill"
        where = "after" if self.after else "before"
        torn = " (torn)" if self.tear and self.power_cut else ""
        return f"{kind}{torn} {where} step {self.step}"


@dataclass
class Timeline:
    """The steps of one run; `event` counts one and says whether the crash hit it."""

    run: int
    log: list[str]
    crash: Crash | None = None
    signal_at: int | None = None
    full_at: int | None = None  # from this step on, writes fail with ENOSPC
    step: int = 0
    frozen: bool = False
    on_crash: Callable[[], None] = lambda: None  # the driver: cancels the run
    on_signal: Callable[[], None] | None = None  # start_run: SIGTERM to the job
    signalled: bool = False
    disk_full_hit: bool = False
    disk_full_step: int | None = None  # the step whose write first failed
    events: list[str] = field(default_factory=list)

    def event(self, what: str) -> bool:
        """Count one step; True when the crash hits it (the world is frozen from then on)."""
        if self.frozen:
            return True
        self.step += 1
        if self.signal_at == self.step and self.on_signal is not None and not self.signalled:
            self.signalled = True
            self.note(f"SIGTERM at step {self.step} ({what})")
            self.on_signal()
        if self.crash is not None and self.crash.step == self.step:
            self.frozen = True
            self.note(f"{self.crash} ({what})")
            self.on_crash()
            return True
        return False

    def lands(self) -> bool:
        """After a hit: whether the step's effect still lands."""
        return self.crash is not None and self.crash.after

    def disk_full(self) -> bool:
        full = self.full_at is not None and self.step >= self.full_at
        if full and not self.disk_full_hit:
            self.disk_full_hit, self.disk_full_step = True, self.step
            self.note(f"disk full (ENOSPC) from step {self.step}")
        return full

    def note(self, text: str) -> None:
        self.log.append(f"  run {self.run}: {text}")


async def hang() -> NoReturn:
    """What a frozen world answers: nothing, until the run is torn down."""
    await asyncio.get_running_loop().create_future()
    raise AssertionError("unreachable")
