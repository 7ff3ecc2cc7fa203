"""The lock follows the report's real file, whatever name it is reached by."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from worker.errors import ReportError, ReportInUse
from worker.report.lock import ReportLock, lock_path, real_path


def test_every_spelling_of_a_report_meets_at_one_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "out").mkdir()
    report = tmp_path / "out" / "night.csv"
    (tmp_path / "link.csv").symlink_to(report)  # the report need not exist yet
    monkeypatch.chdir(tmp_path)
    spellings = [report, Path("link.csv"), Path("./out/night.csv"), Path("out/../out/night.csv")]
    assert {real_path(p) for p in spellings} == {report}
    first = ReportLock(Path("out/night.csv"))
    first.acquire()
    try:
        assert first.path == lock_path(report)
        for name in spellings[1:]:
            with pytest.raises(ReportInUse, match=f"in use by another run \\(pid {os.getpid()}"):
                ReportLock(name).acquire()
    finally:
        first.release()
    assert not lock_path(report).exists()


def test_a_hard_link_is_held_by_the_inode_and_refused_when_free(tmp_path: Path) -> None:
    report = tmp_path / "night.csv"
    report.write_text("line,outcome\n")
    first = ReportLock(report)
    first.acquire()  # the report exists: its inode is locked too
    os.link(report, tmp_path / "hard.csv")
    second = ReportLock(tmp_path / "hard.csv")
    with pytest.raises(ReportInUse, match=f"another name of the same file \\(pid {os.getpid()}"):
        second.acquire()
    assert not lock_path(tmp_path / "hard.csv").exists()  # the refused run left nothing
    first.release()
    with pytest.raises(ReportError, match="has 2 names \\(hard links\\)"):
        ReportLock(tmp_path / "hard.csv").acquire()


def test_a_report_created_after_the_lock_is_covered_when_the_run_creates_it(
    tmp_path: Path,
) -> None:
    report = tmp_path / "night.csv"
    lock = ReportLock(report)
    lock.acquire()
    report.write_text("line,outcome\n")  # as the writer does
    lock.cover()
    os.link(report, tmp_path / "hard.csv")
    with pytest.raises(ReportInUse, match="another name of the same file"):
        ReportLock(tmp_path / "hard.csv").acquire()
    lock.release()


def test_a_full_disk_names_the_lock_file_and_leaves_none_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    lock = ReportLock(tmp_path / "r.csv")
    with pytest.raises(ReportError) as caught:
        lock.acquire()
    assert str(caught.value) == f"cannot write lock file {lock.path}: No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_a_lock_file_that_cannot_be_created_is_named_with_the_os_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--report /proc/version`: the error was Python's `[Errno 2] ...: '/proc/...'`."""
    real_open = os.open

    def refusing(path: object, flags: int, *args: int) -> int:
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing)
    lock = ReportLock(tmp_path / "r.csv")
    with pytest.raises(ReportError) as caught:
        lock.acquire()
    assert str(caught.value) == (
        f"cannot create the report's lock file {lock.path}: Read-only file system"
    )
