"""End to end against the sandbox on loopback: the real CLI in a subprocess for what the
process owns (a first night of a thousand references, usage errors, credentials from
the environment, standard input, the preview, secrets in its output, SIGTERM); the
job in-process (`tests.inprocess`) where the subject is what the run does with the
API's answers: outcomes and exit codes, retries, token refreshes, reruns."""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
from pathlib import Path

import pytest

from tests.inprocess import run_job
from tests.support import (
    cancel_requests,
    env_for,
    kill,
    latest,
    read_report,
    run_cli,
    sandbox,
    start_cli,
    write_csv,
)

FAST = ("--rate", "2000", "--concurrency", "32", "--log-format", "json")


async def test_thousand_references_cancelled_once_each(tmp_path: Path) -> None:
    refs = [(f"EOD-{i:05d}", "T1") for i in range(1000)]
    src = write_csv(tmp_path / "payments.csv", refs)
    async with sandbox() as server:
        done = await run_cli("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert done.code == 0, done.stderr[-2000:]
        rows = read_report(tmp_path / "payments.report.csv")  # the contract's default name
        assert len(rows) == 1000
        assert {r["outcome"] for r in rows} == {"canceled"}
        assert sorted(int(r["line"]) for r in rows) == list(range(2, 1002))
        assert all(r["http_status"] == "201" and r["attempts"] == "1" for r in rows)
        assert all(r["finished_at"].endswith(("Z", "+00:00")) for r in rows)
        assert cancel_requests(server) == 1000
        assert all(server.state.payments[(m, r)].state == "Canceled" for r, m in refs)
        assert max(server.state.cancels_applied.values()) == 1
    summary = [json.loads(line) for line in done.stderr.splitlines() if '"summary"' in line][-1]
    assert summary["outcomes"] == {"canceled": 1000}
    assert summary["rows_read"] == summary["rows_reported"] == 1000


async def test_every_outcome_and_its_exit_code(tmp_path: Path) -> None:
    rows = [
        ("plain-1", "T1"),
        ("canceled-1", "T1"),
        ("captured-1", "T1"),
        ("unknown-1", "T1"),
        ("forbidden-1", "T1"),
        ("nocancel-1", "T1"),
        ("", "T1"),
        ("plain-1", "T1"),
        ("plain-1", "T2"),
    ]
    src = write_csv(tmp_path / "in.csv", rows)
    async with sandbox() as server:
        done = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        view = {r["line"]: r for r in read_report(tmp_path / "in.report.csv")}
        sent = {r.reference for r in server.state.requests if r.kind in ("cancel", "get")}
    assert done.code == 1
    assert {k: v["outcome"] for k, v in view.items()} == {
        "2": "canceled",
        "3": "already_canceled",
        "4": "not_cancelable",
        "5": "not_found",
        "6": "rejected",
        "7": "not_cancelable",
        "8": "invalid",
        "9": "duplicate",
        "10": "canceled",
    }
    assert view["4"]["payment_state"] == "Captured"
    assert view["7"]["payment_state"] == "Captured"
    assert view["5"]["error_type"].endswith("/payment_not_found")
    assert view["8"]["attempts"] == "0" and view["9"]["attempts"] == "0"
    assert "" not in sent
    assert cancel_requests(server, "plain-1") == 2  # T1 and T2, never the duplicate


async def test_only_canceled_already_canceled_and_duplicates_exit_zero(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1"), ("canceled-b", "T1"), ("a", "T1")])
    async with sandbox() as server:
        done = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
    assert done.code == 0, done.log[-2000:]


async def test_transient_trouble_ends_canceled(tmp_path: Path) -> None:
    refs = ["flaky-1", "blocked-1", "throttled-1", "reset-1", "dropped-1", "slow-1", "flaky3-2"]
    src = write_csv(tmp_path / "in.csv", [(r, "T1") for r in refs])
    async with sandbox(slow_delay=2.0, retry_after="1") as server:
        done = await run_job(
            "run", str(src), *FAST, "--timeout", "0.5", env=env_for(server), cwd=tmp_path
        )
        view = latest(read_report(tmp_path / "in.report.csv"))
        assert done.code == 0, done.log[-3000:]
        assert {r: view[("T1", r)]["outcome"] for r in refs} == {r: "canceled" for r in refs}
        assert max(server.state.cancels_applied.values()) == 1
    # the ambiguous ones were reconciled by a query, not reported as already_canceled
    assert int(view[("T1", "dropped-1")]["attempts"]) >= 2
    assert int(view[("T1", "slow-1")]["attempts"]) >= 2


async def test_a_reference_that_keeps_failing_ends_failed_with_its_last_error(
    tmp_path: Path,
) -> None:
    rows = [("broken-1", "T1")] + [(f"ok-{i}", "T1") for i in range(30)]
    src = write_csv(tmp_path / "in.csv", rows)
    async with sandbox() as server:
        done = await run_job(
            "run", str(src), *FAST, "--max-attempts", "3", env=env_for(server), cwd=tmp_path
        )
        view = latest(read_report(tmp_path / "in.report.csv"))
    assert done.code == 5  # failed rows: a rerun retries them
    failed = view[("T1", "broken-1")]
    assert failed["outcome"] == "failed" and failed["http_status"] == "503"
    assert "3 tries" in failed["detail"]
    assert sum(v["outcome"] == "canceled" for v in view.values()) == 30


async def test_token_expiry_mid_run_refreshes(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"r{i}", "T1") for i in range(120)])
    async with sandbox(token_ttl=1.0) as server:
        done = await run_job(
            "run",
            str(src),
            "--rate",
            "60",
            "--concurrency",
            "8",
            "--log-format",
            "json",
            env=env_for(server),
            cwd=tmp_path,
        )
        assert done.code == 0, done.log[-2000:]
        assert server.state.tokens_issued >= 2
        assert {r["outcome"] for r in read_report(tmp_path / "in.report.csv")} == {"canceled"}


