"""CLI: parses options and the environment into `Settings`, runs a job, maps it to an exit code.

    cancel-worker run INPUT [options]        cancel every payment reference in INPUT
    cancel-worker check INPUT [options]      query each payment's state, cancel nothing
    cancel-worker sandbox [--host H] [--port P] [options]
    cancel-worker merge-reports OUT REPORT...
    cancel-worker report-card REPORT [--out FILE]

Exit codes: the table in `worker.exits` (shown by --help). Every error the worker
raises is a `worker.errors.CancelWorkerError` carrying its exit code: `main` alone
turns one into its "Error: " line and its code.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shlex
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import click
import rich_click
from click.core import ParameterSource

from worker import __version__
from worker.errors import CancelWorkerError, ReportError, UsageError
from worker.exits import Exit, help_text
from worker.model import Mode
from worker.observe import logs
from worker.options import OTHER_PANEL, check_environment, from_environment, job_options
from worker.run import eventloop
from worker.run.prepare import Prepared, prepare
from worker.settings import build_settings


def _fail(exc: CancelWorkerError) -> NoReturn:
    """An error of the worker's tree: its one line, then its class's exit code."""
    _warn(f"Error: {logs.mask(str(exc))}")
    sys.exit(int(exc.exit_code))


def _warn(line: str) -> None:
    """A line on standard error. If it cannot be written (a closed pipe, a full disk
    under `2>file`), the exit code still says what happened: a usage error is 2 even
    when its line is lost, never the 1 of an uncaught write error."""
    try:
        click.echo(line, err=True)
    except OSError:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())


def _refusal(prepared: Prepared) -> str | None:
    """Why nothing may be sent, or None to go ahead: the preview (always for --dry-run),
    and when a person is asked (preview.py), their answer, on the terminal itself."""
    from worker.run import preview

    if prepared.settings.dry_run:
        click.echo(logs.mask(preview.render(prepared)), err=True)
        return None
    person = sys.stdin is not None and sys.stdin.isatty()
    if not preview.should_ask(prepared, person):
        return None
    if (counts := prepared.to_send) is not None and not sum(counts.values()):
        return None  # nothing to send, nobody asked: no `confirmed` event either
    terminal = preview.Terminal.open()
    if terminal is None:  # only --confirm asks without a person at a terminal
        return "not confirmed: --confirm needs a terminal to ask on; nothing was sent"
    with terminal:
        terminal.say(logs.mask(preview.render(prepared)))
        if not preview.confirmed(prepared, terminal.ask):
            return "not confirmed: nothing was sent"
    logs.log.info("confirmed", references=sum(counts.values()) if counts is not None else None)
    return None


@contextlib.contextmanager
def _naming_variables() -> Iterator[None]:
    """An error about an option whose value came from the environment (`--shard 3/3:
    ...` from CANCEL_WORKER_SHARD) names the variable, as click's own errors do."""
    try:
        yield
    except UsageError as exc:
        text = str(exc)
        for flag, name in from_environment(click.get_current_context(), os.environ).items():
            if re.match(rf"{flag}\b", text):  # said last: the message itself stays as it is
                exc.args = (f"{text} ({flag} came from {name})",)
        raise


def _job(mode: Mode, kw: dict[str, Any]) -> None:
    """Settings, prepare, ask, run; every error raised on the way is mapped by `main`."""
    ctx = click.get_current_context()
    typed = {n for n in ctx.params if ctx.get_parameter_source(n) is ParameterSource.COMMANDLINE}
    check_environment(os.environ, _commands(), typed)
    with _naming_variables():
        settings = build_settings(mode, kw, os.environ)
    logs.configure(settings.log_format, settings.log_level)
    logs.REDACTOR.add(*settings.credentials.secrets())
    eventloop.tune_collector()
    with _naming_variables():
        prepared = prepare(settings)
    try:  # the preview's exact count reads the file once more: InputError
        refusal = _refusal(prepared)
        if refusal is not None:
            raise UsageError(refusal)
    except BaseException:
        prepared.store.close()
        prepared.lock.release()
        raise
    from worker.run.main import execute

    command = shlex.join(["cancel-worker", *sys.argv[1:]])
    sys.exit(eventloop.run_loop(lambda: execute(prepared, command), settings.use_uvloop))


