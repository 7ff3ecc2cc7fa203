"""Lock: one run at a time per report, whatever name the report is reached by.

Two runs appending to one report would each cancel what the other is cancelling.
`ReportLock` holds an exclusive `flock` on `<report>.lock` for the whole run, and
writes its holder (pid, host, since when) into it, so a second run can say who holds
it. The kernel drops the lock when the process ends, however it ends, so a run
killed with SIGKILL never leaves a lock behind (only a stale file, which the next
run takes over).

The lock file (like the journal and the run record) is named after the report's real
file, symlinks resolved (`real_path`), so `./r.csv`, `out/../r.csv`, a symlink or
another working directory all meet at one lock. A hard link is another name for the
same inode: the report file itself is locked too (`flock` belongs to the inode), and a
report with more than one name is refused, because its journal and run record are
found by name and a run through the other name would not see them.

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

from worker.errors import ReportError, ReportInUse
from worker.report.storage import FILE_MODE

_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def lock_path(report: Path) -> Path:
    return report.with_name(report.name + ".lock")


def real_path(report: Path) -> Path:
    """The report's real file: absolute, symlinks resolved (the file need not exist)."""
    return Path(os.path.realpath(report))


def same_file(a: Path, b: Path) -> bool:
    """One file by resolved path, or (both existing) by device and inode: hard links too."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class ReportLock:
    """`acquire()` or ReportInUse (exit 2) naming the holder; `release()` at the end.

    `cover()` locks the report file itself once it exists (`acquire` does when it
    already does; the run calls it again after creating the report).
    """

    def __init__(self, report: Path) -> None:
        self.report = report
        self.real = real_path(report)
        self.path = lock_path(self.real)
        self._fd: int | None = None
        self._file_fd: int | None = None
        self.supported = True

    def acquire(self) -> None:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            except OSError as exc:  # a folder that takes no new file (/proc, read-only)
                raise ReportError(
                    f"cannot create the report's lock file {self.path}: {exc.strerror}"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise ReportInUse(
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
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, orjson.dumps(me) + b"\n", 0)
        except OSError as exc:  # a full disk: no lock file left behind, and its name said
            self.release()
            raise ReportError(f"cannot write lock file {self.path}: {exc.strerror}") from None
        try:
            self.cover()
        except BaseException:
            self.release()
            raise

    def cover(self) -> None:
        """Lock the report file's inode too, if it exists: ReportInUse (exit 2) when
        another run holds it through another name, ReportError when it has more than one
        name."""
        if self._file_fd is not None:
            return
        try:
            fd = os.open(self.real, os.O_RDWR)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ReportError(f"cannot open report {self.report}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_by_inode(os.fstat(fd).st_ino)
            os.close(fd)
            raise ReportInUse(
                f"report {self.report} is in use by another run, through another name of "
                f"the same file ({holder}); wait for it to end, or choose another --report"
            ) from None
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                os.close(fd)
                raise ReportError(f"cannot lock {self.report}: {exc.strerror}") from None
        links = os.fstat(fd).st_nlink
        if links > 1:
            os.close(fd)
            raise ReportError(
                f"report {self.report} has {links} names (hard links): its journal and run "
                "record are found by name, so a run through another name would miss them. "
                f"Remove the other links (find -samefile {self.report}), then rerun"
            )
        self._file_fd = fd

    def release(self) -> None:
        if self._file_fd is not None:
            os.close(self._file_fd)
            self._file_fd = None
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


def _holder_by_inode(inode: int) -> str:
    """The pid holding a `flock` on this inode, from Linux's /proc/locks (its lines
    read `1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF`; waiters have `->`)."""
    try:
        table = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return "holder unknown"
    for line in table.splitlines():
        parts = line.split()
        held = "->" not in parts and len(parts) > 5 and parts[1] == "FLOCK"
        if held and parts[5].rsplit(":", 1)[-1] == str(inode):
            return f"pid {parts[4]} on this host"
    return "holder unknown"


def _read_holder(fd: int) -> str:
    try:
        holder = orjson.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, orjson.JSONDecodeError):
        holder = {}
    if not isinstance(holder, dict) or not holder:
        return "holder unknown"
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
