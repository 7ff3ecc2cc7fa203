"""Write: the page beside its report, whole or not at all, as private as the report.

`<report>.html` by default. The page names merchants and payments like the report
it shows, so it gets the report's own file mode; it is written to a temporary name
and renamed into place, so a reader never opens half a page. It never replaces the
report, its run record, journal or lock, or an input its runs read, nor any existing
file that is not a page (`--out` names any file: another shard's report, say): the
report is the night's record, and losing it loses what was sent.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from worker.errors import ReportError
from worker.page.night import gather
from worker.page.render import page
from worker.page.verdict import judge
from worker.report.journal import journal_path
from worker.report.lock import lock_path, real_path, same_file
from worker.report.runs import read_runs, recorded_inputs, runs_path
from worker.report.survey import survey_path


def card_path(report: Path) -> Path:
    return report.with_name(report.name + ".html")


def check_target(report: Path, target: Path) -> None:
    """ReportError when `target` is one of the files the night is made of (found beside
    the report's real file, as the run names them)."""
    real = real_path(report)
    kept = [(p, f"{what} {p}") for p, what in [
        (real, "the report"),
        (runs_path(real), "the run record"),
        (journal_path(real), "the intent journal"),
        (lock_path(real), "the lock"),
        (survey_path(real), "the survey"),
    ]]  # fmt: skip
    kept += [(p, f"the input {name}") for p, name in recorded_inputs(real, read_runs(real))]
    for path, what in kept:
        if same_file(target, path):
            raise ReportError(
                f"--out {target} is {what}: writing the page would overwrite it; "
                f"choose another --out, e.g. {card_path(report)}"
            )
    if _other_file(target):
        raise ReportError(
            f"--out {target} exists and is not a web page (another shard's report, an "
            "input?): writing the page would overwrite it; choose another --out, e.g. "
            f"{card_path(report)}, or remove {target} first"
        )


def _other_file(target: Path) -> bool:
    """An existing file that an older page cannot be: not named `.html`/`.htm`, and
    not starting as one does. Another night's files are not all beside this report."""
    try:
        if not stat.S_ISREG(os.stat(target).st_mode):
            return True  # a FIFO (opening it would wait for a writer), a device: not ours
        if target.suffix.lower() in (".html", ".htm"):
            return False
        with open(target, "rb") as f:
            start = f.read(64)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # unreadable: not ours to replace
    return not start.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith(b"<!doctype html")


def write_card(report: Path, out: Path | None = None, command: str | None = None) -> Path:
    """Build the page of `report` into `out` (default: beside `report` as named);
    raises ReportError or OSError.

    `command` is the exact command of the run writing the page, for the verdict.
    """
    night = gather(real_path(report))  # the run records are beside the real file
    text = page(night, judge(night, command))
    target = out or card_path(report)
    check_target(report, target)
    mode = stat.S_IMODE(os.stat(report).st_mode)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)  # the report's mode, whatever the umask
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
