"""The first bytes that bind an input: a stream's are read once, kept for the run."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from pathlib import Path

import pytest

from worker.input.head import HEAD_BYTES, fresh_head, head_digest
from worker.input.source import Source, open_input


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stdin_pipe(monkeypatch: pytest.MonkeyPatch, data: bytes, *, close: bool) -> int:
    """Standard input as a pipe holding `data`; returns the write end (open unless `close`)."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    if close:
        os.close(write_fd)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(open(read_fd, "rb")))  # noqa: SIM115
    return write_fd


def all_rows(source: Source) -> list[str]:
    return [p.reference for p in source.rows()]


def test_a_stream_records_what_is_waiting_without_waiting_for_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = b"payment_reference\nS1\nS2\n"
    writer = stdin_pipe(monkeypatch, data, close=False)  # the producer goes on thinking
    source = open_input("-")
    assert fresh_head(source) == len(data)  # returned: it did not wait for a batch
    assert head_digest(source, len(data)) == sha(data)
    os.write(writer, b"S3\n")
    os.close(writer)
    assert all_rows(source) == ["S1", "S2", "S3"]  # what the head read is read once, in order


def test_a_stream_waits_for_its_first_row_and_compares_as_many_bytes_as_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = b"payment_reference\n" + b"".join(b"R%06d\n" % i for i in range(20_000))
    stdin_pipe(monkeypatch, data[:65_000], close=False)  # a pipe holds 64 KiB at most
    source = open_input("-")
    assert fresh_head(source) <= HEAD_BYTES
    assert head_digest(source, 40_000) == sha(data[:40_000])
    assert head_digest(source, 65_000) == sha(data[:65_000])


def test_a_shorter_stream_has_no_head_of_the_recorded_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdin_pipe(monkeypatch, b"payment_reference\nS1\n", close=True)
    source = open_input("-")
    assert head_digest(source, 100) is None
    assert all_rows(source) == ["S1"]


def test_a_gzip_stream_is_waited_for_until_its_first_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    packed = gzip.compress(b"payment_reference\nG1\n")
    stdin_pipe(monkeypatch, packed, close=True)
    source = open_input("-")
    assert fresh_head(source) == len(packed)
    assert all_rows(source) == ["G1"]


def test_a_file_records_its_first_64_kib_and_reads_them_without_moving(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    data = b"payment_reference\n" + b"".join(b"F%06d\n" % i for i in range(20_000))
    path.write_bytes(data)
    source = open_input(str(path))
    assert fresh_head(source) == HEAD_BYTES
    assert head_digest(source, HEAD_BYTES) == sha(data[:HEAD_BYTES])
    assert head_digest(source, len(data) + 1) is None
    assert len(all_rows(source)) == 20_000
    source.close()
