"""Settings: building them from options and the environment; credentials, URLs, shards."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import ConfigError
from worker.settings import (
    SANDBOX_TIMEOUT,
    Mode,
    Settings,
    Shard,
    build_settings,
    check_url,
    credentials_from_env,
    default,
    in_effect,
    parse_size,
    shard_from_env,
)


def test_a_secret_file_that_is_not_utf8_is_a_config_error_that_hides_its_content(
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "bambora-secret"
    secret_file.write_bytes(b"hunter2-\xff\xfe-tail\n")
    with pytest.raises(ConfigError) as caught:
        credentials_from_env(
            {"BAMBORA_CLIENT_ID": "client", "BAMBORA_CLIENT_SECRET_FILE": str(secret_file)}
        )
    message = str(caught.value)
    assert message == f"BAMBORA_CLIENT_SECRET_FILE {secret_file} is not UTF-8 text"
    assert "hunter2" not in message and "0xff" not in message and "tail" not in message
    assert "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_missing_secret_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as caught:
        credentials_from_env({"BAMBORA_CLIENT_ID": "c", "BAMBORA_CLIENT_SECRET_FILE": str(missing)})
    assert str(caught.value) == (
        f"cannot read BAMBORA_CLIENT_SECRET_FILE {missing}: No such file or directory"
    )


@pytest.mark.parametrize("ending", ["\n", "\r\n", ""])
def test_the_secret_files_trailing_newline_is_ignored(tmp_path: Path, ending: str) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(f"  s3cret väl ue{ending}".encode())
    creds = credentials_from_env(
        {"BAMBORA_CLIENT_ID": " client ", "BAMBORA_CLIENT_SECRET_FILE": str(secret_file)}
    )
    # only the line ending goes: spaces may be part of a secret
    assert creds.client_secret == "  s3cret väl ue"
    assert creds.client_id == "client"
    assert "s3cret" not in repr(creds)


def test_no_credentials_at_all_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no credentials"):
        credentials_from_env({"BAMBORA_CLIENT_ID": "client-only"})


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com",
        "http://10.0.0.5:8080/",
        "http://localhost.example.com/connect/token",
        "http://[2001:db8::1]/",
    ],
)
def test_plain_http_to_a_host_that_is_not_loopback_is_refused(url: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^BAMBORA_API_URL uses plain http to .+; only https is allowed except on loopback$",
    ):
        check_url("BAMBORA_API_URL", url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.5.6.7/",
        "http://localhost:9000/connect/token",
        "http://LOCALHOST/",
        "http://[::1]:8080/",
        "https://api.bambora.com",
    ],
)
def test_loopback_http_and_https_anywhere_are_allowed(url: str) -> None:
    assert check_url("BAMBORA_AUTH_URL", url) == url


@pytest.mark.parametrize("url", ["ftp://api.example.com", "https://", "api.example.com"])
def test_not_an_http_url_with_a_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="BAMBORA_AUTH_URL must be an http"):
        check_url("BAMBORA_AUTH_URL", url)


@pytest.mark.parametrize(
    "url",
    ["https://bob:pwAPI999@api.example.com", "http://bob@127.0.0.1:8080", "ftp://:pwAPI999@x"],
)
def test_a_user_or_password_in_the_url_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigError, match="BAMBORA_API_URL holds a user name or password") as err:
        check_url("BAMBORA_API_URL", url)
    assert "pwAPI999" not in str(err.value) and "bob" not in str(err.value)


def test_check_url_does_the_same_whatever_the_settings_name() -> None:
    url = "https://api.example.com/base/"
    assert check_url("BAMBORA_API_URL", url) == check_url("BAMBORA_AUTH_URL", url) == url


def test_settings_keep_the_api_url_without_trailing_slash_and_the_auth_url_as_given() -> None:
    settings = Settings(
        mode=Mode.RUN,
        input="in.csv",
        report=Path("in.report.csv"),
        api_url="https://api.example.com/",
        auth_url="https://auth.example.com/connect/token/",
    )
    assert settings.api_url == "https://api.example.com"
    assert settings.auth_url == "https://auth.example.com/connect/token/"


@pytest.mark.parametrize("text", ["", "1", "a/b", "1/2/3", "0/", "/4", "1.5/4"])
def test_a_shard_that_is_not_i_slash_n_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="--shard must look like I/N"):
        Shard.parse(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3/3", "shards are numbered from 0: I must be 0..2"),
        ("4/3", "shards are numbered from 0: I must be 0..2"),
        ("-1/3", "shards are numbered from 0: I must be 0..2"),
        ("0/0", "N must be 1 or more"),
        ("0/-2", "N must be 1 or more"),
    ],
)
def test_a_shard_out_of_range_is_a_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^--shard {text}: {message}$"):
        Shard.parse(text)


def test_valid_shards_parse() -> None:
    assert Shard.parse("0/1") == Shard(0, 1) and not Shard.parse("0/1").active
    assert Shard.parse("3/4") == Shard(3, 4) and Shard.parse("3/4").active


def test_shard_from_the_kubernetes_environment() -> None:
    assert shard_from_env({}) is None
    assert shard_from_env({"JOB_COMPLETION_INDEX": " 2 ", "SHARD_COUNT": "4\n"}) == Shard(2, 4)
    with pytest.raises(ConfigError, match="must be set together"):
        shard_from_env({"JOB_COMPLETION_INDEX": "2"})
    with pytest.raises(ConfigError, match="must be set together"):
        shard_from_env({"SHARD_COUNT": "4"})
    with pytest.raises(ConfigError, match=r"numbered from 0: I must be 0..3"):
        shard_from_env({"JOB_COMPLETION_INDEX": "4", "SHARD_COUNT": "4"})


ENV = {"BAMBORA_CLIENT_ID": "id", "BAMBORA_CLIENT_SECRET": "secret\n"}


def test_options_left_out_take_the_one_set_of_defaults() -> None:
    s = build_settings(Mode.RUN, {"input": "payments.csv"}, ENV)
    assert (s.concurrency, s.rate, s.max_attempts, s.timeout) == (8, 20.0, 5, 15.0)
    assert (s.give_up_after, s.grace_seconds, s.log_level) == (300.0, 20.0, "info")
    assert s.report == Path("payments.report.csv")
    assert s.credentials.client_secret == "secret"  # a trailing newline is not the secret
    assert s.api_url == "https://api.bambora.com" and s.auth_url.endswith("/connect/token")
    for name in ("concurrency", "rate", "max_attempts", "give_up_after", "grace_seconds"):
        assert default(name) == getattr(Settings, name)


def test_sandbox_and_dry_run_need_no_credentials_and_the_sandbox_is_quick() -> None:
    sandboxed = build_settings(Mode.RUN, {"input": "-", "sandbox": True}, {})
    assert sandboxed.timeout == SANDBOX_TIMEOUT and sandboxed.report == Path("report.csv")
    assert (
        build_settings(Mode.RUN, {"input": "x.csv", "dry_run": True}, {}).credentials.secrets()
        == ()
    )


def test_rate_zero_means_no_limit_and_the_kubernetes_shard_env_is_read() -> None:
    env = {**ENV, "JOB_COMPLETION_INDEX": "2", "SHARD_COUNT": "4"}
    s = build_settings(Mode.CHECK, {"input": "in.jsonl.gz", "rate": 0.0}, env)
    assert s.rate is None and s.shard == Shard(2, 4)
    assert s.report == Path("in.check.shard-2-of-4.csv")  # check has its own report
    # an explicit shard in an Indexed Job's pod must be the pod's own
    same = build_settings(Mode.RUN, {"input": "in.csv", "shard_text": "2/4"}, env)
    assert same.shard == Shard(2, 4)
    with pytest.raises(ConfigError, match=r"--shard 0/4 .* \(2/4\) disagree: set one of them"):
        build_settings(Mode.RUN, {"input": "in.csv", "shard_text": "0/4"}, env)
    # the Job copied to rerun one index (samples/kubernetes/README.md): SHARD_COUNT alone
    alone = build_settings(
        Mode.RUN, {"input": "in.csv", "shard_text": "1/4"}, {**ENV, "SHARD_COUNT": "4"}
    )
    assert alone.shard == Shard(1, 4)


def test_a_comment_over_its_limit_is_refused() -> None:
    with pytest.raises(ConfigError, match="--comment"):
        build_settings(Mode.RUN, {"input": "x.csv", "comment": "c" * 257}, ENV)


def test_in_effect_shows_every_setting_and_no_secret() -> None:
    env = {"BAMBORA_CLIENT_ID": "client-7", "BAMBORA_CLIENT_SECRET": "s3cret-value"}
    kw = {
        "input": "night.csv",
        "merchant": "T123",
        "max_attempts": 3,
        "timeout": 9.0,
        "pushgateway": "http://push:pw-secret@gw:9091",
    }
    s = build_settings(Mode.RUN, kw, env)
    shown = in_effect(s)
    assert set(shown) >= {f for f in vars(s) if f != "credentials"}  # every field, by name
    assert shown["merchant"] == "T123" and shown["max_attempts"] == 3
    assert shown["timeout"] == 9.0 and shown["rate"] == default("rate")
    assert shown["concurrency"] == default("concurrency") and shown["shard"] == "0/1"
    assert shown["client_id"] == "client-7" and shown["client_secret"] == "***"
    assert shown["token"] is None and shown["pushgateway"] == "http://push:***@gw:9091"
    text = repr(shown)
    assert "s3cret-value" not in text and "pw-secret" not in text


def test_sandbox_mode_names_the_api_settings_it_overrides() -> None:
    env = {**ENV, "BAMBORA_API_URL": "https://api.example.com", "BAMBORA_TOKEN": ""}
    s = build_settings(Mode.RUN, {"input": "x.csv", "sandbox": True}, env)
    assert s.sandbox_overrides == ("BAMBORA_API_URL", "BAMBORA_CLIENT_ID", "BAMBORA_CLIENT_SECRET")
    assert build_settings(Mode.RUN, {"input": "x.csv"}, env).sandbox_overrides == ()
    # ignored, so not checked either: plain http elsewhere, a password
    for url in ("http://x", "https://bob:pw@api.example.com"):
        bad = {**env, "BAMBORA_API_URL": url, "BAMBORA_AUTH_URL": url}
        s = build_settings(Mode.RUN, {"input": "x.csv", "sandbox": True}, bad)
        assert "BAMBORA_AUTH_URL" in s.sandbox_overrides and url not in (s.api_url, s.auth_url)
        with pytest.raises(ConfigError):
            build_settings(Mode.RUN, {"input": "x.csv"}, bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [("64MB", 64_000_000), ("512MiB", 512 << 20), ("1GB", 10**9), ("0", 0), ("10 kb", 10_000)],
)
def test_memory_budget_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size
    s = build_settings(Mode.RUN, {"input": "x.csv", "dry_run": True, "memory_budget": text}, {})
    assert s.memory_budget == size


@pytest.mark.parametrize(
    "text", ["lots", "-1MB", "12TB", "MB", "nan", "inf", "1e400", "99999999999999999999GB"]
)
def test_a_memory_budget_that_is_not_a_size_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="--memory-budget must be a size"):
        parse_size(text)


def test_the_memory_budget_default_lives_in_settings() -> None:
    s = build_settings(Mode.RUN, {"input": "x.csv", "dry_run": True}, {})
    assert s.memory_budget == default("memory_budget") == 16_000_000


@pytest.mark.parametrize("token", ["tok\x07en", "tok en", "tok\nen", "tokén"])
def test_a_token_no_header_can_carry_is_refused_before_any_request(token: str) -> None:
    """It made every reference fail (exit 5) on every rerun; now exit 2, never echoed."""
    with pytest.raises(ConfigError, match="BAMBORA_TOKEN holds a character") as caught:
        credentials_from_env({"BAMBORA_TOKEN": token})
    assert token not in str(caught.value)
    assert credentials_from_env({"BAMBORA_TOKEN": "eyJ.a-b_c~d+e/f="}).token == "eyJ.a-b_c~d+e/f="
