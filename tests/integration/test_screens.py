"""What a person sees on an 80-column terminal: the run in a pseudo-terminal, read back
as a screen; and the resume line."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.support import REPO, env_for, run_cli, sandbox, write_csv
from tests.unit.observe.screen import screen

WIDTH = 80


def on_a_terminal(args: list[str], cwd: Path) -> tuple[int, list[str]]:
    """Run the CLI with an 80x24 pseudo-terminal as stdin and stderr; the screen after."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, WIDTH, 0, 0))
    env = {**env_for(None), "PYTHONPATH": str(REPO), "COLUMNS": str(WIDTH)}
    env.pop("CANCEL_WORKER_CONCURRENCY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", *args],
        stdin=follower,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        cwd=cwd,
        env=env,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal: it has ended
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=30)
    os.close(leader)
    return proc.returncode, screen(seen.decode(errors="replace").replace("\r\n", "\n"))


def test_on_a_terminal_the_summary_is_printed_once_within_80_columns(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", [(f"p{i}", "T1") for i in range(3)] + [("", "T1")])
    # by its name in the working directory: the start line shows it, and the depth of
    # the test's temporary folder (deeper under pytest-xdist) must not decide the width
    code, lines = on_a_terminal(["run", "in.csv", "--sandbox"], tmp_path)
    text = "\n".join(lines)
    assert code == 1, text  # the empty reference is invalid
    assert max(len(line) for line in lines) <= WIDTH, text
    assert sum(line.startswith("cancel-worker: ") for line in lines) == 1, text
    assert not re.search(r"\binfo\s+summary\b", text)  # the event would repeat the card
    assert ", 3 requests (" in text and "ok 3 invalid 1" in text


async def test_the_resume_line_counts_one_way(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"p{i}", "T1") for i in range(1_200)])
    async with sandbox() as server:
        args = ("run", str(src), "--log-format", "json", "--rate", "0", "--concurrency", "32")
        first = await run_cli(*args, env=env_for(server), cwd=tmp_path)
        assert first.code == 0, first.stderr[-2000:]
        again = await run_cli(*args, env=env_for(server), cwd=tmp_path)
        assert again.code == 0, again.stderr[-2000:]
    [resuming] = [
        event for line in again.stderr.splitlines()
        if line.startswith("{") and (event := json.loads(line))["event"] == "resuming"
    ]  # fmt: skip
    assert resuming["message"] == (
        "resuming in.report.csv: 1,200 rows from 1 earlier run, 0 references left, 1,200 settled"
    )
