"""Configuration is checked like input: the environment through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import env_for, run_cli, sandbox, write_csv


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("CANCEL_WORKER_MERCHANT_NUMBER", "T1", "did you mean CANCEL_WORKER_MERCHANT"),
        ("CANCEL_WORKER_RATES", "5", "did you mean CANCEL_WORKER_RATE?"),
        ("CANCEL_WORKER_DRY_RUN", "", "CANCEL_WORKER_DRY_RUN is empty"),
    ],
)
async def test_a_misspelled_or_empty_variable_is_exit_2_with_nothing_sent(
    tmp_path: Path, variable: str, value: str, said: str
) -> None:
    src = write_csv(tmp_path / "in.csv", [("p1", "T1"), ("p2", "T1")])
    async with sandbox() as server:
        done = await run_cli(
            "run", str(src), env=env_for(server, **{variable: value}), cwd=tmp_path
        )
        assert server.state.requests == [] and server.state.tokens_issued == 0
    assert done.code == 2 and said in done.stderr, done.stderr
    [line] = done.stderr.splitlines()  # one line, no traceback
    assert line.startswith("Error: ") and variable in line
    assert not (tmp_path / "in.report.csv").exists()


async def test_the_start_event_shows_every_setting_in_effect_and_no_secret(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("p1", "T1")])
    async with sandbox() as server:
        env = env_for(server, CANCEL_WORKER_MAX_ATTEMPTS="3", BAMBORA_MERCHANT_NUMBER="T9")
        done = await run_cli(
            "run",
            str(src),
            "--timeout",
            "4",
            "--rate",
            "50",
            env=env,  # no --log-format: standard error is a pipe, so json is decided
            cwd=tmp_path,
        )
        secret, client, auth_url = (
            server.config.client_secret,
            server.config.client_id,
            server.auth_url,
        )
    assert done.code == 0, done.stderr[-2000:]
    start = next(e for e in map(json.loads, done.stderr.splitlines()[:5]) if e["event"] == "start")
    assert start["merchant"] == "T9" and start["max_attempts"] == 3 and start["timeout"] == 4.0
    assert start["rate"] == 50.0 and start["concurrency"] == 8 and start["give_up_after"] == 300.0
    assert start["mode"] == "run" and start["client_id"] == client
    assert start["client_secret"] == "***" and start["auth_url"] == auth_url
    assert secret not in done.stderr
    # what the worker decided is shown as decided, not as the option's None
    assert (start["input_format"], start["delimiter"], start["log_format"]) == ("csv", ",", "json")
