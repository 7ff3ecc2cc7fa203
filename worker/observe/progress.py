"""Progress: how far the run is, as a log event in a container or a live bar on a terminal.

`snapshot` is the one computation (done, total, outcome counts, rate, ETA); `LogProgress`
emits it as a `progress` event every `--progress-seconds`; `BarProgress` draws it with
rich on standard error when that is a terminal and the logs are not JSON.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from worker.observe import logs


@dataclass(frozen=True)
class Snapshot:
    done: int
    total: int | None
    outcomes: Mapping[str, int]
    requests: int
    elapsed: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        per_row = self.done / self.elapsed if self.elapsed > 0 else 0.0
        if not self.total or per_row <= 0:
            return None
        return max(self.total - self.done, 0) / per_row

    def counts_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items())) or "-"


class View(Protocol):
    def update(self, snap: Snapshot) -> None: ...

    def close(self) -> None: ...


class LogProgress:
    def update(self, snap: Snapshot) -> None:
        eta = snap.eta_seconds
        logs.log.info(
            "progress",
            done=snap.done,
            total=snap.total,
            outcomes=dict(snap.outcomes),
            requests=snap.requests,
            requests_per_second=round(snap.requests_per_second, 1),
            eta_seconds=round(eta) if eta is not None else None,
        )

    def close(self) -> None:
        pass


class BarProgress:
    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]cancel-worker"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.fields[total_text]}"),
            TextColumn("{task.fields[rate]:.0f} req/s"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[counts]}"),
            console=console or Console(file=sys.stderr),
            transient=False,
        )
        self._task = self._progress.add_task(
            "run", total=None, total_text="?", rate=0.0, counts="-"
        )
        self._progress.start()

    def update(self, snap: Snapshot) -> None:
        fields: dict[str, Any] = {
            "total_text": f"{snap.total:,}" if snap.total else "?",
            "rate": snap.requests_per_second,
            "counts": snap.counts_text(),
        }
        self._progress.update(self._task, completed=snap.done, total=snap.total, **fields)

    def close(self) -> None:
        self._progress.stop()


def choose(log_format: str | None) -> View:
    """A bar on an interactive terminal with console logs; log events otherwise."""
    if log_format != "json" and sys.stderr.isatty():
        return BarProgress()
    return LogProgress()
