"""Options of `run` and `check`: one table, each with its environment variable.

Every option can also be set as `CANCEL_WORKER_<OPTION>` (`--max-attempts` ->
`CANCEL_WORKER_MAX_ATTEMPTS`; flags take `1`/`true`/`yes`), shown in `--help`, so a
container is configured like a shell; the older `BAMBORA_MERCHANT_NUMBER` still sets
`--merchant`, and `JOB_COMPLETION_INDEX` with `SHARD_COUNT` still set the shard.
Defaults come from `settings` (the one place they live). Options that mean nothing
for `check` (it sends no cancel) are offered by `run` only.

The environment is checked like input (`check_environment`): click ignores a variable
it does not know and reads an empty one as unset, so `CANCEL_WORKER_RATES=5` would
change nothing and `CANCEL_WORKER_DRY_RUN=` would run for real.

`PANELS` groups the options for `--help` (rendered by rich-click), most-used first. It
is metadata beside the definitions, not a second list of them: an option added without
a panel still shows, under "Other options", and a test fails until it is given one.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Container, Iterable, Mapping
from typing import Any

import click
import rich_click
from click.core import ParameterSource

from worker.errors import ConfigError
from worker.settings import MAX_COMMENT, RETRYABLE, SANDBOX_TIMEOUT, default, size_text

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
ENV_PREFIX = "CANCEL_WORKER_"


class FiniteRange(click.FloatRange):
    """click's FloatRange, less `nan` and `inf`: both pass its bounds (a NaN compares
    false with everything), and then turn a rate, a timeout or a give-up off unseen."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(
                f"{value!r} is not a finite number (range: {self._describe_range()}).", param, ctx
            )
        return number


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


#: `--help` panels in order, each with its options in order (most-used first). `check`
#: skips the names it does not have.
PANELS: dict[str, list[str]] = {
    "What to cancel": [
        "--merchant",
        "--comment",
        "--shard",
        "--retry-outcomes",
        "--input-format",
        "--delimiter",
        "--multiline-cells",
    ],
    "Safety": [
        "--dry-run",
        "--yes",
        "--confirm",
        "--sandbox",
        "--max-references",
        "--stop-on-rejections",
        "--strict",
    ],
    "How fast": [
        "--rate",
        "--concurrency",
        "--max-attempts",
        "--timeout",
        "--give-up-after",
        "--grace-seconds",
        "--memory-budget",
        "--no-uvloop",
    ],
    "Report": ["--report", "--echo-columns", "--allow-changed-input", "--no-card"],
    "Connection": ["--ca-bundle"],
    "Output": [
        "--log-format",
        "--log-level",
        "--progress-seconds",
        "--pushgateway",
        "--job-name",
        "--help",
    ],
}
#: Where rich-click puts an option that no panel names (see the module docstring).
OTHER_PANEL = "Other options"


class EnvOption(click.Option):
    """An option also read from the environment, whose error names the variable only
    when the value came from it (click names it even for a value typed on the line)."""

    def get_error_hint(self, ctx: click.Context | None) -> str:
        hint = " / ".join(f"'{opt}'" for opt in self.opts)
        if ctx is None or self.name is None:
            return hint
        if ctx.get_parameter_source(self.name) is not ParameterSource.ENVIRONMENT:
            return hint
        return f"{hint} (from {' or '.join(_envvars(self))})"


def _opt(flag: str, *decls: str, env: tuple[str, ...] = (), **kw: Any) -> Decorator:
    names = list(dict.fromkeys([*env, env_name(flag)]))  # each variable named once
    return click.option(flag, *decls, cls=EnvOption, envvar=names, show_envvar=True, **kw)


def _tuned(flag: str, kind: click.ParamType[Any], help: str, metavar: str = "") -> Decorator:
    """An option whose default is the setting's own, shown in --help."""
    name = flag.lstrip("-").replace("-", "_")
    metavar = metavar or ("N" if isinstance(kind, click.IntRange) else "S")
    return _opt(
        flag, type=kind, default=default(name), show_default=True, help=help, metavar=metavar
    )


