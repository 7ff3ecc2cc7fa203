"""The on-disk index: exact maps that spill to SQLite past the budget, batched lookups."""

from __future__ import annotations

import random
import stat
from pathlib import Path

import pytest

from worker.errors import StorageError
from worker.input.dedup import ExactDeduper
from worker.keys import key_of
from worker.report.index import ENTRY_BYTES, KeyMap, SpillStore, index_path


def test_a_map_stays_in_memory_within_the_budget(tmp_path: Path) -> None:
    store = SpillStore(tmp_path / "r.csv", budget=100 * ENTRY_BYTES)
    seen = KeyMap(store)
    for n in range(100):
        seen.set(key_of("T1", f"r{n}"), n)
    assert not store.spilled and not index_path(tmp_path / "r.csv").exists()
    assert seen.get(key_of("T1", "r42")) == 42


def test_past_the_budget_it_spills_and_stays_exact(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    store = SpillStore(report, budget=50 * ENTRY_BYTES)
    done = KeyMap(store)
    rng = random.Random(7)
    truth: dict[bytes, int] = {}
    for n in range(20_000):
        key = key_of("T1", f"r{rng.randrange(5_000)}")
        if rng.random() < 0.1:
            done.delete(key)
            truth.pop(key, None)
        else:
            done.set(key, n)
            truth[key] = n
    assert done.spilled and store.spilled
    mode = stat.S_IMODE(index_path(report).stat().st_mode)
    assert mode & 0o137 == 0  # 0640 at most: it names payments
    keys = [key_of("T1", f"r{n}") for n in range(5_000)]
    done.prefetch(keys[:2_500])
    assert all(done.get(k) == truth.get(k) for k in keys)  # prefetched and not alike
    store.close()
    assert not index_path(report).exists()


def test_a_stale_index_is_removed_not_used(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    index_path(report).write_bytes(b"left by a killed run")
    store = SpillStore(report, budget=0)
    store.remove_stale()
    assert not index_path(report).exists()
    seen = KeyMap(store)
    seen.set(b"k" * 16, 1)  # budget 0: straight to disk, in a new file
    assert store.spilled and seen.get(b"k" * 16) == 1 and seen.get(b"x" * 16) is None
    store.close()


def test_a_spilled_stream_deduper_finds_every_repeat_across_chunks(tmp_path: Path) -> None:
    """Exact duplicate detection on a stream past the budget, chunk by chunk as the run
    asks (prefetch, then offer in order), against a plain dict."""
    store = SpillStore(tmp_path / "r.csv", budget=200 * ENTRY_BYTES)
    spilled = ExactDeduper(KeyMap(store))
    plain = ExactDeduper()
    rng = random.Random(11)
    keys = [key_of("T1", f"r{rng.randrange(3_000)}") for _ in range(12_000)]
    found_spilled, found_plain = [], []
    for start in range(0, len(keys), 700):  # chunks, with repeats inside a chunk too
        chunk = keys[start : start + 700]
        spilled.prefetch(chunk)
        for line, key in enumerate(chunk, start=start + 2):
            found_spilled.append(spilled.earlier(key, line))
            found_plain.append(plain.earlier(key, line))
    assert store.spilled
    assert found_spilled == found_plain and sum(f is not None for f in found_plain) > 8_000
    store.close()


@pytest.mark.parametrize("budget", [0, 10**9])
def test_flushes_inside_a_chunk_keep_answers_true(tmp_path: Path, budget: int) -> None:
    store = SpillStore(tmp_path / "r.csv", budget=budget)
    seen = ExactDeduper(KeyMap(store))
    keys = [key_of("T1", f"r{n}") for n in range(20_000)]  # past one write buffer
    seen.prefetch(keys)
    assert all(seen.earlier(k, n) is None for n, k in enumerate(keys))
    seen.prefetch(keys)
    assert [seen.earlier(k, 0) for k in keys] == list(range(20_000))
    store.close()


def test_a_full_index_is_a_storage_error_naming_its_file(tmp_path: Path) -> None:
    """A full disk under the index (here SQLite's own page limit, which answers as a full
    disk does) stops the run as a full report does, naming the file: it was reported as
    "a bug stopped reading the input: OperationalError(...)"."""
    report = tmp_path / "r.csv"
    store = SpillStore(report, budget=0)
    seen = KeyMap(store)
    seen.set(key_of("T1", "r0"), 0)  # spills at once: the budget is 0
    db, _ = store.table()
    db.execute("PRAGMA max_page_count=" + str(db.execute("PRAGMA page_count").fetchone()[0]))
    with pytest.raises(StorageError) as caught:
        for n in range(1, 50_000):
            seen.set(key_of("T1", f"r{n}"), n)
        seen.flush()
    assert str(index_path(report)) in str(caught.value)
    assert "database or disk is full" in str(caught.value)
    store.close()
    assert not index_path(report).exists()
