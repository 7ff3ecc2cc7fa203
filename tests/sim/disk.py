"""Disk: real files in a temporary folder, with the durability of a real disk faked.

The report writer and the intent journal are the real classes, wrapped: each write
and each fsync is a step of the run (`steps.Timeline`), and the sim remembers how
many bytes of each file were fsynced. After a crash nothing more is written. A power
cut then cuts every file back to what was fsynced, and may keep a random part of the
rest (a torn last write). Between two runs the kernel is taken to have flushed
everything: only a crash during a run loses bytes. No real fsync is made (the files
live in memory-backed temporary storage), so thousands of runs stay cheap.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.sim.steps import Timeline
from worker.errors import StorageError
from worker.model import Result
from worker.report.journal import IntentJournal
from worker.report.writer import ReportWriter


class Disk:
    """What was fsynced, per file, across the runs of one night."""

    def __init__(self) -> None:
        self.synced: dict[Path, int] = {}
        self.timeline: Timeline | None = None

    @property
    def tl(self) -> Timeline:
        assert self.timeline is not None
        return self.timeline

    def settle(self, folder: Path) -> None:
        """Between runs: whatever is in the files is on stable storage."""
        self.synced = {p: p.stat().st_size for p in folder.iterdir() if p.is_file()}

    def synced_to(self, path: Path, fd: int) -> None:
        self.synced[path] = os.fstat(fd).st_size

    def power_cut(self, folder: Path, rng: random.Random, tear: bool) -> list[str]:
        """Cut every file back to its fsynced bytes (a torn write keeps some more)."""
        lost = []
        for path in sorted(folder.iterdir()):
            # The lock file holds the process id (its size varies by run, which would
            # change the seeded draws below), and only its lock matters, gone with the process.
            if not path.is_file() or path.suffix == ".lock":
                continue
            size, keep = path.stat().st_size, self.synced.get(path, 0)
            if size <= keep:
                continue
            if tear:
                keep += rng.randrange(size - keep)
            with open(path, "rb+") as f:
                f.truncate(keep)
            lost.append(f"{path.name} -{size - keep} B")
        return lost


def _refs(results: Iterable[Result]) -> str:
    refs = [r.reference or f"line {r.line}" for r in results]
    return ",".join(refs[:4]) + (f",+{len(refs) - 4}" if len(refs) > 4 else "")


class SimReportWriter(ReportWriter):
    """The real writer; each `write` and `sync` is a step, and a full disk fails it."""

    def __init__(self, disk: Disk, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._disk = disk

    def write(self, results: Iterable[Result]) -> None:
        results = list(results)
        tl = self._disk.tl
        if tl.frozen:
            return
        if tl.event(f"report row {_refs(results)}") and not tl.lands():
            return
        if tl.disk_full():
            raise StorageError(f"{self.path}: No space left on device")
        super().write(results)

    def sync(self) -> None:
        tl = self._disk.tl
        if self._fd is None or tl.frozen:
            return
        if tl.event("report fsync") and not tl.lands():
            return
        self._disk.synced_to(self.path, self._fd)
        self._last_sync = self._clock()

    def close(self) -> None:
        if self._disk.tl.frozen and self._fd is not None:
            os.close(self._fd)  # the process died: its descriptors close, nothing is synced
            self._fd = None
            return
        super().close()


class SimJournal(IntentJournal):
    """The real journal; each `append` and fsync is a step, and a full disk fails it."""

    def __init__(self, disk: Disk, path: Path) -> None:
        super().__init__(path, durable=self._durable_step)
        self._disk = disk

    def append(self, pairs: Iterable[tuple[str, str]], *, answered: bool = False) -> None:
        pairs = list(pairs)
        tl = self._disk.tl
        if tl.frozen:
            return
        refs = ",".join(r for _, r in pairs[:4]) + (f",+{len(pairs) - 4}" if len(pairs) > 4 else "")
        if tl.event(f"{'answered' if answered else 'intent'} {refs}") and not tl.lands():
            return
        if tl.disk_full():
            raise StorageError(f"{self.path}: No space left on device")
        super().append(pairs, answered=answered)

    def _durable_step(self, fd: int, path: Path) -> None:
        tl = self._disk.tl
        if tl.frozen:
            return
        if tl.event("intent fsync") and not tl.lands():
            return
        self._disk.synced_to(path, fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                if not self._disk.tl.frozen:
                    self._disk.synced_to(self.path, self._fd)
                os.close(self._fd)
                self._fd = None

    def discard(self) -> None:
        if self._disk.tl.frozen:
            self.close()
            return
        super().discard()
