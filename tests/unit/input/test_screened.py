"""Screened: which files the pre-pass keeps screened for the run, and what it keeps."""

from __future__ import annotations

from pathlib import Path

from worker.input.admission import screen_batch
from worker.input.screened import READ_ONCE_ROWS, Keeper
from worker.input.source import open_input
from worker.settings import Shard


def _keep(path: Path, keeper: Keeper) -> Keeper:
    source = open_input(str(path))
    for batch in source.batches():
        keeper.keep(screen_batch(batch, None, Shard()), source.bytes_fed, source.lines_seen)
    source.close()
    return keeper


def _file(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "in.csv"
    body = "".join(f"r{i},T1\n" for i in range(rows))
    path.write_text("payment_reference,merchant_number\n" + body + "\n,\n")
    return path


def test_a_small_file_is_kept_whole_with_where_each_chunk_ends(tmp_path: Path) -> None:
    path = _file(tmp_path, 20_000)  # several 64 KiB chunks
    source = open_input(str(path))
    keeper = Keeper(source.estimated_lines())
    for batch in source.batches():
        keeper.keep(screen_batch(batch, None, Shard()), source.bytes_fed, source.lines_seen)
    kept = keeper.screened(source)
    assert kept is not None
    rows = [item for items, _ in kept.batches for item in items]
    assert [r.reference for r in rows if r is not None] == [f"r{i}" for i in range(20_000)]
    assert kept.ends == sorted(kept.ends) and kept.ends[-1] == path.stat().st_size
    assert len(kept.batches) > 3
    assert (kept.rows_seen, kept.lines_seen, kept.blank_rows) == (20_000, 20_003, 2)
    assert kept.lines_accounted == kept.lines_seen


def test_a_file_whose_size_says_it_is_big_is_not_kept(tmp_path: Path) -> None:
    path = _file(tmp_path, 10)
    source = open_input(str(path))
    assert _keep(path, Keeper(READ_ONCE_ROWS + 1)).screened(source) is None


def test_a_file_bigger_than_its_estimate_is_dropped_at_the_bound(tmp_path: Path) -> None:
    path = _file(tmp_path, 5_000)
    source = open_input(str(path))
    assert _keep(path, Keeper(10, limit=4_999)).screened(source) is None
    kept = _keep(path, Keeper(10, limit=5_002)).screened(source)
    assert kept is not None and sum(len(items) for items, _ in kept.batches) == 5_000
