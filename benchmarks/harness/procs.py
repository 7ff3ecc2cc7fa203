"""Child processes: start, stop, measure.

Owns the one rule every benchmark depends on: each child runs in its own session (its
process group id is its pid), so stopping it stops everything it started, and nothing
survives the script, also on Ctrl-C/SIGTERM (`install_signal_handlers`) or an error
(`Processes.stop_all`). `measure` runs a client and reads its CPU from `wait4()` (that
process and its reaped descendants only: never the fake server or this script), and
polls its process tree for RSS (psutil) and each process's own high-water mark
(`VmHWM`).

Why peak RSS is not `ru_maxrss`: on Linux, exec records the old address space's
high-water mark in the process, and a child of this script starts from a copy of (or,
with vfork, from) this script's address space. So `wait4()`'s `ru_maxrss` of every
child is at least this script's own peak RSS (measured: /bin/true reported 215 MB after
this script had touched 200 MB). `VmHWM` belongs to the address space exec creates, so
it is the child's own. It is kept as `ru_maxrss_mb` in results.json for reference.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

POLL_SECONDS = 0.05
TIMELINE_SECONDS = 1.0
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
    maxrss_mb: float  # largest VmHWM (own high-water mark) of any process seen in the tree
    ru_maxrss_mb: float  # wait4's ru_maxrss: floored at this script's own peak (see above)
    returncode: int
    timed_out: bool = False
    stopped: bool = False  # SIGTERMed on purpose after `stop_after` seconds
    # (seconds since start, tree RSS MB), about one sample a second
    rss_timeline: list[tuple[float, float]] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def _hwm_kib(pid: int) -> int:
    """VmHWM of `pid` in KiB (0 if it is gone or not readable)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree_sample(root: psutil.Process) -> tuple[int, int]:
    """(sum of RSS in bytes, largest VmHWM in KiB) over `root` and its descendants."""
    rss, hwm = 0, 0
    try:
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return 0, 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            rss += proc.memory_info().rss
            hwm = max(hwm, _hwm_kib(proc.pid))
    return rss, hwm


def measure(
    procs: Processes,
    cmd: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    stop_after: float | None = None,
    stdin: IO[bytes] | int = subprocess.DEVNULL,
    stdout: IO[bytes] | int = subprocess.DEVNULL,
    stderr: IO[bytes] | int = subprocess.DEVNULL,
) -> Measured:
    """Run `cmd`: CPU from wait4 (this child and its reaped descendants only), peak RSS from
    polled VmHWM, tree RSS and an RSS timeline from psutil.

    `stop_after`: SIGTERM the child's group after that many seconds (a time-boxed run: the
    child shuts down as on any SIGTERM). After `timeout` it is SIGKILLed: a failed run.
    """
    started = time.perf_counter()
    proc = procs.start(cmd, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr)
    root = psutil.Process(proc.pid)
    peak = hwm = 0
    timed_out = stopped = False
    timeline: list[tuple[float, float]] = []
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        rss, tree_hwm = _tree_sample(root)
        peak, hwm = max(peak, rss), max(hwm, tree_hwm)
        now = time.perf_counter() - started
        if not timeline or now - timeline[-1][0] >= TIMELINE_SECONDS:
            timeline.append((round(now, 2), round(rss / MB, 1)))
        if stop_after is not None and not stopped and now > stop_after:
            stopped = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        if now > timeout:
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
        maxrss_mb=(hwm or usage.ru_maxrss) / 1024,  # KiB; ru_maxrss only if never sampled
        ru_maxrss_mb=usage.ru_maxrss / 1024,
        returncode=proc.returncode,
        timed_out=timed_out,
        stopped=stopped,
        rss_timeline=timeline,
    )
