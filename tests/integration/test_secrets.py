"""Secrets never leave the process: a token quoted by the API is masked in the report and
the logs; a Pushgateway password is used as Basic auth and never printed."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import quote_plus

import orjson
import pytest
from aiohttp import web

from tests.support import answering, env_for, read_report, run_cli, sandbox, write_csv

JWT = (
    base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    + "."
    + base64.urlsafe_b64encode(b'{"sub":"client-1","exp":4102444800}').rstrip(b"=").decode()
    + ".c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
)


def fake_env(url: str, secret: str) -> dict[str, str]:
    """The environment of a run against a fake answering at `url` (API and tokens)."""
    return env_for(
        None,
        BAMBORA_API_URL=url,
        BAMBORA_AUTH_URL=f"{url}/connect/token",
        BAMBORA_CLIENT_ID="client-1",
        BAMBORA_CLIENT_SECRET=secret,
    )


@pytest.mark.parametrize("token", [JWT, "opaqueTOKEN123xyz"], ids=["jwt", "opaque"])
async def test_a_token_quoted_in_a_403_reaches_no_report_log_or_output(
    tmp_path: Path, token: str
) -> None:
    async def api(request: web.Request) -> web.Response:
        if request.path.endswith("/connect/token"):
            return web.json_response({"access_token": token, "expires_in": 3600})
        problem = {
            "type": "https://api.example/problems/forbidden",
            "title": f"Forbidden for {request.headers['Authorization']}",
            # an opaque token quoted bare looks like no credential: only knowing it masks it
            "detail": f"scope missing; request had Authorization: Bearer {token} (token {token})",
        }
        return web.Response(
            status=403, body=orjson.dumps(problem), content_type="application/problem+json"
        )

    src = write_csv(tmp_path / "in.csv", [("r1", "T1"), ("r2", "T1")])
    async with answering(api) as url:
        env = fake_env(url, "client-secret-1")
        done = await run_cli(
            "run", str(src), "--log-level", "debug", "--log-format", "json", env=env, cwd=tmp_path
        )
    assert done.code == 1, done.stderr[-2000:]
    report = (tmp_path / "in.report.csv").read_text()
    card = (tmp_path / "in.report.csv.html").read_text()
    rows = read_report(tmp_path / "in.report.csv")
    assert [r["outcome"] for r in rows] == ["rejected", "rejected"]
    assert "Authorization: Bearer ***" in rows[0]["detail"] and "(token ***)" in rows[0]["detail"]
    for text in (report, card, done.stdout, done.stderr):
        assert token not in text and token.split(".")[-1] not in text


def texts_in(folder: Path) -> list[str]:
    """Every file the run left in `folder`: report, run record, card, journal."""
    return [p.read_text(errors="replace") for p in folder.iterdir() if p.is_file()]


@pytest.mark.parametrize("log_format", ["json", "console"])
async def test_a_secret_echoed_as_it_was_sent_by_a_refusing_token_endpoint_is_masked(
    tmp_path: Path, log_format: str
) -> None:
    """The secret goes on the wire form-encoded inside the Basic header's base64: a token
    endpoint quoting either form back in its refusal leaked the secret into the logs, the
    run record and the report card, which masked only the raw secret."""
    secret = "s3cr3t+with/odd=chars@ and!"

    async def auth(request: web.Request) -> web.Response:
        header = request.headers["Authorization"]
        sent = header.removeprefix("Basic ")
        encoded = base64.b64decode(sent).decode().split(":", 1)[1]
        body = {"error": f"invalid_client: refused {header} ({sent}); secret {encoded}"}
        return web.json_response(body, status=401)

    src = write_csv(tmp_path / "in.csv", [("r1", "T1")])
    async with answering(auth) as url:
        env = fake_env(url, secret)
        done = await run_cli("run", str(src), "--log-format", log_format, env=env, cwd=tmp_path)
    assert done.code == 3, done.stderr[-2000:]
    basic = base64.b64encode(b"client-1:" + quote_plus(secret, safe="").encode()).decode()
    forms = [secret, quote_plus(secret, safe=""), basic, basic.rstrip("=")]
    for text in [done.stdout, done.stderr, *texts_in(tmp_path)]:
        for form in forms:
            assert form not in text, form


async def test_a_pushgateway_password_is_basic_auth_and_never_printed(tmp_path: Path) -> None:
    seen: list[str | None] = []

    async def gateway(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(status=500, text="try later")  # so the failure is logged

    # flaky4-: 503 to its first 4 requests, so with 2 tries it ends `failed`: exit 5,
    # whose summary ends with the command to run again (the pushgateway URL in it)
    src = write_csv(tmp_path / "in.csv", [("flaky4-a", "T1")])
    async with sandbox() as server, answering(gateway) as url:
        pushgateway = url.replace("http://", "http://metrics:pa55-w0rd-x@")
        args = ("--pushgateway", pushgateway, "--max-attempts", "2")
        done = await run_cli("run", str(src), *args, env=env_for(server), cwd=tmp_path)
    assert done.code == 5, done.stderr[-2000:]
    assert seen == ["Basic " + base64.b64encode(b"metrics:pa55-w0rd-x").decode()]
    assert "metrics_push_failed" in done.stderr and "run the same command again" in done.stderr
    for text in (done.stdout, done.stderr):
        assert "pa55-w0rd-x" not in text
    assert url.replace("http://", "http://***@") in done.stderr  # the hint says where it was