def _commands() -> list[click.Command]:
    """Every command whose options name an environment variable: `run`'s siblings."""
    ctx = click.get_current_context()
    root = ctx.find_root().command
    return list(root.commands.values()) if isinstance(root, click.Group) else [ctx.command]


#: `--help` layout (rich-click): panels no wider than 80 columns, options not placed in
#: a panel of `worker.options.PANELS` under OTHER_PANEL, and markup only where written.
HELP = rich_click.RichHelpConfiguration(
    max_width=80,
    options_panel_title=OTHER_PANEL,
    text_markup=None,
    show_arguments=False,
    options_table_column_types=["opt_short", "opt_long_metavar", "help"],
    options_table_help_sections=["help", "default", "envvar"],
    text_paragraph_linebreaks="\n\n",
    padding_helptext_first_line=(0, 0, 1, 0),
)

#: What a bare `cancel-worker` prints: the three commands most people need.
SHORT_USAGE = """\
Usage: cancel-worker COMMAND [ARGS]...

Most used:
  cancel-worker run samples/payments.csv --sandbox   try it, no credentials
  cancel-worker check payments.csv                   see states, cancel nothing
  cancel-worker run payments.csv --dry-run           validate, send nothing
  cancel-worker run payments.csv                     cancel (rerun it to resume)

All commands and options: cancel-worker --help, cancel-worker run --help"""


class _Commands(rich_click.RichGroup):
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


def _exit_codes() -> str:
    """The exit table for --help, wrapped to fit 80 columns with its indent kept."""
    return "\n".join(
        textwrap.fill(line[2:], 74, initial_indent="    ", subsequent_indent=" " * 11)
        for line in help_text().splitlines()
    )


CLI_HELP = f"""Cancel (void) authorized Bambora card payments in bulk, from a CSV or JSON
Lines file: rate-limited, retried, and resumed by rerunning the same command, never
cancelling anything twice.

Try it without credentials:
    cancel-worker run samples/payments.csv --sandbox

Credentials and endpoints come from the environment:
    BAMBORA_CLIENT_ID with BAMBORA_CLIENT_SECRET (or _SECRET_FILE)
    BAMBORA_TOKEN         a ready JWT instead (cannot be refreshed)
    BAMBORA_API_URL       default https://api.bambora.com
    BAMBORA_AUTH_URL      default https://auth.bambora.com/connect/token

Exit codes:
{_exit_codes()}
"""


@rich_click.group(
    cls=_Commands,
    help=CLI_HELP,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "rich_help_config": HELP},
)
@click.version_option(__version__, prog_name="cancel-worker")
@rich_click.option_panel("Options", options=["--version", "--help"])
@click.pass_context
def cli(ctx: click.Context) -> None:
    if ctx.invoked_subcommand is None:  # a bare `cancel-worker`: where to start, not a wall
        click.echo(SHORT_USAGE)


@cli.command()
@job_options(run=True)
def run(**kw: Any) -> None:
    """Cancel every payment reference in INPUT (a path, or - for stdin).

    Writes one report row per reference. If the report exists, it is resumed:
    references already final are not sent again, `failed` ones are retried.
    Every option can also be set as CANCEL_WORKER_<OPTION> (--max-attempts 3:
    CANCEL_WORKER_MAX_ATTEMPTS=3; a flag takes 1, true or yes).
    """
    _job(Mode.RUN, kw)