def _common(run: bool) -> list[Decorator]:
    named = (
        "<INPUT name>.report.csv (.dry-run.csv with --dry-run)" if run else "<INPUT name>.check.csv"
    )
    return [
        click.argument("input", metavar="INPUT"),
        _opt(
            "--report",
            type=click.Path(dir_okay=False),
            metavar="PATH",
            help=f"Outcome report; .jsonl gives JSON Lines. An existing report is resumed; its folder must exist. [default: {named}]",
        ),
        _opt(
            "--input-format",
            type=click.Choice(["csv", "jsonl"]),
            help="Override the format recognised from INPUT's name.",
        ),
        _opt(
            "--delimiter",
            metavar="CHAR",
            help="CSV separator: one character, or 'tab'. [default: from the header]",
        ),
        _opt(
            "--multiline-cells",
            is_flag=True,
            help=f"For a CSV whose quoted comment cells really hold line breaks: a quote may then span lines in the comment column (at most {MAX_COMMENT} characters). Without it one physical line is one row, and a quote left open at the end of its line makes that line invalid.",
        ),
        _opt(
            "--ca-bundle",
            metavar="PATH",
            help="Trust only the CAs in this PEM file (a private or corporate CA).",
        ),
        _opt(
            "--merchant",
            env=("BAMBORA_MERCHANT_NUMBER",),
            metavar="NUMBER",
            help="Merchant number for rows that name none.",
        ),
        _tuned("--concurrency", click.IntRange(1, 1024), "Requests in flight at most."),
        _tuned(
            "--rate",
            FiniteRange(0),
            "API requests per second, all workers together; 0: no limit.",
            "R",
        ),
        _tuned(
            "--max-attempts", click.IntRange(1, 100), "Tries per reference for transient failures."
        ),
        _opt(
            "--timeout",
            type=FiniteRange(0.1),
            default=None,
            metavar="S",
            help=f"Seconds per HTTP request. [default: {default('timeout'):g}; {SANDBOX_TIMEOUT:g} with --sandbox]",
        ),
        _tuned(
            "--give-up-after",
            FiniteRange(1),
            "Abort (exit 3) after this many seconds without a successful request (or of a failing token endpoint).",
        ),
        _tuned(
            "--grace-seconds",
            FiniteRange(0),
            "On SIGTERM/SIGINT, seconds in-flight requests may finish.",
        ),
        _tuned("--progress-seconds", FiniteRange(0.1), "Seconds between progress log lines."),
        _opt(
            "--max-references",
            type=click.IntRange(0),
            default=None,
            metavar="N",
            help="Refuse (exit 2) an input with more references to send than this. [default: no cap]",
        ),
        _tuned(
            "--stop-on-rejections",
            click.IntRange(0),
            "Stop (exit 4) when the first K answers are all not_found or rejected (or a "
            "page with no payment state: a wrong URL); 0: off.",
            "K",
        ),
        _opt(
            "--sandbox",
            is_flag=True,
            help="Run against the embedded sandbox on loopback; no credentials needed.",
        ),
        _opt(
            "--shard",
            "shard_text",
            metavar="I/N",
            env=("CANCEL_WORKER_SHARD",),
            help="Only shard I of N (I from 0 to N-1). [also: JOB_COMPLETION_INDEX with SHARD_COUNT]",
        ),
        _opt(
            "--log-format",
            type=click.Choice(["json", "console"]),
            help="Log lines on standard error. [default: console on a terminal, else json]",
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
            help="Push the run's metrics to this Prometheus Pushgateway at the end.",
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
            help="Resume a report although its input changed (you fixed some rows).",
        ),
        _opt(
            "--echo-columns",
            default=default("echo_columns"),
            show_default=True,
            metavar="all|none|A,B,...",
            help="Input columns the report repeats after its own.",
        ),
        _opt(
            "--strict",
            is_flag=True,
            help="Exit 1 for not_cancelable or not_found rows too (by default: follow-ups, exit 0).",
        ),
        _opt(
            "--no-card",
            is_flag=True,
            help="Do not write the report card (<report>.html, the night as one page).",
        ),
        _opt(
            "--memory-budget",
            metavar="SIZE",
            help="Memory for exact duplicate and resume maps before they move to <report>.index.sqlite (removed at the end), e.g. 64MB, 512MiB. "
            f"[default: {size_text(default('memory_budget'))}]",
        ),
        _opt(
            "--no-uvloop",
            is_flag=True,
            help="Use asyncio's own event loop even when uvloop is installed.",
        ),
    ]


