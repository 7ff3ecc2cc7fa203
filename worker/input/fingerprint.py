"""Fingerprint: what the first read of a file saw, so that the run reads exactly that.

A regular file is read twice: the pre-pass counts its rows, finds its duplicates and
hashes it (the hash binds the report to it); the run reads it again to send (a small
file's rows are kept from the pre-pass, and the run reads only its bytes again, to
check them: `Source.check_to`, `screened`). If the
file grows in between (a producer still appending) or is edited in place, the run
would send rows the pre-pass never counted, and a repeat the duplicate filter never
saw would be cancelled twice. So the pre-pass records the file's size, its SHA-256,
and a *mark* at every `BLOCK` bytes: the first 8 bytes of the SHA-256 of the file up
to there (`sha256.copy()`, so the file is hashed once). The run hashes what it reads
the same way, reads no further than the size, and hands a block's bytes on to the
parser only once its mark matches: a changed block stops the run (`InputChanged`)
before any row of it is admitted, and a run that reads to the end has read bytes
whose SHA-256 is exactly the recorded one. Bytes appended after the pre-pass are not
read (`Source.grown` says how many there are).

Memory: 8 bytes per 64 KiB block, 128 KiB per GB of input, plus one block held.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from worker.errors import InputChanged
from worker.input.lines import CHUNK

#: Bytes between two marks; the reads of the run pass are aligned to it.
BLOCK = CHUNK
MARK = 8


class Digest(Protocol):
    """What hashes the bytes a `Source` reads: SHA-256, or the pre-pass's `Recorder`."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True)
class Fingerprint:
    size: int
    sha256: str
    marks: bytes  # MARK bytes per whole BLOCK: the SHA-256 of the file up to its end


class Recorder:
    """Hashes what the pre-pass reads (as `Source.digest`) and marks every BLOCK."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._marks = bytearray()
        self._size = 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = min(BLOCK - self._size % BLOCK, len(view))
            self._sha.update(view[:take])
            self._size += take
            view = view[take:]
            if self._size % BLOCK == 0:
                self._marks += self._sha.copy().digest()[:MARK]

    def hexdigest(self) -> str:
        return self._sha.hexdigest()

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(self._size, self._sha.hexdigest(), bytes(self._marks))


class Verifier:
    """Hands on only bytes that match a fingerprint, a block at a time, up to its size."""

    def __init__(self, fingerprint: Fingerprint, name: str) -> None:
        self._fp = fingerprint
        self._name = name
        self._sha = hashlib.sha256()
        self._held = bytearray()  # bytes of the current block, not checked yet
        self._size = 0  # bytes taken, held ones included

    @property
    def size(self) -> int:
        """The size the pre-pass read: the run reads no further."""
        return self._fp.size

    @property
    def taken(self) -> int:
        """Bytes fed so far (a block's worth may be held, not yet checked)."""
        return self._size

    def wanted(self) -> int:
        """How many bytes to read next: to the end of the current block, at most to the
        size the pre-pass read (0: all of it was read)."""
        return min(BLOCK - self._size % BLOCK, self._fp.size - self._size)

    def feed(self, data: bytes) -> bytes:
        """The bytes of every block `data` completes, checked; the rest is held."""
        if self._size + len(data) > self._fp.size:
            raise self._changed(self._size, self._size + len(data))
        out: list[bytes] = []
        view = memoryview(data)
        while view:
            take = min(BLOCK - self._size % BLOCK, len(view))
            piece, view = view[:take], view[take:]
            self._sha.update(piece)
            self._size += take
            self._held += piece
            if self._size % BLOCK == 0 or self._size == self._fp.size:
                self._check()
                out.append(bytes(self._held))
                self._held.clear()
        return b"".join(out)

    def finish(self) -> None:
        """The file ended: it must not have ended before the size the pre-pass read."""
        if self._size < self._fp.size:
            raise InputChanged(
                f"{self._name} is shorter than when it was counted before sending "
                f"({self._size:,} bytes, was {self._fp.size:,}): it changed during the run"
            )

    def _check(self) -> None:
        start, end = self._size - len(self._held), self._size
        if end % BLOCK == 0:
            mark = self._fp.marks[(end // BLOCK - 1) * MARK : end // BLOCK * MARK]
            if self._sha.copy().digest()[:MARK] != mark:
                raise self._changed(start, end)
        if end == self._fp.size and self._sha.hexdigest() != self._fp.sha256:
            raise self._changed(start, end)

    def _changed(self, start: int, end: int) -> InputChanged:
        return InputChanged(
            f"{self._name} changed during the run: bytes {start:,} to {end:,} are not what "
            "was counted before sending, so reading stopped there"
        )