@cli.command()
@job_options(run=False)
def check(**kw: Any) -> None:
    """Query each payment's state and cancel nothing (outcome `checked`).

    Use it before the nightly run to see what would happen, or the morning after
    to audit a report against the API. Every option can also be set as
    CANCEL_WORKER_<OPTION> (--rate 5: CANCEL_WORKER_RATE=5).
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
    "--no-card",
    is_flag=True,
    envvar="CANCEL_WORKER_NO_CARD",
    show_envvar=True,
    help="Do not write OUT's report card (OUT.html).",
)
@click.option(
    "--merchant",
    envvar="BAMBORA_MERCHANT_NUMBER",
    show_envvar=True,
    help="With --input: merchant number for rows that name none, as for run.",
)
@rich_click.option_panel("Options", options=["--input", "--merchant", "--no-card", "--help"])
def merge_reports(
    out: str,
    reports: tuple[str, ...],
    input_path: str | None,
    no_card: bool,
    merchant: str | None,
) -> None:
    """Combine shard reports into OUT; no reference may be missing or doubled.

    Every shard of the night must be there, once (each report's shard I/N from its
    run record, else its name *.shard-I-of-N.*), finished (its last run read its whole
    input and was not stopped), all of one kind of run, one target and (without
    --input) one input.

    OUT may not be one of the reports (or a run record, or the input); it is written
    whole or not at all, with OUT.runs.jsonl beside it: every shard's run records, then
    a totals record, and its report card OUT.html (one HTML page of the night).
    """
    # Paths are checked by merge itself (not click), so every mistake is one line, exit 2
    # (UnreadableReport, OutRefused); shards that do not add up are exit 1 (MergeError).
    from worker.report.merge import merge

    logs.configure(None)
    shards, companions = _reports_only([Path(r) for r in reports])
    merged = merge(Path(out), shards, Path(input_path) if input_path else None, merchant)
    for line in merged.lines():
        _say(line)
    for path in companions:
        _say(f"not a report, skipped: {path} (a file the run keeps beside its report)")
    if not no_card:
        _card(Path(out), None, fatal=False)


def _reports_only(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The reports among `paths`, and the files a run keeps beside one of them (its run
    record, report card, journal, lock, index, survey): `p.report.shard-*` names those too."""
    from worker.page.write import card_path
    from worker.report.index import index_path
    from worker.report.journal import journal_path
    from worker.report.lock import lock_path
    from worker.report.runs import runs_path
    from worker.report.survey import survey_path

    beside = {
        str(make(p))
        for p in paths
        for make in (runs_path, card_path, journal_path, lock_path, index_path, survey_path)
    }
    reports = [p for p in paths if str(p) not in beside]
    return reports, [p for p in paths if str(p) in beside]


def _card(report: Path, out: Path | None, *, fatal: bool = True) -> None:
    """Write the report card page and say where. An unreadable report is exit 2 when the
    page is what was asked for; after a merge that succeeded, only a warning."""
    from worker.page.write import write_card  # Jinja2 is loaded only here

    try:
        page = write_card(report, out)
    except (ReportError, OSError) as exc:
        why = str(exc) if isinstance(exc, ReportError) else exc.strerror or str(exc)
        if fatal:
            raise UsageError(f"cannot write the report card of {report}: {why}") from None
        else:
            click.echo(f"Warning: report card of {report} not written: {why}", err=True)
        return
    _say(f"report card: {page}")


def _say(line: str) -> None:
    """A line on standard output. A reader that went away (`| head -1`) ends the output,
    not the work: the rest goes nowhere and the exit code stays the work's (as the
    Python documentation's note on SIGPIPE advises)."""
    try:
        click.echo(line)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@cli.command("report-card")
@click.argument("report", type=click.Path())
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Where to write the page (never over the report, its run record or its "
    "input). [default: REPORT.html, beside the report]",
)
@rich_click.option_panel("Options", options=["--out", "--help"])
def report_card(report: str, out: str | None) -> None:
    """Write REPORT's report card: one self-contained HTML page of the night.

    Built from REPORT and REPORT.runs.jsonl alone: the verdict, outcomes, money
    released and still held per currency, the follow-up lists, the night over time,
    per merchant and per shard. It loads nothing and runs no script; it opens from
    a file and prints on A4. The page has the report's file mode.
    """
    path = Path(report)
    if not path.is_file():
        raise UsageError(f"report {report} does not exist or is not a file")
    _card(path, Path(out) if out else None)


def main() -> None:
    """The console command, and the one place errors become exit codes: a
    `CancelWorkerError` is one "Error: " line and its class's code; click's own usage
    errors are one line too, exit 2."""
    try:
        code = cli.main(prog_name="cancel-worker", standalone_mode=False)
    except CancelWorkerError as exc:
        _fail(exc)
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _warn(f"Error: {logs.mask(exc.format_message())}{where}")
        sys.exit(int(Exit.USAGE))
    except click.Abort:
        _warn("Aborted.")
        sys.exit(int(Exit.SIGINT))
    except click.ClickException as exc:
        _warn(f"Error: {logs.mask(exc.format_message())}")
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else int(Exit.OK))
