"""Files that must never hold half a row: whole appends, cut back on failure.

`append_whole` is the one way the report and the journal grow. A short write is
continued; a failed one (a full disk) is cut back with `ftruncate` to where the call
began, so a later successful append never follows half a row, and `StorageError`
(exit 3) names the file and the OS error.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from worker.errors import StorageError

#: Reports and journals name merchants and payments: not for every local user to read.
FILE_MODE = 0o640


def sync(fd: int, path: Path) -> None:
    """`fsync`, reported as a StorageError naming the file."""
    try:
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(f"{path}: {exc.strerror or exc}") from None


def sync_data(fd: int, path: Path) -> None:
    """`fdatasync` where there is one (the data and the size, not the times), else `fsync`."""
    try:
        _fdatasync(fd)
    except OSError as exc:
        raise StorageError(f"{path}: {exc.strerror or exc}") from None


def sync_folder(path: Path) -> None:
    """Make a newly created file's name durable: `fsync` its folder (POSIX asks for it)."""
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError as exc:
        raise StorageError(f"{path.parent}: {exc.strerror or exc}") from None
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems refuse fsync on a folder (EINVAL): nothing more can be done there.
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise StorageError(f"{path.parent}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


_fdatasync = getattr(os, "fdatasync", os.fsync)


def cut_torn_line(fd: int, chunk: int = 4096) -> int:
    """Cut off a last line left without its newline (by a power cut mid-write) so that
    the next append starts a line of its own; returns the bytes cut. Such a line was
    never synced whole, so nothing relied on it (the file's readers skip it too)."""
    end = size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    keep = 0
    while end > 0:
        start = max(0, end - chunk)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    os.ftruncate(fd, keep)
    return size - keep


def append_whole(fd: int, data: bytes, path: Path) -> None:
    """Append `data` completely or not at all; raises StorageError naming `path`.

    A short write is continued; a failed one is cut back to where this call began,
    so that a later successful append does not follow half a row.
    """
    start = os.lseek(fd, 0, os.SEEK_END)
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(errno.EIO, "write wrote nothing")
            view = view[written:]
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise StorageError(f"{path}: {exc.strerror or exc}") from None
