"""The CLI's help and usage errors, read as a newcomer reads them: at 80 columns."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from tests.inprocess import invoke
from worker import cli
from worker.options import OTHER_PANEL, PANELS, env_name

WIDTH = 80


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.delenv("TERMINAL_WIDTH", raising=False)
    for name in ("CANCEL_WORKER_RATE", "CANCEL_WORKER_SHARD", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(name, raising=False)


def options_of(name: str) -> list[str]:
    """The long flag of every option of a command (not its argument)."""
    ctx = click.Context(cli.cli)
    command = cli.cli.get_command(ctx, name)
    assert command is not None
    return [p.opts[0] for p in command.params if isinstance(p, click.Option)]


def panels_in(help_text: str) -> list[str]:
    return re.findall(r"^╭─ (.+?) ─", help_text, flags=re.MULTILINE)


def panel_body(help_text: str, title: str) -> str:
    start = help_text.index(f"╭─ {title} ")
    return help_text[start : help_text.index("╰", start)]


@pytest.mark.parametrize("command", ["run", "check"])
def test_every_option_is_in_a_named_panel(command: str) -> None:
    # A branch that adds an option must place it: unplaced ones fall into OTHER_PANEL.
    placed = {flag for flags in PANELS.values() for flag in flags}
    assert [flag for flag in options_of(command) if flag not in placed] == []


def test_run_help_shows_its_options_in_panels_at_80_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = invoke(capsys, "run", "--help")
    assert code == 0
    assert panels_in(out) == list(PANELS)  # in order, and no catch-all panel
    assert OTHER_PANEL not in out
    assert max(len(line) for line in out.splitlines()) <= WIDTH
    for title, flags in PANELS.items():
        body = panel_body(out, title)
        shown = [f for f in flags if re.search(rf"{re.escape(f)}\b", body)]
        assert shown == [f for f in flags if f in options_of("run") or f == "--help"], title
    # The most-used first: what to cancel and the safety switches before the tuning.
    assert out.index("--dry-run") < out.index("--concurrency") < out.index("--log-level")


def test_an_environment_variable_is_named_once(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = invoke(capsys, "run", "--help")
    panels = out[out.index("╭─ ") :]  # the options, not the text above them
    text = "".join(re.sub(r"[│\s]+", "", line) for line in panels.splitlines())
    for flag in options_of("run"):
        assert text.count(env_name(flag)) == 1, flag  # --shard named it twice
    assert text.count("BAMBORA_MERCHANT_NUMBER") == 1


def test_check_help_does_not_describe_the_defaults_of_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = invoke(capsys, "check", "--help")
    text = " ".join(out.split())
    assert ".check.csv" in text
    assert ".report.csv" not in text and "dry-run" not in text
    assert "--comment" not in text and "--yes" not in text


def test_the_command_list_is_readable_at_80_columns(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = invoke(capsys, "--help")
    assert max(len(line) for line in out.splitlines()) <= WIDTH
    commands = panel_body(out, "Commands")
    for name in ("run", "check", "sandbox", "merge-reports"):
        assert re.search(rf"│ {name} ", commands), name
    assert "..." not in commands and "…" not in commands


def test_a_bare_command_prints_a_short_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("Usage: cancel-worker")
    assert len(lines) <= 15 and max(len(line) for line in lines) <= WIDTH
    assert "Error" not in out
    for needed in ("--sandbox", "check ", "--dry-run", "run payments.csv  "):
        assert needed in out, needed


def test_a_bad_value_on_the_command_line_is_not_blamed_on_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = invoke(capsys, "run", "in.csv", "--rate", "-1")
    assert code == 2
    assert "'--rate'" in err and "CANCEL_WORKER_RATE" not in err
    monkeypatch.setenv("CANCEL_WORKER_RATE", "-1")
    code, _, err = invoke(capsys, "run", "in.csv")
    assert code == 2
    assert "'--rate' (from CANCEL_WORKER_RATE)" in err


@pytest.mark.parametrize(
    "option", ["--rate", "--timeout", "--give-up-after", "--grace-seconds", "--progress-seconds"]
)
@pytest.mark.parametrize("value", ["nan", "inf", "1e400"])
def test_nan_and_infinity_are_usage_errors(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    """They passed the ranges: `--rate inf` was a traceback (exit 1) after the report
    was made, `--timeout nan` no timeout, `--give-up-after nan` never giving up."""
    code, _, err = invoke(capsys, "run", "in.csv", option, value)
    assert code == 2, err
    assert f"'{option}': '{value}' is not a finite number" in err


def test_a_shard_past_the_last_says_shards_count_from_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = invoke(capsys, "run", "in.csv", "--shard", "3/3")
    assert code == 2
    assert err.strip() == "Error: --shard 3/3: shards are numbered from 0: I must be 0..2"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CANCEL_WORKER_SHARD": "3/3"}, "--shard 3/3: shards are numbered from 0: I must be"),
        ({"CANCEL_WORKER_COMMENT": "c" * 257}, "--comment is 257 characters; at most 256"),
        ({"CANCEL_WORKER_MEMORY_BUDGET": "lots"}, "--memory-budget must be a size"),
        ({"CANCEL_WORKER_DELIMITER": "xx"}, "--delimiter must be one character"),
        (
            {"JOB_COMPLETION_INDEX": "x", "SHARD_COUNT": "3"},
            "JOB_COMPLETION_INDEX/SHARD_COUNT must",
        ),
        (
            {"BAMBORA_MERCHANT_NUMBER": "B1", "CANCEL_WORKER_MERCHANT": "C1"},
            "BAMBORA_MERCHANT_NUMBER and CANCEL_WORKER_MERCHANT disagree: set one of them",
        ),
    ],
)
def test_a_bad_value_from_the_environment_names_its_variable(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    expected: str,
) -> None:
    """In a container nobody typed `--shard`: an error checked after parsing named only
    the option, and two variables of --merchant that disagree were taken silently."""
    (tmp_path / "in.csv").write_text("payment_reference,merchant_number\na,T1\n")
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _, err = invoke(capsys, "run", "in.csv", "--dry-run")
    assert code == 2 and err.startswith(f"Error: {expected}"), err
    assert len(err.strip().splitlines()) == 1
    flag, *_ = expected.split()
    if flag.startswith("--"):  # the variable is named after the message, which stays whole
        (name,) = env
        assert err.rstrip().endswith(f"({flag} came from {name})"), err


def test_merchant_variables_that_disagree_are_fine_when_merchant_is_typed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The command line wins over both: a platform-wide BAMBORA_MERCHANT_NUMBER beside a
    worker's own CANCEL_WORKER_MERCHANT is no conflict then."""
    (tmp_path / "in.csv").write_text("payment_reference\na\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BAMBORA_MERCHANT_NUMBER", "B1")
    monkeypatch.setenv("CANCEL_WORKER_MERCHANT", "C1")
    code, _, err = invoke(capsys, "run", "in.csv", "--dry-run", "--merchant", "T9")
    assert code == 0, err
    assert (tmp_path / "in.dry-run.csv").read_text().splitlines()[1].startswith("2,T9,a,")


def test_merge_takes_the_files_a_run_keeps_beside_a_report_for_no_report(tmp_path: Path) -> None:
    """`p.report.shard-*` as a shell expands it: each shard's companions are skipped,
    the survey and the on-disk index among them."""
    report = tmp_path / "p.report.shard-0-of-2.csv"
    beside = [Path(f"{report}{end}") for end in (".runs.jsonl", ".html", ".journal", ".lock")]
    beside += [Path(f"{report}.index.sqlite"), Path(f"{report}.survey.json")]
    reports, skipped = cli._reports_only([report, *beside])
    assert reports == [report] and skipped == beside


def test_a_report_card_is_never_written_over_the_survey(tmp_path: Path) -> None:
    from worker.errors import ReportError
    from worker.page.write import check_target

    report = tmp_path / "night.report.csv"
    report.write_text("line\n")
    survey = tmp_path / "night.report.csv.survey.json"
    survey.write_text("{}")
    with pytest.raises(ReportError, match="the survey"):
        check_target(report, survey)
