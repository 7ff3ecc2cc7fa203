"""The on-disk index: exact key -> value maps that spill to SQLite past a memory budget.

What cannot be a bitmap over line numbers (the keys of a standard-input run, a resume
after a changed input, the journal's intents) must still be exact. Held in a `dict`
such a map costs ~100 bytes a key, ~1 GB at ten million. So each `KeyMap` stays in
memory while the run's maps together fit in the budget, and the one that would pass it
moves to a table of one SQLite file beside the report (`<report>.index.sqlite`), which
the run creates (mode 0640), owns alone (the report's lock is held) and removes at the
end; a stale one left by a killed run is removed before use.

Spilled lookups are batched: `prefetch` answers a whole chunk of keys with a few
queries, and writes are buffered and applied with `executemany`, so the hot path does
not pay a query per reference.

A failure of the file (a full disk, an I/O error) is a `StorageError` naming it, as for
the report: the run stops sending (exit 3), or, before the first request, exit 2.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from worker.errors import StorageError
from worker.report.storage import FILE_MODE

#: What one in-memory entry costs, about: a dict slot, a 16-byte `bytes` key object
#: and an `int` (measured 133 bytes with tracemalloc; a dict grows by steps).
ENTRY_BYTES = 144
#: Buffered writes applied with one `executemany`.
FLUSH_EVERY = 8192
#: Host parameters per `IN (...)` query (SQLite's limit is 32,766 since 3.32).
QUERY_KEYS = 900
#: The share of the budget SQLite's own page cache may take.
CACHE_SHARE = 4

Key = bytes | int


def index_path(report: Path) -> Path:
    return report.with_name(report.name + ".index.sqlite")


@contextlib.contextmanager
def _disk(path: Path) -> Iterator[None]:
    """SQLite's and the OS's errors on the index file, as a StorageError naming it."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StorageError(f"the on-disk index {path} could not be written: {why}") from None


class SpillStore:
    """The run's SQLite file, opened on the first spill; `close` removes it."""

    def __init__(self, report: Path, budget: int) -> None:
        self.path = index_path(report)
        self.budget = budget
        self.in_memory = 0  # entries held in memory by all maps together
        self._db: sqlite3.Connection | None = None
        self._tables = 0

    def remove_stale(self) -> None:
        """A killed run's index is of no use to this one (and never shared)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def over(self, extra: int = 1) -> bool:
        return (self.in_memory + extra) * ENTRY_BYTES > self.budget

    def table(self) -> tuple[sqlite3.Connection, str]:
        """A new table `(k PRIMARY KEY, v INTEGER)`, opening the file if needed."""
        with _disk(self.path):
            return self._table()

    def _table(self) -> tuple[sqlite3.Connection, str]:
        if self._db is None:
            self.remove_stale()
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
            # isolation_level None: no implicit transactions; each flush is its own.
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # A scratch file: a crash loses nothing that the report does not hold, so
            # no rollback journal and no fsync; the page cache stays inside the budget.
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute(f"PRAGMA cache_size=-{max(self.budget // CACHE_SHARE // 1024, 1024)}")
            db.execute("PRAGMA temp_store=FILE")
            self._db = db
        self._tables += 1
        name = f"t{self._tables}"
        self._db.execute(f"CREATE TABLE {name} (k PRIMARY KEY, v INTEGER) WITHOUT ROWID")
        return self._db, name

    @property
    def spilled(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self.remove_stale()


class KeyMap:
    """An exact map of keys (16-byte digests or line numbers) to small ints.

    In memory while the store's budget allows, then in a table of the store. When
    spilled, `get` answers from the write buffer, then from what the last `prefetch`
    fetched, and only then with a query of its own.
    """

    def __init__(self, store: SpillStore) -> None:
        self._store = store
        self._mem: dict[Key, int] = {}
        self._db: sqlite3.Connection | None = None
        self._table = ""
        self._writes: dict[Key, int | None] = {}  # None: delete
        self._cache: dict[Key, int | None] = {}

    @property
    def spilled(self) -> bool:
        return self._db is not None

    def __bool__(self) -> bool:
        return self._db is not None or bool(self._mem)

    def set(self, key: Key, value: int) -> None:
        if self._db is None:
            if key not in self._mem:
                if self._store.over():
                    self._spill()
                    self.set(key, value)
                    return
                self._store.in_memory += 1
            self._mem[key] = value
            return
        self._writes[key] = value
        if len(self._writes) >= FLUSH_EVERY:
            self.flush()

    def delete(self, key: Key) -> None:
        if self._db is None:
            if self._mem.pop(key, None) is not None:
                self._store.in_memory -= 1
            return
        self._writes[key] = None
        if len(self._writes) >= FLUSH_EVERY:
            self.flush()

    def get(self, key: Key) -> int | None:
        if self._db is None:
            return self._mem.get(key)
        if key in self._writes:
            return self._writes[key]
        if key in self._cache:
            return self._cache[key]
        with _disk(self._store.path):
            row = self._db.execute(f"SELECT v FROM {self._table} WHERE k = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def __contains__(self, key: Key) -> bool:
        return self.get(key) is not None

    def prefetch(self, keys: Iterable[Key]) -> None:
        """Fetch the answers for a chunk's keys with a few queries (spilled maps only)."""
        if self._db is None:
            return
        self.flush()
        wanted = sorted(set(keys))  # sorted: neighbouring pages, fewer cache misses
        cache: dict[Key, int | None] = dict.fromkeys(wanted)
        for start in range(0, len(wanted), QUERY_KEYS):
            part = wanted[start : start + QUERY_KEYS]
            marks = ",".join("?" * len(part))
            query = f"SELECT k, v FROM {self._table} WHERE k IN ({marks})"
            with _disk(self._store.path):
                cache.update(self._db.execute(query, part).fetchall())
        self._cache = cache

    def flush(self) -> None:
        if self._db is None or not self._writes:
            return
        writes = sorted(self._writes.items())
        cache = self._cache
        for k, v in writes:  # keep a prefetched answer true; never grow the cache here
            if k in cache:
                cache[k] = v
        put = [(k, v) for k, v in writes if v is not None]
        gone = [(k,) for k, v in writes if v is None]
        db, table = self._db, self._table
        with _disk(self._store.path):
            db.execute("BEGIN")
            if put:
                db.executemany(f"INSERT OR REPLACE INTO {table} (k, v) VALUES (?, ?)", put)
            if gone:
                db.executemany(f"DELETE FROM {table} WHERE k = ?", gone)
            db.execute("COMMIT")
        self._writes.clear()

    def _spill(self) -> None:
        """Move this map to disk: the budget is reached. In slices, so that the move
        itself never holds a second copy of the map."""
        self._db, self._table = self._store.table()
        self._store.in_memory -= len(self._mem)
        mem, self._mem = self._mem, {}
        insert = f"INSERT OR REPLACE INTO {self._table} (k, v) VALUES (?, ?)"
        items = iter(mem.items())
        with _disk(self._store.path):
            self._db.execute("BEGIN")
            while part := list(itertools.islice(items, FLUSH_EVERY)):
                self._db.executemany(insert, part)
            self._db.execute("COMMIT")