def _run_only() -> list[Decorator]:
    return [
        _opt(
            "--comment",
            help=f"Cancel comment for rows without one (at most {MAX_COMMENT} characters).",
        ),
        _opt(
            "--dry-run",
            is_flag=True,
            help="Validate, preview and write the report; send nothing.",
        ),
        _opt(
            "--yes",
            "-y",
            is_flag=True,
            help="Do not ask on a terminal before sending (without one, nothing is asked).",
        ),
        _opt(
            "--confirm",
            is_flag=True,
            help="Ask before sending even against loopback or the sandbox: to rehearse the question.",
        ),
        _opt(
            "--retry-outcomes",
            metavar="OUTCOME,...",
            default="",
            help=f"Send again references that ended so (of: {', '.join(sorted(RETRYABLE))}). [default: none]",
        ),
    ]


def job_options(*, run: bool) -> Decorator:
    """The options of `run` (`run=True`) or `check`, in --help order."""

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(_common(run) + (_run_only() if run else [])):
            func = option(func)
        for name, flags in reversed(PANELS.items()):
            func = rich_click.option_panel(name, options=flags)(func)
        return func

    return apply


def from_environment(ctx: click.Context, env: Mapping[str, str]) -> dict[str, str]:
    """Option -> the variable its value came from, for the options the environment set:
    an error found after parsing (a shard out of range) names it, as click's own do."""
    found = {}
    for param in ctx.command.params:
        if param.name and ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT:
            name = next((n for n in _envvars(param) if n in env), None)
            flag = next((o for o in param.opts if o.startswith("--")), None)
            if name and flag:
                found[flag] = name
    return found


def _envvars(param: click.Parameter) -> list[str]:
    names = param.envvar
    if not names:
        return []
    return [names] if isinstance(names, str) else list(names)


def _takes_number(param: click.Parameter) -> bool:
    return isinstance(param.type, click.types.IntParamType | click.types.FloatParamType)


def check_environment(
    env: Mapping[str, str], commands: Iterable[click.Command], typed: Container[str] = ()
) -> None:
    """Refuse (ConfigError, exit 2) what the environment would otherwise do silently.

    - a `CANCEL_WORKER_*` variable that no option of `commands` reads (a misspelling:
      `CANCEL_WORKER_RATES`, `CANCEL_WORKER_MERCHANT_NUMBER`), naming the closest name;
    - an empty value for a flag or a number (click reads it as unset, so a template
      that leaves `CANCEL_WORKER_DRY_RUN` empty would run for real);
    - two variables of one option set to different values (`BAMBORA_MERCHANT_NUMBER`
      and `CANCEL_WORKER_MERCHANT`): click would take the first, silently; unless the
      option is `typed` on the command line, which wins over both.

    The known names come from the options themselves, so an option added later is known
    without a list to keep up to date. One pod template may serve `run` and `check`, so
    each command knows the other's names too.
    """
    owners = {name: param for cmd in commands for param in cmd.params for name in _envvars(param)}
    ours = sorted(name for name in owners if name.startswith(ENV_PREFIX))
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in owners:
            raise ConfigError(f"unknown environment variable {name}: {_hint(name, ours, owners)}")
    for param in {id(p): p for p in owners.values()}.values():
        if param.name in typed:
            continue
        values = {n: env[n].strip() for n in _envvars(param) if env.get(n, "").strip()}
        if len(set(values.values())) > 1:
            raise ConfigError(f"{' and '.join(values)} disagree: set one of them")
    for name, param in owners.items():
        if name not in env or env[name].strip() or not isinstance(param, click.Option):
            continue
        if param.is_flag or _takes_number(param):
            wants = "1, true or yes (or 0, false, no)" if param.is_flag else "a number"
            raise ConfigError(
                f"environment variable {name} is empty: set it to {wants}, or unset it"
            )


def _hint(name: str, known: list[str], owners: Mapping[str, click.Parameter]) -> str:
    # Compared without the prefix every name shares, which would make anything "close".
    tail = name.removeprefix(ENV_PREFIX)
    close = difflib.get_close_matches(tail, [k.removeprefix(ENV_PREFIX) for k in known], n=1)
    if not close:
        return "no option reads it (every option's variable is shown in --help)"
    best = ENV_PREFIX + close[0]
    others = [n for n in _envvars(owners[best]) if n != best]
    also = f" (or {', '.join(others)})" if others else ""
    return f"did you mean {best}{also}?"
