"""Source: opening an input once per pass and reading its bytes into rows.

A regular file can be read twice (the duplicate pre-pass, then the run, which for a
small file only checks the bytes: `check_to`, `screened`); standard
input, a FIFO, a process substitution or a device are read once, as they arrive,
through the event loop (`read_batches`), so a slow or never-closing producer can hold
up neither the rows already written nor a signal. `open_input` checks what can be
checked before any request (the file opens, it is text, its first line fits the
format, the CSV header names a reference column) and raises `InputError` (exit 2)
otherwise; it reads only until the line those checks need is complete (see `sniff`),
so on a pipe it never waits for more than the producer has written.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import sys
from collections.abc import AsyncGenerator, Iterator
from typing import IO

from worker.errors import InputError
from worker.input.checkpoint import Checkpoint
from worker.input.fingerprint import BLOCK, Digest, Fingerprint, Verifier
from worker.input.header import Columns, delimiter_option, parse_header
from worker.input.lines import CHUNK, GZIP_MAGIC, MAX_LINE, Gunzip, Lines
from worker.input.parsed import Parsed
from worker.input.rows import RowParser
from worker.input.sniff import (
    excel_separator,
    first_look,
    format_by_name,
    refuse_binary,
    refuse_not_json,
    sniff_format,
)


class Source:
    """An opened input: where its bytes come from and how to turn them into rows.

    A regular file can be read twice (the duplicate pre-pass, then the run); standard
    input, a FIFO, a process substitution or a device are read once (`rereadable`
    False), as they arrive. `head` holds the bytes read before the run to check the
    header; `feed`/`finish` (or `rows`, for a file) turn the rest into rows.
    """

    def __init__(
        self, name: str, fmt: str, stream: IO[bytes], rereadable: bool, multiline: bool = False
    ) -> None:
        self.name = name
        self.format = fmt
        self.stream = stream
        self.rereadable = rereadable
        self.multiline = multiline  # `--multiline-cells`: a quoted comment may span lines
        self.columns: Columns | None = None
        self.head = b""  # raw bytes read ahead, not yet parsed
        self._gunzip: Gunzip | None = None
        self._lines = Lines()
        self._parser: RowParser | None = None
        self._rows = 0
        # SHA-256 of the bytes as stored (gzip included): what binds a report to its
        # input. Off for a file's second pass, whose first pass already hashed it.
        self.digest: Digest | None = hashlib.sha256()
        # A file's second pass reads only what its first pass fingerprinted.
        self._verifier: Verifier | None = None

    @property
    def fd(self) -> int:
        return self.stream.fileno()

    @property
    def lines_seen(self) -> int:
        """Physical lines read so far, counted from the bytes alone."""
        return self._lines.count

    @property
    def lines_accounted(self) -> int:
        """Physical lines that became the header, a row, part of a row, or a blank line."""
        return self._parser.lines if self._parser else self._lines.count

    @property
    def blank_rows(self) -> int:
        return self._parser.blank if self._parser else 0

    @property
    def rows_seen(self) -> int:
        """Rows parsed so far, valid or not (blank rows are not rows). After a full read,
        0 means the input holds no row at all: a header alone, or only blank lines."""
        return self._rows

    def start(self, gunzip: Gunzip | None) -> None:
        self._lines = Lines()
        self._gunzip = gunzip
        self._parser = RowParser(self.format, self.columns, self.multiline)
        self._rows = 0
        self.bytes_fed = 0  # raw bytes fed so far (gzip or not), skipped ones included
        self._skip = 0  # raw bytes still to pass by unparsed (see `resume_at`)

    def mark(self) -> Checkpoint | None:
        """Where reading could start again after what was fed so far (None: not here,
        or not in this input: see `checkpoint`); `rows` and `proof` are the caller's."""
        parser = self._parser
        if parser is None or self._gunzip is not None or self.multiline or self._skip:
            return None
        held = self._lines.held
        if held is None or parser.pending:
            return None
        return Checkpoint(
            offset=self.bytes_fed - held,
            line=self._lines.count + 1,
            accounted=parser.lines,
            blank=parser.blank,
            rows_seen=self._rows,
            rows=0,
            proof=0,
        )

    def resume_at(self, mark: Checkpoint) -> None:
        """Parse from `mark` on (a plain file, not read yet): the bytes before it are
        still read, hashed and checked (`digest`, `expect`), but not parsed, and the
        counts go on from the mark's, as if the rows before it had been read."""
        assert self._parser is not None and self._gunzip is None and not self.bytes_fed
        self._skip = mark.offset
        self._lines.count = mark.line - 1
        self._parser.resume_at(mark.line, mark.accounted, mark.blank)
        self._rows = mark.rows_seen

    def feed(self, data: bytes) -> list[Parsed]:
        """Rows completed by `data` (raw bytes as read, gzip or not)."""
        assert self._parser is not None
        self.bytes_fed += len(data)
        if self.digest is not None:
            self.digest.update(data)
        if self._skip:
            cut = min(self._skip, len(data))
            self._skip -= cut
            data = data[cut:]
        if self._gunzip is not None:
            data = self._gunzip.feed(data)
        out = self._parser.rows(self._lines.feed(data))
        self._rows += len(out)
        return out

    def finish(self) -> list[Parsed]:
        """Rows left at the end of the input (a last line without a newline)."""
        assert self._parser is not None
        if self._gunzip is not None:
            self._gunzip.finish()
        out = self._parser.rows(self._lines.finish()) + self._parser.finish()
        self._rows += len(out)
        return out

    def rows(self) -> Iterator[Parsed]:
        """Every row of a file that does not block (a regular file), read in chunks."""
        for batch in self.batches():
            yield from batch

    def expect(self, fingerprint: Fingerprint) -> None:
        """Read only the bytes a first pass fingerprinted, each checked before it is
        parsed (see `fingerprint`); raises `InputChanged` when they differ."""
        self._verifier = Verifier(fingerprint, self.name)

    def check_to(self, offset: int) -> None:
        """Read and check, without parsing, the bytes up to `offset` and the rest of its
        block (see `expect`): for rows the pre-pass kept (`screened`), so that they are
        sent only while the file still holds what was counted. Raises `InputChanged`."""
        check = self._verifier
        assert check is not None, "check_to needs expect() first"
        if self.head:
            head, self.head = self.head, b""
            check.feed(head)
        while (check.taken < offset or check.taken % BLOCK) and (want := check.wanted()):
            data = os.read(self.fd, want)
            if not data:
                check.finish()  # raises: the file is shorter than when it was counted
            check.feed(data)
        if not check.wanted():
            check.finish()

    def grown(self) -> int:
        """Bytes the file holds beyond what its first pass read (not read by this one)."""
        check = self._verifier
        return max(os.fstat(self.fd).st_size - check.size, 0) if check else 0

    def batches(self) -> Iterator[list[Parsed]]:
        """The rows of each chunk read, in order, from a file that does not block."""
        head, self.head = self.head, b""
        check = self._verifier
        if check is None:
            yield self.feed(head)
            while data := os.read(self.fd, CHUNK):
                yield self.feed(data)
        else:
            yield self.feed(check.feed(head))
            while (want := check.wanted()) and (data := os.read(self.fd, want)):
                yield self.feed(check.feed(data))
            check.finish()
        yield self.finish()

    def estimated_lines(self) -> int:
        """Lines a regular file holds, judged from its size and its first lines.

        Sizes the duplicate filter without a counting pass over the file. A low guess
        only raises the filter's false-positive rate (more exact candidates); it never
        makes an answer wrong.
        """
        size = os.fstat(self.fd).st_size
        sample = self.head
        if sample[:2] == GZIP_MAGIC:
            try:
                sample = Gunzip().feed(sample)
            except InputError:
                sample = b""
            trailer = os.pread(self.fd, 4, max(size - 4, 0))
            # gzip stores the plain size modulo 2**32; text compresses about 4x at least
            size = max(int.from_bytes(trailer, "little"), size * 4)
        per_line = len(sample) / max(sample.count(b"\n"), 1) if sample else 32.0
        return int(size / max(per_line, 1.0) * 1.2) + 1

    def close(self) -> None:
        if self.stream is not sys.stdin.buffer:
            self.stream.close()


