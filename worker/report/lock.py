"""Lock: one run at a time per report.

Two runs appending to one report would each cancel what the other is cancelling.
`ReportLock` holds an exclusive `flock` on `<report>.lock` for the whole run, and
writes its holder (pid, host, since when) into it, so a second run can say who holds
it. The kernel drops the lock when the process ends, however it ends, so a run
killed with SIGKILL never leaves a lock behind (only a stale file, which the next
run takes over).

On a network volume, `flock` is as good as the filesystem's locking: NFS v4 (and v3
with lockd) maps it to a byte-range lock the server enforces across hosts; a volume
without lock support (some SMB/FUSE mounts) answers ENOLCK/EOPNOTSUPP, and then the
run goes on with a warning, because refusing would stop every run on such a volume.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import orjson

from worker.report.records import ReportError
from worker.report.storage import FILE_MODE

_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def lock_path(report: Path) -> Path:
    return report.with_name(report.name + ".lock")


class ReportLock:
    """`acquire()` or ReportError (exit 2) naming the holder; `release()` at the end."""

    def __init__(self, report: Path) -> None:
        self.report = report
        self.path = lock_path(report)
        self._fd: int | None = None
        self.supported = True

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise ReportError(
                    f"report {self.report} is in use by another run ({holder}); wait for it "
                    "to end, or choose another --report"
                ) from None
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED:
                    os.close(fd)
                    raise ReportError(f"cannot lock {self.path}: {exc.strerror}") from None
                self.supported = False
            # The file we locked may have been removed by the run that held it just
            # before; only a lock on the file that is at the path now counts.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        self._fd = fd
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(me) + b"\n", 0)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # while still holding it: nobody can take it half-gone
            os.close(self._fd)
            self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_holder(fd: int) -> str:
    try:
        holder = orjson.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, orjson.JSONDecodeError):
        holder = {}
    if not isinstance(holder, dict) or not holder:
        return "holder unknown"
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
