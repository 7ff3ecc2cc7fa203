"""Child processes: start, stop, measure.

Owns the one rule every benchmark depends on: each child runs in its own session (its
process group id is its pid), so stopping it stops everything it started, and nothing
survives the script, also on Ctrl-C/SIGTERM (`install_signal_handlers`) or an error
(`Processes.stop_all`). `measure` runs a client and reads its CPU and peak RSS from
`wait4()` (that process and its reaped descendants only: never the fake server or
this script), and polls the RSS of its process tree with psutil.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

POLL_SECONDS = 0.05
MB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signum)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt(signum), so `finally` blocks run."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_interrupt)


class Processes:
    """Every child we start, each in its own session (so its group id is its pid)."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.live.append(proc)
        return proc

    def forget(self, proc: subprocess.Popen[bytes]) -> None:
        if proc in self.live:
            self.live.remove(proc)

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """SIGTERM the child's process group, SIGKILL it after `grace` seconds."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            if proc.returncode is not None:
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of a group whose leader is gone
        self.forget(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            self.stop(proc)


@dataclass
class Measured:
    wall: float
    user: float
    sys: float
    rss_tree_peak_mb: float  # polled every 50 ms: sum of RSS over the child's process tree
    maxrss_mb: float  # kernel high-water mark of the largest single process in the tree
    returncode: int
    timed_out: bool = False

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total


def measure(
    procs: Processes,
    cmd: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    stdin: IO[bytes] | int = subprocess.DEVNULL,
    stdout: IO[bytes] | int = subprocess.DEVNULL,
    stderr: IO[bytes] | int = subprocess.DEVNULL,
) -> Measured:
    """Run `cmd`; CPU and maxrss come from wait4 (this child and its reaped descendants only)."""
    started = time.perf_counter()
    proc = procs.start(cmd, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr)
    root = psutil.Process(proc.pid)
    peak = 0
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _tree_rss(root))
        if time.perf_counter() - started > timeout:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    procs.forget(proc)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # nothing of it may outlive the measurement
    return Measured(
        wall=wall,
        user=usage.ru_utime,
        sys=usage.ru_stime,
        rss_tree_peak_mb=peak / MB,
        maxrss_mb=usage.ru_maxrss / 1024,  # Linux: KiB
        returncode=proc.returncode,
        timed_out=timed_out,
    )
