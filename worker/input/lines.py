"""Lines: input bytes (gzip or not) to complete physical lines, counted as they pass.

Everything above this works on lines, so a file, a pipe and a gzip stream look the
same. Lines split on LF only; a line longer than `MAX_LINE` is not held in memory but
stands as a `TooLong` marker of its length, so a file without newlines cannot exhaust
memory. `Lines.count` counts every line independently of any parsing, so the run can
prove at the end that every physical line was accounted for.
"""

from __future__ import annotations

import zlib

from worker.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
#: Read size: large enough that per-chunk overhead vanishes, small enough for latency.
CHUNK = 1 << 16
#: A physical line longer than this is an `invalid` row, skipped without being held:
#: no legal row comes near it (a reference is at most 2,000 characters).
MAX_LINE = 1 << 20


class Gunzip:
    """Incremental gzip: concatenated members too, as `gzip -c a b` writes them."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(wbits=31)
        self._member_started = False

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            self._member_started = True
            try:
                out.append(self._z.decompress(data))
            except zlib.error as exc:
                raise InputError(f"corrupt gzip data: {exc}") from None
            if not self._z.eof:
                break
            data = self._z.unused_data
            self._z = zlib.decompressobj(wbits=31)
            self._member_started = False
        return b"".join(out)

    def finish(self) -> None:
        if self._member_started:
            raise InputError("the gzip data ends early (truncated file?)")


class TooLong(int):
    """Stands for a physical line longer than `MAX_LINE` bytes (its length)."""


class Lines:
    """Bytes in, complete physical lines out (split on LF only, terminator dropped).

    `count` is every line seen, counted here independently of any parsing, so the
    run can prove at the end that every physical line was accounted for.
    """

    def __init__(self) -> None:
        self._tail = b""
        self._skipping = 0  # bytes of an overlong line thrown away so far
        self.count = 0

    def feed(self, data: bytes) -> list[bytes | TooLong]:
        if not data:
            return []
        parts = data.split(b"\n")
        out: list[bytes | TooLong] = []
        last = parts.pop()
        for i, part in enumerate(parts):
            if i == 0:
                out.append(self._join(part))
            else:
                out.append(part if len(part) <= MAX_LINE else TooLong(len(part)))
        self.count += len(parts)
        if parts:
            self._tail, self._skipping = b"", 0
        self._hold(last)
        return out

    @property
    def held(self) -> int | None:
        """Bytes of an unfinished line held back (None: an overlong one being skipped)."""
        return None if self._skipping else len(self._tail)

    def finish(self) -> list[bytes | TooLong]:
        if not self._tail and not self._skipping:
            return []
        self.count += 1
        line = self._join(b"")
        self._tail, self._skipping = b"", 0
        return [line]

    def _join(self, head: bytes) -> bytes | TooLong:
        if self._skipping:
            return TooLong(self._skipping + len(head))
        line = self._tail + head
        return line if len(line) <= MAX_LINE else TooLong(len(line))

    def _hold(self, part: bytes) -> None:
        if self._skipping:
            self._skipping += len(part)
        elif len(self._tail) + len(part) > MAX_LINE:
            self._skipping = len(self._tail) + len(part)
            self._tail = b""
        else:
            self._tail += part
