"""What the sandbox does: state transitions, the prefix scenarios, path encoding, the
token endpoint and bearer checks."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import aiohttp
import pytest

from worker.sandbox import FAULT_KINDS, SCENARIOS, SandboxServer, scenarios_markdown
from worker.sandbox.scenarios import payment_for

from .conftest import MakeServer
from .support import Client, basic, payment_url

# -- state transitions -------------------------------------------------------------------


async def test_cancel_once_then_422_and_get_shows_canceled(
    client: Client, server: SandboxServer
) -> None:
    first = await client.cancel("EOD-1", {"comment": "end of day"})
    assert first.status == 201
    assert first.body["state"] == "Canceled"
    assert first.body["comment"] == "end of day"
    assert first.body["merchant"] == "T123456"
    assert first.body["payment"] == "EOD-1"
    again = await client.cancel("EOD-1")
    assert again.status == 422
    assert again.body["type"].endswith("/invalid_payment_state_transition")
    got = await client.get("EOD-1")
    assert (got.status, got.body["state"], got.body["comment"]) == (200, "Canceled", "end of day")
    assert server.state.cancels_applied[("T123456", "EOD-1")] == 1
    assert server.state.payments[("T123456", "EOD-1")].state == "Canceled"


async def test_payments_are_per_merchant(client: Client, server: SandboxServer) -> None:
    assert (await client.cancel("same", merchant="T1")).status == 201
    assert (await client.cancel("same", merchant="T2")).status == 201
    assert (await client.get("same", merchant="T3")).body["state"] == "Authorized"


async def test_amount_is_stable_per_reference(make_server: MakeServer) -> None:
    amounts = []
    for _ in range(2):
        server = await make_server()
        async with aiohttp.ClientSession() as session:
            amounts.append((await Client(session, server).get("EOD-7")).body["amount"])
    assert amounts[0] == amounts[1]
    assert isinstance(amounts[0], int)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", None, 201),
        (b"{}", "application/json", 201),
        (b'{"comment": "ok", "other": 1}', "application/json", 201),
        (b"{not json", "application/json", 400),
        (b"[1]", "application/json", 400),
        (b"null", "application/json", 400),
        (b'{"comment": 5}', "application/json", 400),
        (json.dumps({"comment": "c" * 256}).encode(), "application/json", 201),
        (json.dumps({"comment": "c" * 257}).encode(), "application/json", 400),
        (b'{"comment": "x"}', "text/plain", 415),
    ],
)
async def test_cancel_body(
    client: Client, body: bytes, content_type: str | None, status: int
) -> None:
    headers = await client.headers()
    if content_type:
        headers["Content-Type"] = content_type
    answer = await client.raw(
        "POST", "/v1/merchants/T1/payments/order/cancel/", headers=headers, data=body
    )
    assert answer.status == status, answer.text


# -- prefix scenarios ---------------------------------------------------------------------

# (reference, [(operation, expected status or "reset"), ...], final state; None: not found)
SCENARIO_RUNS: list[tuple[str, list[tuple[str, int | str]], str | None]] = [
    ("plain-1", [("cancel", 201), ("cancel", 422), ("get", 200)], "Canceled"),
    ("captured-1", [("cancel", 422), ("get", 200)], "Captured"),
    ("settled-1", [("cancel", 422)], "Settled"),
    ("refunded-1", [("cancel", 422)], "Refunded"),
    ("expired-1", [("cancel", 422)], "Authorization Expired"),
    ("nocancel-1", [("cancel", 402), ("cancel", 402), ("get", 200)], "Captured"),
    ("canceled-1", [("cancel", 422), ("get", 200)], "Canceled"),
    ("unknown-1", [("get", 404), ("cancel", 404), ("cancel", 404)], None),
    ("forbidden-1", [("get", 403), ("cancel", 403)], "Authorized"),
    ("blocked-1", [("cancel", 409), ("get", 200), ("cancel", 409), ("cancel", 201)], "Canceled"),
    ("blocked1-x", [("cancel", 409), ("cancel", 201)], "Canceled"),
    ("flaky-1", [("get", 503), ("cancel", 503), ("cancel", 201)], "Canceled"),
    ("flaky3-1", [("cancel", 503), ("cancel", 503), ("cancel", 503), ("cancel", 201)], "Canceled"),
    ("flaky0-1", [("cancel", 201)], "Canceled"),
    ("throttled-1", [("cancel", 429), ("get", 429), ("cancel", 201)], "Canceled"),
    ("reset-1", [("get", 200), ("cancel", "reset"), ("get", 200), ("cancel", 201)], "Canceled"),
    ("dropped-1", [("cancel", "reset"), ("get", 200), ("cancel", 422)], "Canceled"),
    ("reset2-1", [("cancel", "reset"), ("cancel", "reset"), ("cancel", 201)], "Canceled"),
    ("dropped2-1", [("cancel", "reset"), ("cancel", "reset"), ("cancel", 422)], "Canceled"),
    ("broken-1", [("cancel", 503), ("get", 503), ("cancel", 503), ("cancel", 503)], "Authorized"),
    ("captured3-1", [("cancel", 201)], "Canceled"),  # no count on captured-: a plain reference
    ("Flaky-1", [("cancel", 201)], "Canceled"),  # prefixes are case-sensitive
]


@pytest.mark.parametrize(("reference", "steps", "final"), SCENARIO_RUNS, ids=lambda v: str(v))
async def test_scenario(
    client: Client,
    server: SandboxServer,
    reference: str,
    steps: list[tuple[str, int | str]],
    final: str | None,
) -> None:
    seen: list[int | str] = []
    for operation, _ in steps:
        try:
            if operation == "cancel":
                answer = await client.cancel(reference)
            else:
                answer = await client.get(reference)
            seen.append(answer.status)
        except aiohttp.ServerDisconnectedError:
            seen.append("reset")
    assert seen == [status for _, status in steps]
    payment = server.state.payments[("T123456", reference)]
    if final is None:
        assert not payment.exists
    else:
        assert payment.state == final
    applied = final == "Canceled" and not reference.startswith("canceled-")
    assert server.state.cancels_applied[("T123456", reference)] == applied


async def test_throttled_sends_retry_after(make_server: MakeServer) -> None:
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    server = await make_server(retry_after=date)
    async with aiohttp.ClientSession() as session:
        answer = await Client(session, server).cancel("throttled-x")
    assert (answer.status, answer.headers["Retry-After"]) == (429, date)


async def test_get_state_of_each_state_prefix(client: Client) -> None:
    for prefix, state in [("settled-", "Settled"), ("expired-", "Authorization Expired")]:
        assert (await client.get(prefix + "z")).body["state"] == state


async def test_slow_applies_then_stalls_then_answers(client: Client, server: SandboxServer) -> None:
    answer = await client.cancel("slow-1")  # slow_delay is 0.2 s in these tests
    assert answer.status == 201
    assert server.state.requests[-1].status == "slow"
    assert (await client.cancel("slow-1")).status == 422  # only the first cancel stalls
    assert server.state.cancels_applied[("T123456", "slow-1")] == 1


def test_scenario_table_matches_the_code() -> None:
    table = scenarios_markdown()
    for scenario in SCENARIOS:
        assert scenario.prefix[:-1] in table
        payment = payment_for("T1", scenario.prefix + "x")
        assert payment.state == (scenario.state or "None")
        how = scenario.behaviour
        assert {how.fault, how.cancel_fault} - {None} <= set(FAULT_KINDS)
        n = scenario.default_n or 0
        assert list(payment.faults) == [how.fault] * n if how.fault else not payment.faults
        assert (
            list(payment.cancel_faults) == [how.cancel_fault] * n
            if how.cancel_fault
            else not payment.cancel_faults
        )
    assert len(table.splitlines()) == 2 + len(SCENARIOS)


# -- path encoding ------------------------------------------------------------------------

ODD_REFERENCES = [
    "a/b",
    "../../cancel",
    "what?x=1",
    "hash#tag",
    "100%",
    "%2F",
    "two words",
    "..",
    ".",
    "...",
    "+plus+",
    "semi;colon",
    "æøå-€-日本-🙂",
    "tab\there",
    "line\nbreak",
    "back\\slash",
    "'quote\"",
    "x" * 2000,
    "🙂" * 2000,  # 24,000 bytes once encoded: past aiohttp's default request-line limit
]


@pytest.mark.parametrize("reference", ODD_REFERENCES, ids=lambda r: ascii(r)[:30])
async def test_references_arrive_intact(
    client: Client, server: SandboxServer, reference: str
) -> None:
    merchant = "T/1 ?#%"
    answer = await client.cancel(reference, merchant=merchant)
    assert answer.status == 201, answer.text
    assert answer.body["payment"] == reference
    assert answer.body["merchant"] == merchant
    assert list(server.state.payments) == [(merchant, reference)]
    assert (await client.get(reference, merchant=merchant)).body["state"] == "Canceled"
    record = server.state.requests[-1]
    assert (record.kind, record.merchant, record.reference) == ("get", merchant, reference)


@pytest.mark.parametrize("char", ["x", "日"])
async def test_reference_of_2001_characters_is_400(
    client: Client, server: SandboxServer, char: str
) -> None:
    answer = await client.cancel(char * 2001)
    assert answer.status == 400
    assert answer.content_type == "application/problem+json"
    assert "too long" in answer.body["detail"]
    assert not server.state.payments


async def test_invalid_utf8_in_a_segment_is_400(client: Client) -> None:
    answer = await client.raw("GET", "/v1/merchants/T1/payments/%FF%FE/")
    assert answer.status == 400


async def test_unencoded_dot_segments_navigate(client: Client, server: SandboxServer) -> None:
    # A client that forgets to encode `..` reaches another path; the sandbox shows it.
    answer = await client.raw("POST", "/v1/merchants/T1/payments/../cancel/")
    assert answer.status == 404
    answer = await client.raw("POST", "/v1/merchants/T1/payments/x/y/../../z/cancel/")
    assert answer.status == 201
    assert answer.body["payment"] == "z"
    answer = await client.raw("GET", "/v1/merchants/T1/./payments/p/")
    assert (answer.status, answer.body["payment"]) == (200, "p")
    assert ("T1", "..") not in server.state.payments


async def test_string_urls_collapse_dots_but_encoded_ones_do_not(
    client: Client, server: SandboxServer
) -> None:
    # Why the tests (and the worker) build URLs with yarl.URL(..., encoded=True).
    good = payment_url(server.url, "T1", "..", cancel=True)
    assert str(good).endswith("/payments/%2E%2E/cancel/")
    assert (await client.raw("POST", good.raw_path)).status == 201


async def test_query_string_is_ignored(client: Client) -> None:
    answer = await client.raw("GET", "/v1/merchants/T1/payments/p/?x=/../../")
    assert (answer.status, answer.body["payment"]) == (200, "p")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v1/merchants/T1/payments/p",
        "/v1/merchants/T1/payments/p/cancel",
        "/v1/merchants/T1/payments//",
        "/v1/merchants//payments/p/",
        "/v1/merchants/T1/payments/p/capture/",
        "/v2/merchants/T1/payments/p/",
        "/v1/merchants/T1/payments/p/cancel/x/",
        "/V1/merchants/T1/payments/p/",
    ],
)
async def test_unknown_paths_are_404_problems(
    client: Client, server: SandboxServer, path: str
) -> None:
    answer = await client.raw("GET", path)
    assert answer.status == 404
    assert answer.content_type == "application/problem+json"
    assert answer.body["type"] == "about:blank"
    assert not server.state.payments


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/merchants/T1/payments/p/cancel/", "POST"),
        ("PUT", "/v1/merchants/T1/payments/p/cancel/", "POST"),
        ("DELETE", "/v1/merchants/T1/payments/p/", "GET"),
        ("POST", "/v1/merchants/T1/payments/p/", "GET"),
        ("GET", "/connect/token", "POST"),
    ],
)
async def test_wrong_method_is_405(
    client: Client, server: SandboxServer, method: str, path: str, allow: str
) -> None:
    answer = await client.raw(method, path)
    assert answer.status == 405
    assert answer.headers["Allow"] == allow
    assert answer.content_type == "application/problem+json"
    assert server.state.requests[-1].kind == "other"


# -- bearer tokens ------------------------------------------------------------------------


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "The Authorization header was not set."),
        ("Basic c2FuZGJveC1jbGllbnQ6c2FuZGJveC1zZWNyZXQ=", "not a Bearer token"),
        ("Bearer", "not a Bearer token"),
        ("Bearer abc", "not a JWT"),
        ("Bearer a.b.c", "signature"),
    ],
)
async def test_bad_bearer_is_401(client: Client, authorization: str | None, detail: str) -> None:
    headers = {"API-Version": "1"}
    if authorization:
        headers["Authorization"] = authorization
    answer = await client.cancel("order-1", headers=headers)
    assert answer.status == 401
    assert detail in answer.body["detail"]
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


async def test_tampered_token_is_401(client: Client) -> None:
    token = await client.token()
    header, _, signature = token.split(".")
    claims = _claims(token)
    claims["exp"] += 3600
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    answer = await client.cancel(
        "o", headers=await client.headers(f"{header}.{forged}.{signature}")
    )
    assert answer.status == 401


async def test_unsigned_token_is_401(client: Client) -> None:
    token = await client.token()
    _, claims, _ = token.split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    answer = await client.cancel("o", headers=await client.headers(f"{header}.{claims}."))
    assert answer.status == 401
    assert "algorithm" in answer.body["detail"]


async def test_token_of_another_sandbox_is_401(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    one, two = await make_server(), await make_server()
    token = await Client(session, one).token()
    other = Client(session, two)
    assert (await other.cancel("o", headers=await other.headers(token))).status == 401


async def test_expire_tokens_makes_them_401(client: Client, server: SandboxServer) -> None:
    headers = await client.headers()
    assert (await client.get("o", headers=headers)).status == 200
    server.expire_tokens()
    answer = await client.get("o", headers=headers)
    assert (answer.status, answer.body["detail"]) == (401, "The access token has expired.")
    assert (await client.get("o", headers=await client.headers(await client.token()))).status == 200


async def test_token_ttl_expires(make_server: MakeServer, session: aiohttp.ClientSession) -> None:
    import asyncio

    server = await make_server(token_ttl=0.3)
    client = Client(session, server)
    headers = await client.headers()
    assert (await client.get("o", headers=headers)).status == 200
    await asyncio.sleep(0.35)  # the one thing here that must really pass: wall-clock time
    assert (await client.get("o", headers=headers)).status == 401


async def test_version_is_checked_after_auth(client: Client) -> None:
    assert await client.get("o", headers={})
    bearer = (await client.headers())["Authorization"]
    for version, status in [(None, 400), ("2", 400), ("1.0", 400), (" 1 ", 200), ("1", 200)]:
        headers = {"Authorization": bearer}
        if version is not None:
            headers["API-Version"] = version
        assert (await client.get("o", headers=headers)).status == status, version


# -- token endpoint -----------------------------------------------------------------------


async def _token_call(
    session: aiohttp.ClientSession,
    server: SandboxServer,
    form: dict[str, str],
    authorization: str | None = None,
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": authorization} if authorization else {}
    async with session.post(server.auth_url, data=form, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json()


GRANT = {"grant_type": "client_credentials", "scope": "cancel_payment read_payment"}


async def test_token_with_basic_auth(server: SandboxServer, session: aiohttp.ClientSession) -> None:
    status, headers, body = await _token_call(
        session, server, GRANT, basic("sandbox-client", "sandbox-secret")
    )
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "cancel_payment read_payment"
    header_part = body["access_token"].split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(header_part + "==")) == {
        "alg": "HS256",
        "typ": "JWT",
    }
    claims = _claims(body["access_token"])
    assert claims["client_id"] == "sandbox-client"
    assert claims["scope"] == "cancel_payment read_payment"
    assert 3600 <= claims["exp"] - claims["iat"] <= 3601
    assert server.state.tokens_issued == 1
    assert server.state.requests[-1].kind == "token"


async def test_token_with_form_credentials(
    server: SandboxServer, session: aiohttp.ClientSession
) -> None:
    form = {**GRANT, "client_id": "sandbox-client", "client_secret": "sandbox-secret"}
    status, _, body = await _token_call(session, server, form)
    assert status == 200
    assert body["access_token"].count(".") == 2


async def test_token_scope_defaults_when_omitted(
    server: SandboxServer, session: aiohttp.ClientSession
) -> None:
    form = {"grant_type": "client_credentials"}
    _, _, body = await _token_call(session, server, form, basic("sandbox-client", "sandbox-secret"))
    assert body["scope"] == "cancel_payment read_payment"


@pytest.mark.parametrize(
    ("form", "authorization", "status", "error"),
    [
        (GRANT, basic("sandbox-client", "wrong"), 401, "invalid_client"),
        (GRANT, basic("someone", "sandbox-secret"), 401, "invalid_client"),
        (GRANT, "Basic !!!not-base64", 401, "invalid_client"),
        (GRANT, "Bearer abc", 401, "invalid_client"),
        (GRANT, None, 400, "invalid_client"),
        (
            {**GRANT, "client_id": "sandbox-client", "client_secret": "x"},
            None,
            400,
            "invalid_client",
        ),
        (
            {"grant_type": "password"},
            basic("sandbox-client", "sandbox-secret"),
            400,
            "unsupported_grant_type",
        ),
        (
            {"scope": "read_payment"},
            basic("sandbox-client", "sandbox-secret"),
            400,
            "invalid_request",
        ),
    ],
)
async def test_token_refusals(
    server: SandboxServer,
    session: aiohttp.ClientSession,
    form: dict[str, str],
    authorization: str | None,
    status: int,
    error: str,
) -> None:
    got_status, headers, body = await _token_call(session, server, form, authorization)
    assert (got_status, body["error"]) == (status, error)
    assert headers["Content-Type"] == "application/json"
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Basic")
    assert server.state.tokens_issued == 0


# -- request log --------------------------------------------------------------------------


async def test_request_log_says_what_each_answer_meant(
    make_server: MakeServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker.sandbox.requests")
    server = await make_server(fault_rate=1.0, fault_kinds=("500_after_apply",))
    client = Client(session, server)
    await client.cancel("flaky1-a")
    await client.cancel("flaky1-a")
    await client.get("b", headers={"API-Version": "1"})
    await client.cancel("slow-c")
    path = "/v1/merchants/T123456/payments"
    assert [r.getMessage() for r in caplog.records] == [
        "POST /connect/token 200 token issued, scope 'cancel_payment read_payment'",
        f"POST {path}/flaky1-a/cancel/ 503 fault 503 [flaky-]",
        f"POST {path}/flaky1-a/cancel/ 500 canceled, then fault 500_after_apply [random]",
        f"GET {path}/b/ 401 The Authorization header was not set.",
        f"POST {path}/slow-c/cancel/ slow canceled, then a 0.2 s stall [slow-]",
    ]
