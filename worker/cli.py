"""CLI: parses options and the environment into `Settings`, runs a job, maps it to an exit code.

    cancel-worker run INPUT [options]        cancel every payment reference in INPUT
    cancel-worker check INPUT [options]      query each payment's state, cancel nothing
    cancel-worker sandbox [--host H] [--port P] [options]
    cancel-worker merge-reports OUT REPORT...

Exit codes: 0 all done, 1 finished with some references not canceled, 2 usage or
input error (nothing sent), 3 aborted (credentials refused or API unreachable),
130/143 interrupted (rerun the same command to resume).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from worker import __version__
from worker.model import Mode
from worker.observe import logs
from worker.run.prepare import UsageError, prepare
from worker.run.summary import EXIT_USAGE
from worker.sandbox.cli import sandbox_command
from worker.settings import (
    MAX_COMMENT,
    SANDBOX_TIMEOUT,
    ConfigError,
    build_settings,
    default,
)


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


def _tuned(flag: str, kind: click.ParamType[Any], help: str) -> Callable[..., Any]:
    """An option whose default is the setting's own (settings.py), shown in --help."""
    name = flag.lstrip("-").replace("-", "_")
    return click.option(flag, type=kind, default=default(name), show_default=True, help=help)


def _job_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("input", metavar="INPUT"),
        click.option(
            "--report",
            type=click.Path(dir_okay=False),
            help="Outcome report (default: <INPUT name>.report.csv in the working directory; a .jsonl name gives JSON Lines). An existing report is resumed.",
        ),
        click.option(
            "--input-format",
            type=click.Choice(["csv", "jsonl"]),
            help="Override the format recognised from INPUT's name.",
        ),
        click.option(
            "--merchant",
            envvar="BAMBORA_MERCHANT_NUMBER",
            help="Merchant number for rows that name none. [env: BAMBORA_MERCHANT_NUMBER]",
        ),
        _tuned("--concurrency", click.IntRange(1, 1024), "Requests in flight at most."),
        _tuned(
            "--rate",
            click.FloatRange(0),
            "API requests per second at most, all workers together (no 1-second window carries more than RATE + 1; token requests not counted). 0 means no limit.",
        ),
        _tuned(
            "--max-attempts", click.IntRange(1, 100), "Tries per reference for transient failures."
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(0.1),
            default=None,
            help=f"Seconds per HTTP request. [default: {default('timeout'):g}; {SANDBOX_TIMEOUT:g} with --sandbox]",
        ),
        click.option(
            "--comment",
            help=f"Sent as the cancel body's comment (at most {MAX_COMMENT} characters).",
        ),
        _tuned(
            "--give-up-after",
            click.FloatRange(1),
            "Abort (exit 3) when no API request has succeeded for this many seconds.",
        ),
        _tuned(
            "--grace-seconds",
            click.FloatRange(0),
            "On SIGTERM/SIGINT, how long in-flight requests may finish.",
        ),
        _tuned("--progress-seconds", click.FloatRange(0.1), "Seconds between progress log lines."),
        click.option(
            "--sandbox",
            is_flag=True,
            help="Start the embedded Bambora sandbox on loopback and run against it; no credentials needed.",
        ),
        click.option(
            "--dry-run",
            is_flag=True,
            help="Read and validate the input and write the report; send nothing.",
        ),
        click.option(
            "--shard",
            "shard_text",
            metavar="I/N",
            help="Only the references whose stable hash falls in shard I of N. [env: JOB_COMPLETION_INDEX with SHARD_COUNT]",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["json", "console"]),
            help="Log lines on standard error. [default: console on a terminal, json otherwise]",
        ),
        _tuned(
            "--log-level",
            click.Choice(["debug", "info", "warning"]),
            "debug adds one event per reference.",
        ),
        click.option(
            "--pushgateway",
            metavar="URL",
            help="Push-add run metrics to this Prometheus Pushgateway at the end (grouped by job and shard).",
        ),
        click.option(
            "--job-name",
            default=default("job_name"),
            show_default=True,
            help="Job label for --pushgateway.",
        ),
        click.option(
            "--allow-changed-input",
            is_flag=True,
            help="Resume a report although its input file changed (you fixed some rows): rows already final are not sent again, changed lines are reported afresh.",
        ),
        click.option(
            "--echo-columns",
            default=default("echo_columns"),
            show_default=True,
            metavar="all|none|A,B,...",
            help="Which other columns of each input row the report repeats after its own.",
        ),
        click.option(
            "--no-uvloop",
            is_flag=True,
            help="Use asyncio's default event loop even when uvloop is installed.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


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
    from worker.run.main import execute

    try:
        command = shlex.join(["cancel-worker", *sys.argv[1:]])
        code = _run_loop(lambda: execute(prepared, command), settings.use_uvloop)
    except UsageError as exc:
        _fail_usage(str(exc))
        return
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    (credentials refused or API unreachable), 130/143 interrupted. Rerunning the same
    command resumes from the report and never cancels anything twice.
    """


@cli.command()
@_job_options
def run(**kw: Any) -> None:
    """Cancel every payment reference in INPUT (a path, or - for stdin).

    Writes one report row per reference. If the report exists, it is resumed:
    references already final are not sent again, `failed` ones are retried.
    """
    _job(Mode.RUN, kw)


@cli.command()
@_job_options
def check(**kw: Any) -> None:
    """Query each payment's state and cancel nothing (outcome `checked` + payment_state).

    Use it before the nightly run to see what would happen, or the morning after
    to audit a report against the API.
    """
    _job(Mode.CHECK, kw)


cli.add_command(sandbox_command, name="sandbox")


@cli.command("merge-reports")
@click.argument("out", type=click.Path())
@click.argument("reports", nargs=-1, required=True, type=click.Path())
@click.option(
    "--input",
    "input_path",
    type=click.Path(),
    help="Also check every row of this input file against the merged report: the row on its line, with its merchant and reference.",
)
@click.option(
    "--merchant",
    envvar="BAMBORA_MERCHANT_NUMBER",
    help="With --input: merchant number for rows that name none, as for run. [env: BAMBORA_MERCHANT_NUMBER]",
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
    cli(prog_name="cancel-worker")
