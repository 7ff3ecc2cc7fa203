"""Options: the environment is checked like input, against the options' own variables."""

from __future__ import annotations

from typing import Any

import click
import pytest

from worker.cli import cli
from worker.errors import ConfigError
from worker.options import check_environment, env_name

RUN, CHECK = cli.commands["run"], cli.commands["check"]
EVERY = list(cli.commands.values())


def refused(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        check_environment(env, EVERY)
    return str(caught.value)


@pytest.mark.parametrize(
    ("name", "suggested"),
    [
        ("CANCEL_WORKER_RATES", "did you mean CANCEL_WORKER_RATE?"),
        ("CANCEL_WORKER_MAXATTEMPTS", "did you mean CANCEL_WORKER_MAX_ATTEMPTS?"),
        (
            "CANCEL_WORKER_MERCHANT_NUMBER",
            "did you mean CANCEL_WORKER_MERCHANT (or BAMBORA_MERCHANT_NUMBER)?",
        ),
        ("CANCEL_WORKER_XYZZY", "no option reads it"),
    ],
)
def test_an_unknown_variable_is_named_with_the_closest_known_one(name: str, suggested: str) -> None:
    message = refused({name: "5"})
    assert message.startswith(f"unknown environment variable {name}: ") and suggested in message


@pytest.mark.parametrize(
    "name", ["CANCEL_WORKER_DRY_RUN", "CANCEL_WORKER_YES", "CANCEL_WORKER_SANDBOX"]
)
def test_an_empty_flag_is_refused_not_read_as_false(name: str) -> None:
    assert refused({name: ""}) == (
        f"environment variable {name} is empty: set it to 1, true or yes (or 0, false, no), "
        "or unset it"
    )


@pytest.mark.parametrize(
    "name", ["CANCEL_WORKER_RATE", "CANCEL_WORKER_TIMEOUT", "CANCEL_WORKER_MAX_ATTEMPTS"]
)
def test_an_empty_number_is_refused(name: str) -> None:
    assert "is empty: set it to a number" in refused({name: " "})


def test_every_options_variable_and_its_older_names_are_known() -> None:
    env = {
        env_name(opt): "1"
        for cmd in (RUN, CHECK)
        for param in cmd.params
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt.startswith("--")
    }
    assert "CANCEL_WORKER_DRY_RUN" in env and "CANCEL_WORKER_SHARD" in env
    check_environment({**env, "BAMBORA_MERCHANT_NUMBER": "1", "OTHER": ""}, EVERY)
    check_environment({"CANCEL_WORKER_COMMENT": "", "BAMBORA_MERCHANT_NUMBER": ""}, EVERY)


def test_an_option_added_later_is_known_without_a_list_to_update() -> None:
    @click.command()
    @click.option("--memory-budget", type=int, envvar="CANCEL_WORKER_MEMORY_BUDGET")
    def extra(**kw: Any) -> None: ...

    check_environment({"CANCEL_WORKER_MEMORY_BUDGET": "5"}, [*EVERY, extra])
    with pytest.raises(ConfigError, match="did you mean CANCEL_WORKER_MEMORY_BUDGET"):
        check_environment({"CANCEL_WORKER_MEMORY_BUDGE": "5"}, [*EVERY, extra])
    with pytest.raises(ConfigError, match="CANCEL_WORKER_MEMORY_BUDGET is empty"):
        check_environment({"CANCEL_WORKER_MEMORY_BUDGET": ""}, [*EVERY, extra])
