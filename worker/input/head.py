"""Head: what identifies an input before anything is sent, a file or a stream alike.

A file is hashed whole by the pre-pass. Standard input, a pipe or a FIFO can be read
only once, as it arrives, so all that can be known of it before the first request is
its first bytes: the run record keeps the SHA-256 of the first bytes (`HEAD_BYTES` at
most) and how many there were, and a rerun reads as many of its own input and
compares. The bytes read here stay in `Source.head`, which the run parses first, so
nothing is read twice or lost. A file records its first bytes too, so that a stream
and a file with the same bytes can be told apart from different ones either way.
"""

from __future__ import annotations

import hashlib
import os
import select

from worker.errors import InputError
from worker.input.lines import GZIP_MAGIC, Gunzip
from worker.input.source import Source

HEAD_BYTES = 64 * 1024
#: A fresh stream is bound by its header and first row at least: two nights' exports
#: share a header, hardly ever a first row. A producer that writes its header and then
#: thinks is waited for until that row, not for a whole batch.
HEAD_LINES = 2


def head_digest(source: Source, size: int) -> str | None:
    """SHA-256 of the input's first `size` bytes as stored; None when it holds fewer.

    On a stream this waits for those bytes (the run would read them first anyway).
    """
    if source.rereadable:
        data = os.pread(source.fd, size, 0)
    else:
        while len(source.head) < size and _read_some(source, size - len(source.head)):
            pass
        data = source.head
    if len(data) < size:
        return None
    return hashlib.sha256(data[:size]).hexdigest()


def fresh_head(source: Source) -> int:
    """How many first bytes this run records: a file's first `HEAD_BYTES` (or all of
    it); a stream's first `HEAD_LINES` lines at least (or all of it, if shorter), and
    whatever more the producer has already written, up to `HEAD_BYTES`."""
    if source.rereadable:
        return min(os.fstat(source.fd).st_size, HEAD_BYTES)
    while len(source.head) < HEAD_BYTES and _lines(source.head) < HEAD_LINES:
        if not _read_some(source, HEAD_BYTES - len(source.head)):
            break
    while len(source.head) < HEAD_BYTES and _waiting(source.fd):
        if not _read_some(source, HEAD_BYTES - len(source.head)):
            break
    return min(len(source.head), HEAD_BYTES)


def _read_some(source: Source, most: int) -> bool:
    """Read what the stream holds (up to `most` bytes) into its head; False at its end."""
    try:
        data = os.read(source.fd, most)
    except OSError as exc:
        raise InputError(f"cannot read input {source.name}: {exc.strerror or exc}") from None
    source.head += data
    return bool(data)


def _waiting(fd: int) -> bool:
    """Whether a read would return at once (bytes waiting, or the end)."""
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)


def _lines(raw: bytes) -> int:
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = Gunzip().feed(raw)
        except InputError:
            return HEAD_LINES  # corrupt: the run's own decompression reports it
    return raw.count(b"\n")