async def test_forced_expiry_answers_401_and_one_refresh_recovers(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"r{i}", "T1") for i in range(60)])
    async with sandbox() as server:

        async def expire_midway() -> None:
            await server.state.wait_for(lambda s: cancel_requests(server) >= 20, within=30)
            server.expire_tokens()

        done, _ = await asyncio.gather(
            run_job(
                "run",
                str(src),
                "--rate",
                "100",
                "--log-format",
                "json",
                env=env_for(server),
                cwd=tmp_path,
            ),
            expire_midway(),
        )
        statuses = [r.status for r in server.state.requests if r.kind == "cancel"]
        assert done.code == 0, done.log[-2000:]
        assert 401 in statuses
        assert server.state.tokens_issued == 2  # single flight: one refresh for all workers


async def test_refused_credentials_exit_3_without_any_cancel(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1"), ("b", "T1")])
    async with sandbox() as server:
        env = env_for(server, BAMBORA_CLIENT_SECRET="wrong")
        done = await run_job("run", str(src), *FAST, env=env, cwd=tmp_path)
        assert done.code == 3
        assert "refused" in done.log and "wrong" not in done.log
        assert cancel_requests(server) == 0


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("order,merchant\n1,2\n", "in.csv", "no reference column"),
        ("", "in.csv", "empty"),
        (None, "missing.csv", "cannot open"),
        (b"\x1f\x8bnot really gzip", "in.csv.gz", "cannot read"),
    ],
)
async def test_unusable_input_is_exit_2_before_any_request(
    tmp_path: Path, content: str | bytes | None, name: str, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    async with sandbox() as server:
        done = await run_cli("run", str(path), *FAST, env=env_for(server), cwd=tmp_path)
        assert done.code == 2, done.stderr
        assert message in done.stderr
        assert server.state.requests == [] and server.state.tokens_issued == 0


@pytest.mark.parametrize(
    ("args", "env_extra", "message"),
    [
        (("--comment", "x" * 257), {}, "--comment"),
        (("--shard", "4/4"), {}, "--shard"),
        (("--concurrency", "0"), {}, "concurrency"),
        ((), {"BAMBORA_API_URL": "http://api.example.com"}, "plain http"),
        ((), {"BAMBORA_CLIENT_ID": ""}, "no credentials"),
        (
            (),
            {"BAMBORA_CLIENT_SECRET": "", "BAMBORA_CLIENT_SECRET_FILE": "/nonexistent"},
            "SECRET_FILE",
        ),
    ],
)
async def test_bad_configuration_is_exit_2_before_any_request(
    tmp_path: Path, args: tuple[str, ...], env_extra: dict[str, str], message: str
) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1")])
    async with sandbox() as server:
        env = env_for(server, **env_extra)
        done = await run_cli("run", str(src), *args, env=env, cwd=tmp_path)
        assert done.code == 2, done.stderr
        assert message in done.stderr
        assert server.state.requests == [] and server.state.tokens_issued == 0


async def test_secret_file_and_merchant_env(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("a",), ("b",)], header="payment_reference")
    async with sandbox() as server:
        secret = tmp_path / "secret"
        secret.write_text(server.config.client_secret + "\n")
        env = env_for(server, BAMBORA_CLIENT_SECRET_FILE=str(secret), BAMBORA_MERCHANT_NUMBER="T7")
        env.pop("BAMBORA_CLIENT_SECRET")
        done = await run_cli("run", str(src), *FAST, env=env, cwd=tmp_path)
        assert done.code == 0, done.stderr[-2000:]
        assert server.state.payments[("T7", "a")].state == "Canceled"


