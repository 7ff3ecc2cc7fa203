"""The intent journal: which cancels may have gone out, for a rerun after a kill.

Just before a reference's first cancel is sent, it is appended here: the writer
(`run/writer.py`) writes the intents of one batch with one `append`, then
has them synced (`sync`, `fdatasync`), and their cancels wait for both. A rerun
queries every journaled reference that has no final row before cancelling it, so a
cancel that landed just before a kill or a power cut is reported `canceled`, neither
sent again nor mislabelled `already_canceled`. The file's folder entry is synced once,
when the file is created. One sync per batch, not per cancel, keeps the cost down
(`benchmarks/journal_fsync.py` measures it).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import orjson

from worker.errors import StorageError
from worker.keys import key_of
from worker.report.storage import (
    FILE_MODE,
    append_whole,
    cut_torn_line,
    sync,
    sync_data,
    sync_folder,
)

#: Makes a descriptor's appended bytes durable; a test passes one that records calls.
Syncer = Callable[[int, Path], None]


#: The key of a record that closes a pair's intents (an older version skips it as
#: unreadable, and queries first: the safe side).
ANSWERED = "answered"


def journal_path(report: Path) -> Path:
    return report.with_name(report.name + ".journal")


class IntentJournal:
    """Append-only list of references whose cancel may be sent.

    The file is created by the first record, so a run that sends nothing leaves none.
    A group that cannot be written whole raises `StorageError` and none of its cancels
    is sent: the journal must never be behind what went out.
    """

    def __init__(self, path: Path, *, durable: Syncer | None = None) -> None:
        self.path = path
        self._durable = durable or sync_data
        self._fd: int | None = None
        self._lock = threading.Lock()  # a sync in a worker thread, and close, take turns

    def record(self, pairs: Iterable[tuple[str, str]]) -> None:
        """`append`, then `sync`: returns once the pairs are on stable storage."""
        self.append(pairs)
        self.sync()

    def append(self, pairs: Iterable[tuple[str, str]], *, answered: bool = False) -> None:
        """Append (merchant, reference) pairs with one write, whole or not at all (not
        yet durable: `sync`). Raises StorageError. `answered`: records that each pair's
        cancels all got clear answers (refused, or never sent) before the run stopped
        or gave up on it, so none landed: a rerun sends it as new, not query-first (a
        payment someone else had canceled was then reported `canceled`, as ours)."""
        data = b"".join(
            orjson.dumps({ANSWERED: pair} if answered else pair) + b"\n" for pair in pairs
        )
        if not data:
            return
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
                # A power cut may have kept part of an intent that was never synced (so
                # never sent): cut it, or this batch's first intent would be glued onto it
                # and unreadable, and a rerun would send that cancel again unqueried.
                cut_torn_line(self._fd)
            except OSError as exc:
                raise StorageError(f"{self.path}: {exc.strerror or exc}") from None
            sync_folder(self.path)  # a new file's name must survive a power cut too
        append_whole(self._fd, data, self.path)

    def sync(self) -> None:
        """Make everything appended so far durable. Safe in a worker thread (the writer
        syncs there, so the event loop goes on while the disk works). Raises StorageError."""
        with self._lock:
            if self._fd is not None:
                self._durable(self._fd, self.path)

    def close(self) -> None:
        with self._lock:  # never under a sync still running in a thread
            if self._fd is not None:
                try:
                    sync(self._fd, self.path)
                finally:
                    os.close(self._fd)
                    self._fd = None

    def discard(self) -> None:
        with contextlib.suppress(StorageError):
            self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    @staticmethod
    def keys(path: Path) -> Iterator[bytes]:
        """Keys whose cancel a killed run may have sent (final or not: admission asks
        the report first, so a final one is never sent again either way), `answered`
        records ignored: a superset (see `entries`)."""
        return (key for key, intent in IntentJournal.entries(path) if intent)

    @staticmethod
    def entries(path: Path) -> Iterator[tuple[bytes, bool]]:
        """In file order: (key, True) for an intent, (key, False) for an `answered`
        record, which closes the intents before it (a later intent opens it again)."""
        if not path.exists():
            return
        with open(path, "rb") as f:
            for raw in f:
                try:
                    doc = orjson.loads(raw)
                    intent = not isinstance(doc, dict)
                    merchant, reference = doc if intent else doc[ANSWERED]
                except (orjson.JSONDecodeError, ValueError, TypeError, KeyError):
                    continue  # a torn last line: that cancel was never sent
                yield key_of(str(merchant), str(reference)), intent