def _is_rereadable(name: str, stream: IO[bytes]) -> bool:
    if name == "-":
        return False
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def open_input(
    name: str,
    explicit_format: str | None = None,
    delimiter: str | None = None,
    multiline: bool = False,
) -> Source:
    """Open the input once and check it; raises InputError for an unusable file.

    `explicit_format` is `--input-format` (csv or jsonl; None: by name, else by
    content); `delimiter` is `--delimiter`, the CSV separator (one character or `tab`;
    None: detected from the header). Both are checked before the file is opened.
    `multiline` is `--multiline-cells` (see `rows`).

    Reads until the line the checks need (the CSV header, the first non-blank JSON
    line) is complete and no further, so that on a pipe the check does not wait for
    more than the producer has written. What it read stays in `Source.head` and is
    parsed first.
    """
    if not name:
        raise InputError("no input file given")
    fmt = format_by_name(name, explicit_format)
    delimiter = delimiter_option(delimiter)
    try:
        stream: IO[bytes] = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot open input {name}: {exc.strerror or exc}") from None
    try:
        return _check(name, fmt, delimiter, stream, multiline)
    except BaseException:
        if stream is not sys.stdin.buffer:
            stream.close()
        raise


def _check(
    name: str, fmt: str | None, delimiter: str | None, stream: IO[bytes], multiline: bool
) -> Source:
    raw, eof = _read_ahead(name, stream, fmt)
    gzipped = raw[:2] == GZIP_MAGIC
    try:
        plain = raw
        if gzipped:
            gunzip = Gunzip()
            plain = gunzip.feed(raw)
            if eof:  # all of it read: a file cut short says so, not that its header is odd
                gunzip.finish()
    except InputError as exc:
        raise InputError(f"cannot read input {name}: {exc}") from None
    if not plain.strip() and (eof or fmt != "csv"):  # a CSV's blank header: parse_header
        if eof:
            raise InputError(f"{name} is empty")
        raise InputError(f"{name}: its first {MAX_LINE:,} bytes are all blank lines")
    look = first_look(plain, fmt, eof)
    refuse_binary(name, plain, look)
    fmt = fmt or sniff_format(plain)
    source = Source(name, fmt, stream, _is_rereadable(name, stream), multiline)
    if fmt == "csv":
        if not look.complete or len(look.line) > MAX_LINE:
            raise InputError(
                f"{name}: the header (line {look.number}) is over {MAX_LINE:,} bytes long"
            )
        header = look.line.decode("utf-8", "surrogateescape")
        named = excel_separator(plain) if look.number == 2 else None  # Excel's `sep=;`
        source.columns = parse_header(header, name, delimiter or named, look.number)
    else:
        refuse_not_json(name, look)
    source.head = raw
    source.start(Gunzip() if gzipped else None)
    return source


