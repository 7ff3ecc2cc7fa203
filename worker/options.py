"""Options of `run` and `check`: one table, each with its environment variable.

Every option can also be set as `CANCEL_WORKER_<OPTION>` (`--max-attempts` ->
`CANCEL_WORKER_MAX_ATTEMPTS`; flags take `1`/`true`/`yes`), shown in `--help`, so a
container is configured like a shell; the older `BAMBORA_MERCHANT_NUMBER` still sets
`--merchant`, and `JOB_COMPLETION_INDEX` with `SHARD_COUNT` still set the shard.
Defaults come from `settings` (the one place they live). Options that mean nothing
for `check` (it sends no cancel) are offered by `run` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from worker.settings import MAX_COMMENT, RETRYABLE, SANDBOX_TIMEOUT, default, size_text

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
ENV_PREFIX = "CANCEL_WORKER_"


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def _opt(flag: str, *decls: str, env: tuple[str, ...] = (), **kw: Any) -> Decorator:
    return click.option(flag, *decls, envvar=[*env, env_name(flag)], show_envvar=True, **kw)


def _tuned(flag: str, kind: click.ParamType[Any], help: str) -> Decorator:
    """An option whose default is the setting's own, shown in --help."""
    name = flag.lstrip("-").replace("-", "_")
    return _opt(flag, type=kind, default=default(name), show_default=True, help=help)


def _common() -> list[Decorator]:
    return [
        click.argument("input", metavar="INPUT"),
        _opt(
            "--report",
            type=click.Path(dir_okay=False),
            help="Outcome report (default: <INPUT name>.report.csv for run, .check.csv for check, .dry-run.csv for --dry-run, in the working directory; a .jsonl name gives JSON Lines). An existing report is resumed; its folder must exist.",
        ),
        _opt(
            "--input-format",
            type=click.Choice(["csv", "jsonl"]),
            help="Override the format recognised from INPUT's name.",
        ),
        _opt(
            "--delimiter",
            metavar="CHAR",
            help="CSV separator: one character, or 'tab'. [default: detected from the header: , ; tab or |]",
        ),
        _opt(
            "--ca-bundle",
            metavar="PATH",
            help="PEM file of the CA certificates to trust instead of the system ones (a private or corporate CA); certificates are always verified.",
        ),
        _opt(
            "--merchant",
            env=("BAMBORA_MERCHANT_NUMBER",),
            help="Merchant number for rows that name none.",
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
        _opt(
            "--timeout",
            type=click.FloatRange(0.1),
            default=None,
            help=f"Seconds per HTTP request. [default: {default('timeout'):g}; {SANDBOX_TIMEOUT:g} with --sandbox]",
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
        _opt(
            "--max-references",
            type=click.IntRange(0),
            default=None,
            help="Refuse (exit 2, before any request) an input that holds more references to send than this (after validation, duplicates, shard and resume): a file ten times the usual size is a mistake. [default: no cap]",
        ),
        _tuned(
            "--stop-on-rejections",
            click.IntRange(0),
            "Stop (exit 4) when the first K references answered all end not_found or rejected: a wrong merchant, credentials or file. 0 turns it off.",
        ),
        _opt(
            "--sandbox",
            is_flag=True,
            help="Start the embedded Bambora sandbox on loopback and run against it; no credentials needed.",
        ),
        _opt(
            "--shard",
            "shard_text",
            metavar="I/N",
            env=("CANCEL_WORKER_SHARD",),
            help="Only the references whose stable hash falls in shard I of N. [also: JOB_COMPLETION_INDEX with SHARD_COUNT]",
        ),
        _opt(
            "--log-format",
            type=click.Choice(["json", "console"]),
            help="Log lines on standard error. [default: console on a terminal, json otherwise]",
        ),
        _opt(
            "--log-level",
            type=click.Choice(["debug", "info", "warning"]),
            default=default("log_level"),
            show_default=True,
            help="debug adds one event per reference.",
        ),
        _opt(
            "--pushgateway",
            metavar="URL",
            help="Push-add run metrics to this Prometheus Pushgateway at the end (grouped by job and shard).",
        ),
        _opt(
            "--job-name",
            default=default("job_name"),
            show_default=True,
            help="Job label for --pushgateway.",
        ),
        _opt(
            "--allow-changed-input",
            is_flag=True,
            help="Resume a report although its input file changed (you fixed some rows): rows already final are not sent again, changed lines are reported afresh.",
        ),
        _opt(
            "--echo-columns",
            default=default("echo_columns"),
            show_default=True,
            metavar="all|none|A,B,...",
            help="Which other columns of each input row the report repeats after its own.",
        ),
        _opt(
            "--memory-budget",
            metavar="SIZE",
            help="Memory the exact duplicate and resume maps may take (standard input, a resume after a changed input, the journal) before they move to an on-disk index beside the report (<report>.index.sqlite, removed at the end). E.g. 64MB, 512MiB. "
            f"[default: {size_text(default('memory_budget'))}]",
        ),
        _opt(
            "--no-uvloop",
            is_flag=True,
            help="Use asyncio's default event loop even when uvloop is installed.",
        ),
    ]


def _run_only() -> list[Decorator]:
    return [
        _opt(
            "--comment",
            help=f"Sent as the cancel body's comment for rows whose own comment cell is empty (at most {MAX_COMMENT} characters).",
        ),
        _opt(
            "--dry-run",
            is_flag=True,
            help="Read and validate the input, print the preview and write the report; send nothing.",
        ),
        _opt(
            "--yes",
            "-y",
            is_flag=True,
            help="Do not ask before sending (on a terminal, run shows what it is about to do and asks first; without a terminal it never asks).",
        ),
        _opt(
            "--retry-outcomes",
            metavar="OUTCOME,...",
            default="",
            help=f"Send again the references whose latest report row has one of these outcomes (of: {', '.join(sorted(RETRYABLE))}), e.g. after fixing credentials that were refused. [default: none]",
        ),
    ]


def job_options(*, run: bool) -> Decorator:
    """The options of `run` (`run=True`) or `check`, in --help order."""

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(_common() + (_run_only() if run else [])):
            func = option(func)
        return func

    return apply