async def test_static_token_env(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1")])
    async with sandbox() as server:
        token = server._sandbox.tokens.issue("someone", "cancel_payment read_payment")
        env = env_for(None, BAMBORA_API_URL=server.api_url, BAMBORA_TOKEN=token)
        done = await run_cli("run", str(src), *FAST, env=env, cwd=tmp_path)
        assert done.code == 0, done.stderr[-2000:]
        assert server.state.tokens_issued == 0
        server.expire_tokens()
        src2 = write_csv(tmp_path / "in2.csv", [("b", "T1")])
        done = await run_cli("run", str(src2), *FAST, env=env, cwd=tmp_path)
        assert done.code == 3 and "BAMBORA_TOKEN" in done.stderr


async def test_dry_run_and_check_cancel_nothing(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1"), ("captured-b", "T1"), ("", "T1")])
    async with sandbox() as server:
        dry = await run_cli(
            "run", str(src), "--dry-run", "--report", "dry.csv", env=env_for(None), cwd=tmp_path
        )
        assert server.state.requests == [] and server.state.tokens_issued == 0
        check = await run_cli(
            "check", str(src), *FAST, "--report", "check.csv", env=env_for(server), cwd=tmp_path
        )
        assert cancel_requests(server) == 0
        assert all(p.state != "Canceled" for p in server.state.payments.values())
    assert dry.code == 1  # the invalid row
    assert [r["outcome"] for r in read_report(tmp_path / "dry.csv")] == [
        "invalid",
        "would_cancel",
        "would_cancel",
    ] or sorted(r["outcome"] for r in read_report(tmp_path / "dry.csv")) == [
        "invalid",
        "would_cancel",
        "would_cancel",
    ]
    checked = {r["payment_reference"]: r for r in read_report(tmp_path / "check.csv")}
    assert checked["a"]["outcome"] == "checked" and checked["a"]["payment_state"] == "Authorized"
    assert checked["captured-b"]["payment_state"] == "Captured"
    assert check.code == 1


async def test_jsonl_report_gz_input_and_stdin(tmp_path: Path) -> None:
    data = b'{"payment_reference": "g1", "merchant_number": "T1"}\n{"payment_reference": "g2"}\n'
    (tmp_path / "in.jsonl.gz").write_bytes(gzip.compress(data))
    async with sandbox() as server:
        done = await run_cli(
            "run",
            "in.jsonl.gz",
            *FAST,
            "--merchant",
            "T9",
            "--report",
            "out.jsonl",
            env=env_for(server),
            cwd=tmp_path,
        )
        assert done.code == 0, done.stderr[-2000:]
        rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert {(r["merchant_number"], r["payment_reference"]) for r in rows} == {
            ("T1", "g1"),
            ("T9", "g2"),
        }
        assert all(isinstance(r["line"], int) and isinstance(r["attempts"], int) for r in rows)
        assert all(isinstance(r["http_status"], int) and r["error_type"] is None for r in rows)

        proc = await start_cli(
            "run", "-", *FAST, "--merchant", "T1", env=env_for(server), cwd=tmp_path, stdin=True
        )
        _, err = await proc.communicate(b"payment_reference\ns1\ns2\n")
        assert proc.returncode == 0, err.decode()[-2000:]
        assert len(read_report(tmp_path / "report.csv")) == 2


async def test_nasty_references_reach_their_own_payment(tmp_path: Path) -> None:
    refs = ["a/b", "q?x=1", "frag#1", "100%", "sp ace", ".", "..", "Zürich€", "../../x", "%2F"]
    src = write_csv(tmp_path / "in.csv", [(r, "T1") for r in refs])
    async with sandbox() as server:
        done = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert done.code == 0, done.log[-2000:]
        assert {k: p.state for k, p in server.state.payments.items()} == {
            ("T1", r): "Canceled" for r in refs
        }


async def test_secrets_never_reach_logs_or_report(tmp_path: Path) -> None:
    src = write_csv(
        tmp_path / "in.csv", [(f"r{i}", "T1") for i in range(30)] + [("broken-x", "T1")]
    )
    async with sandbox(token_ttl=1.0) as server:
        issued: list[str] = []
        original = server._sandbox.tokens.issue

        def spy(client_id: str, scope: str) -> str:
            token = original(client_id, scope)
            issued.append(token)
            return token

        server._sandbox.tokens.issue = spy  # type: ignore[method-assign]
        done = await run_cli(
            "run",
            str(src),
            "--rate",
            "40",
            "--max-attempts",
            "2",
            "--log-level",
            "debug",
            "--log-format",
            "json",
            env=env_for(server),
            cwd=tmp_path,
        )
        secret = server.config.client_secret
    report = (tmp_path / "in.report.csv").read_text()
    assert issued and done.stderr.count('"reference_done"') == 31
    for text in (done.stdout, done.stderr, report):
        assert secret not in text
        assert not any(token in text for token in issued)
        assert not any(token.split(".")[2] in text for token in issued)


async def test_sigterm_finishes_in_flight_and_resumes(tmp_path: Path) -> None:
    refs = [(f"r{i}", "T1") for i in range(300)]
    src = write_csv(tmp_path / "in.csv", refs)
    async with sandbox() as server:

        async def term(proc: asyncio.subprocess.Process) -> None:
            await server.state.wait_for(lambda s: cancel_requests(server) >= 50, within=30)
            kill(proc, signal.SIGTERM)

        first = await run_cli(
            "run",
            str(src),
            "--rate",
            "100",
            "--log-format",
            "json",
            env=env_for(server),
            cwd=tmp_path,
            after_start=term,
        )
        assert first.code == 143, first.stderr[-2000:]
        partial = read_report(tmp_path / "in.report.csv")
        assert 40 <= len(partial) < 300
        second = await run_cli("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert second.code == 0, second.stderr[-2000:]
        view = latest(read_report(tmp_path / "in.report.csv"))
        assert len(view) == 300 and {v["outcome"] for v in view.values()} == {"canceled"}
        assert max(server.state.cancels_applied.values()) == 1
        # what the first run reported was not sent again
        assert cancel_requests(server) <= 300 + 8


async def test_rerun_of_a_finished_job_sends_nothing(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("a", "T1"), ("unknown-b", "T1"), ("", "T1")])
    async with sandbox() as server:
        first = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        before = len(server.state.requests)
        second = await run_job("run", str(src), *FAST, env=env_for(server), cwd=tmp_path)
        assert len(server.state.requests) == before
        assert server.state.tokens_issued == 1
    assert first.code == second.code == 1  # not_found and invalid still decide it
    assert len(read_report(tmp_path / "in.report.csv")) == 3


async def test_references_that_fail_alone_at_the_end_are_failed_not_an_outage(
    tmp_path: Path,
) -> None:
    # Nothing else left to send: two broken references must not look like an outage
    # (which would hold them until --give-up-after), they end `failed`.
    src = write_csv(tmp_path / "in.csv", [("ok-1", "T1"), ("broken-a", "T1"), ("broken-b", "T1")])
    async with sandbox() as server:
        done = await run_job(
            "run",
            str(src),
            "--rate",
            "100",
            "--concurrency",
            "2",
            "--max-attempts",
            "4",
            env=env_for(server),
            cwd=tmp_path,
        )
        view = latest(read_report(tmp_path / "in.report.csv"))
    assert done.code == 5, done.log[-2000:]
    assert view[("T1", "broken-a")]["outcome"] == view[("T1", "broken-b")]["outcome"] == "failed"
    assert view[("T1", "ok-1")]["outcome"] == "canceled"