def _read_ahead(name: str, stream: IO[bytes], fmt: str | None) -> tuple[bytes, bool]:
    """The input's first bytes, up to the line `first_look` needs, and whether they are
    all there is (known at the end of a regular file; a pipe may always say more).

    os.read returns what a pipe holds now instead of waiting for a full buffer, and
    reading stops as soon as that line is complete, so a producer that writes a line
    and then thinks is never waited on. At most about `MAX_LINE` is held.
    """
    raw = b""
    try:
        while data := os.read(stream.fileno(), CHUNK):
            raw += data
            if _enough(raw, fmt):
                return raw, _at_end(stream.fileno())
    except OSError as exc:
        raise InputError(f"cannot read input {name}: {exc.strerror or exc}") from None
    return raw, True


def _at_end(fd: int) -> bool:
    """A regular file read to its end: then a CSV of blank lines is empty, not headless."""
    info = os.fstat(fd)
    return stat.S_ISREG(info.st_mode) and os.lseek(fd, 0, os.SEEK_CUR) >= info.st_size


def _enough(raw: bytes, fmt: str | None) -> bool:
    try:
        plain = Gunzip().feed(raw) if raw[:2] == GZIP_MAGIC else raw
    except InputError:
        return True  # corrupt: reported by the caller's own decompression
    return len(plain) > MAX_LINE or first_look(plain, fmt, eof=False).complete


async def read_batches(source: Source) -> AsyncGenerator[list[Parsed], None]:
    """The input's rows, a chunk's worth at a time, as the bytes arrive.

    A regular file never blocks, so it is read on the loop's thread (measured faster
    than a thread, which makes the loop wait for the GIL). Anything else (a pipe, a
    FIFO, a terminal) is read through the event loop, so that a producer that is slow
    or never closes cannot hold up a signal: closing this generator ends the read.
    """
    if stat.S_ISREG(os.fstat(source.fd).st_mode):
        for batch in source.batches():
            yield batch
            await asyncio.sleep(0)
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), source.stream
    )
    try:
        head, source.head = source.head, b""
        yield source.feed(head)
        while data := await reader.read(CHUNK):
            yield source.feed(data)
        yield source.finish()
    finally:
        transport.close()
