"""A run of `run` or `check` inside the test's own event loop: the CLI's option parsing
and `build_settings`, then `prepare` and `execute`, as `cli._job` calls them. And
`invoke`: the console entry point itself, in this process, for what ends before a run
(help, usage errors).

For tests whose subject is what a run does (the report, the requests, the exit code)
rather than the process around it: no interpreter start-up per run, and the backoff
between tries can be injected (`FAST`), so a test that drives thousands of retries
does not wait out the real full-jitter backoff. Signals, stdout and stderr, exit
status and the environment as the process sees them stay with the subprocess tests
(`tests/support.py`).
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from tenacity import wait_fixed
from tenacity.wait import wait_base

from worker import cli as cli_module
from worker.bambora.backoff import wait_retry_after
from worker.cli import cli
from worker.model import Mode
from worker.observe import logs
from worker.run.main import execute
from worker.run.prepare import prepare
from worker.settings import build_settings

#: `Retry-After` still honoured, else 1 ms: the same retries, none of the waiting.
FAST: wait_base = wait_retry_after(wait_fixed(0.001))


@dataclass
class Ran:
    """A finished in-process run: its exit code and its log lines (with the summary)."""

    code: int
    log: str

    def summary(self) -> dict[str, Any]:
        events = [json.loads(x) for x in self.log.splitlines() if x.startswith("{")]
        return [e for e in events if e.get("event") == "summary"][-1]


async def run_job(*args: str, env: Mapping[str, str], cwd: Path, wait: wait_base = FAST) -> Ran:
    """`cancel-worker run|check ARGS` in this process, in `cwd`, with `env` as its
    environment; raises UsageError (the CLI's exit 2) as `prepare` and `execute` do.

    One at a time: while it runs, the process's working directory and log set-up are
    the run's. `env` is what `build_settings` reads (BAMBORA_*, shards); click reads the
    options' CANCEL_WORKER_* variables from `os.environ`, so tests of those use the CLI.
    """
    name, *rest = args
    command = cli.commands[name]
    with command.make_context(name, list(rest)) as ctx:
        kw = dict(ctx.params)
    settings = build_settings(Mode(name), kw, env)
    stream = io.StringIO()
    # The run adds its secrets to the process-wide redactor (as the CLI does); they are
    # taken out again after, or a later test's "wrong" or "sandbox-secret" would be masked.
    known = set(logs.REDACTOR._secrets)
    logs.configure(settings.log_format, settings.log_level, stream=stream)
    logs.REDACTOR.add(*settings.credentials.secrets())
    try:
        with contextlib.chdir(cwd):
            prepared = prepare(settings)
            # the command as typed, for the card's "run the same command again"
            code = await execute(prepared, shlex.join(["cancel-worker", *args]), wait=wait)
    finally:
        logs.REDACTOR._secrets = known
        logs.REDACTOR._tokens.clear()  # and the tokens it fetched
        logs.REDACTOR.add()
        structlog.contextvars.clear_contextvars()
        logs.configure("json")  # back on sys.stderr for whatever runs next
    return Ran(code, stream.getvalue())


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`cancel-worker ARGS` in-process, through the console entry point: its exit code
    (a number: the CLI never exits with text), stdout and stderr."""
    old = sys.argv
    sys.argv = ["cancel-worker", *args]
    try:
        with pytest.raises(SystemExit) as stop:
            cli_module.main()
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    code = stop.value.code
    assert code is None or isinstance(code, int), code
    return code or 0, out, err
