"""CLI: parses options and the environment into `Settings`, runs a job, maps it to an exit code.

    cancel-worker run INPUT [options]        cancel every payment reference in INPUT
    cancel-worker check INPUT [options]      query each payment's state, cancel nothing
    cancel-worker sandbox [--host H] [--port P] [options]
    cancel-worker merge-reports OUT REPORT...

Exit codes: 0 all done, 1 finished with some references not canceled, 2 usage or
input error (nothing sent), 3 aborted (credentials refused, API unreachable, report
unwritable), 4 stopped by a guard rail (nothing else sent), 130/143 interrupted (rerun
the same command to resume).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shlex
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar

import click

from worker import __version__
from worker.model import Mode
from worker.observe import logs
from worker.options import job_options
from worker.run.prepare import Prepared, UsageError, prepare
from worker.run.summary import EXIT_USAGE
from worker.settings import ConfigError, build_settings


def _fail_usage(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _run_loop(main: Callable[[], Coroutine[Any, Any, int]], use_uvloop: bool) -> int:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is optional off Linux/macOS
            pass
        else:
            return uvloop.run(main())
    return asyncio.run(main())


def _go_ahead(prepared: Prepared) -> bool:
    """The preview (always for --dry-run), and on a terminal the question (preview.py)."""
    from worker.run import preview

    if prepared.settings.dry_run:
        click.echo(preview.render(prepared), err=True)
        return True
    if not preview.should_ask(prepared, sys.stdin.isatty() and sys.stderr.isatty()):
        return True
    click.echo(preview.render(prepared), err=True)

    def ask(question: str) -> str:
        try:
            return str(click.prompt(question, default="", show_default=False, err=True))
        except click.Abort:  # Ctrl-D / Ctrl-C at the question
            return ""

    return preview.confirmed(prepared, ask)


def _job(mode: Mode, kw: dict[str, Any]) -> None:
    try:
        settings = build_settings(mode, kw, os.environ)
    except ConfigError as exc:
        _fail_usage(str(exc))
        return
    logs.configure(settings.log_format, settings.log_level)
    logs.REDACTOR.add(*settings.credentials.secrets())
    try:
        prepared = prepare(settings)
    except UsageError as exc:
        _fail_usage(str(exc))
        return
    if not _go_ahead(prepared):
        prepared.store.close()
        prepared.lock.release()
        _fail_usage("not confirmed: nothing was sent")
        return
    from worker.run.main import execute

    try:
        command = shlex.join(["cancel-worker", *sys.argv[1:]])
        code = _run_loop(lambda: execute(prepared, command), settings.use_uvloop)
    except UsageError as exc:
        _fail_usage(str(exc))
        return
    sys.exit(code)


class _Commands(click.Group):
    """The subcommands; `sandbox` is imported only when it is asked for (by name or by
    --help): its server code was an eighth of every run's start-up time."""

    _LAZY: ClassVar[dict[str, tuple[str, str]]] = {
        "sandbox": ("worker.sandbox.cli", "sandbox_command")
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._LAZY:
            module, name = self._LAZY[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), name)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="cancel-worker")
def cli() -> None:
    """Cancel (void) authorized Bambora card payments in bulk, from a CSV or JSON Lines file.

    \b
    Credentials and endpoints come from the environment:
      BAMBORA_CLIENT_ID, BAMBORA_CLIENT_SECRET (or BAMBORA_CLIENT_SECRET_FILE)
      BAMBORA_TOKEN            a ready JWT instead (cannot be refreshed)
      BAMBORA_API_URL          default https://api.bambora.com
      BAMBORA_AUTH_URL         default https://auth.bambora.com/connect/token
      BAMBORA_MERCHANT_NUMBER  same as --merchant

    \b
    Try it without credentials:
      cancel-worker run samples/payments.csv --sandbox

    \b
    Exit codes: 0 all canceled (or already canceled), 1 finished but some references
    ended otherwise (see the report), 2 usage/input error (nothing sent), 3 aborted
    (credentials refused, API unreachable, report unwritable), 4 stopped by a guard
    rail (a wrong merchant, credentials or file: nothing else sent), 130/143
    interrupted. Rerunning the same command resumes from the report and never cancels
    anything twice.

    \b
    Every option can also be set as CANCEL_WORKER_<OPTION> (see --help of run).
    """


@cli.command()
@job_options(run=True)
def run(**kw: Any) -> None:
    """Cancel every payment reference in INPUT (a path, or - for stdin).

    Writes one report row per reference. If the report exists, it is resumed:
    references already final are not sent again, `failed` ones are retried.
    """
    _job(Mode.RUN, kw)


@cli.command()
@job_options(run=False)
def check(**kw: Any) -> None:
    """Query each payment's state and cancel nothing (outcome `checked` + payment_state).

    Use it before the nightly run to see what would happen, or the morning after
    to audit a report against the API.
    """
    _job(Mode.CHECK, kw)


@cli.command("merge-reports")
@click.argument("out", type=click.Path())
@click.argument("reports", nargs=-1, required=True, type=click.Path())
@click.option(
    "--input",
    "input_path",
    type=click.Path(),
    help=(
        "Also check every row of this input file against the merged report: the row on "
        "its line, with its merchant and reference."
    ),
)
@click.option(
    "--merchant",
    envvar="BAMBORA_MERCHANT_NUMBER",
    help=(
        "With --input: merchant number for rows that name none, as for run. "
        "[env: BAMBORA_MERCHANT_NUMBER]"
    ),
)
def merge_reports(
    out: str, reports: tuple[str, ...], input_path: str | None, merchant: str | None
) -> None:
    """Combine shard reports into OUT, checking that no reference is missing or doubled.

    OUT may not be one of the reports (or a run record, or the input); it is written
    whole or not at all, with OUT.runs.jsonl beside it: every shard's run records, then
    a totals record.
    """
    # Paths are checked by merge itself (not click), so every mistake is one line, exit 2.
    from worker.report.merge import MergeError, Refused, UnreadableReport, merge

    logs.configure(None)
    try:
        merged = merge(
            Path(out),
            [Path(r) for r in reports],
            Path(input_path) if input_path else None,
            merchant,
        )
    except (UnreadableReport, Refused) as exc:
        _fail_usage(str(exc))
        return
    except MergeError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    for line in merged.lines():
        click.echo(line)


def main() -> None:
    """The console command. A usage error is one line, like every other user error."""
    try:
        code = cli.main(prog_name="cancel-worker", standalone_mode=False)
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"Error: {exc.format_message()}{where}", err=True)
        sys.exit(EXIT_USAGE)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
