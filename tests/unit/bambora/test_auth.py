"""Token provider: single flight, early refresh, failures that release every waiter."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import jwt
import orjson
import pytest
import tenacity.wait
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support import sandbox
from worker.bambora.auth import (
    ClientCredentials,
    StaticToken,
    jwt_lifetime,
    refresh_margin,
    send_margin,
)
from worker.control.stop import StopGate, Stopped
from worker.errors import AuthUnavailable, CredentialsRefused

#: An id with ':' (which plain Basic auth cannot carry) and a secret with reserved
#: characters, and what RFC 6749 2.3.1 makes of them: each form-urlencoded, then
#: joined with ':' and base64'd.
AWKWARD_ID = "merchant:42"
AWKWARD_SECRET = "p%s+ w&r:d"
AWKWARD_BASIC = "Basic " + base64.b64encode(b"merchant%3A42:p%25s%2B+w%26r%3Ad").decode()


@dataclass
class TokenEndpoint:
    """A loopback token endpoint whose answers a test scripts; it records each request."""

    answers: list[tuple[int, dict[str, object]]] = field(default_factory=list)
    retry_after: str | None = None  # sent with every scripted answer when set
    requests: list[dict[str, str]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    issued: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append(
            {
                "auth": request.headers.get("Authorization", ""),
                **{k: str(v) for k, v in form.items()},
            }
        )
        self.received.set()
        await self.gate.wait()
        if self.answers:
            status, body = self.answers.pop(0)
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return web.json_response(body, status=status, headers=headers)
        self.issued += 1
        return web.json_response(
            {"access_token": f"jwt-{self.issued}", "token_type": "Bearer", "expires_in": 100}
        )


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[TokenEndpoint, str]]:
    ep = TokenEndpoint()
    app = web.Application()
    app.router.add_post("/connect/token", ep.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield ep, str(server.make_url("/connect/token"))
    await server.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_fifty_waiters_one_request_and_the_right_form(
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    ep, url = endpoint
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(session, url, "client-1", "s3cret")
        waiters = [asyncio.create_task(provider.get()) for _ in range(50)]
        await ep.received.wait()  # the one request is at the server; all 50 wait on it
        ep.gate.set()
        tokens = await asyncio.gather(*waiters)
    assert set(tokens) == {"jwt-1"}
    assert len(ep.requests) == 1
    sent = ep.requests[0]
    assert sent["auth"] == "Basic " + base64.b64encode(b"client-1:s3cret").decode()
    assert sent["grant_type"] == "client_credentials"
    assert sent["scope"] == "cancel_payment read_payment"


@pytest.mark.parametrize(
    ("client_id", "secret", "header"),
    [
        (AWKWARD_ID, AWKWARD_SECRET, AWKWARD_BASIC),
        (
            "clïent",
            "pässwörd",
            "Basic " + base64.b64encode(b"cl%C3%AFent:p%C3%A4ssw%C3%B6rd").decode(),
        ),
    ],
    ids=["reserved-characters", "non-ascii"],
)
async def test_basic_credentials_are_form_encoded_before_base64(
    endpoint: tuple[TokenEndpoint, str], client_id: str, secret: str, header: str
) -> None:
    ep, url = endpoint
    ep.gate.set()
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(session, url, client_id, secret)
        assert await provider.get() == "jwt-1"
        assert secret not in repr(provider)
    assert [r["auth"] for r in ep.requests] == [header]


async def test_the_sandbox_accepts_form_encoded_credentials() -> None:
    async with sandbox(client_id=AWKWARD_ID, client_secret=AWKWARD_SECRET) as server:
        async with aiohttp.ClientSession() as session:
            good = ClientCredentials(session, server.auth_url, AWKWARD_ID, AWKWARD_SECRET)
            assert (await good.get()).count(".") == 2  # a JWT
            bad = ClientCredentials(session, server.auth_url, AWKWARD_ID, AWKWARD_SECRET + "x")
            with pytest.raises(CredentialsRefused, match="invalid_client"):
                await bad.get()
        assert server.state.tokens_issued == 1


async def test_refreshes_before_expiry_not_after(endpoint: tuple[TokenEndpoint, str]) -> None:
    ep, url = endpoint
    ep.gate.set()
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(session, url, "c", "s", clock=clock)
        assert await provider.get() == "jwt-1"
        clock.now += 100 - refresh_margin(100) - 0.01  # just before the refresh point
        assert await provider.get() == "jwt-1"
        clock.now += 0.02  # past it, still before expiry at +100
        assert await provider.get() == "jwt-2"
    assert len(ep.requests) == 2
    assert refresh_margin(100) == 10 and refresh_margin(3600) == 60


async def test_a_token_held_through_a_wait_is_sent_until_its_send_margin(
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    ep, url = endpoint
    ep.gate.set()
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(session, url, "c", "s", clock=clock)
        held = await provider.get()  # jwt-1, expires at +100, refreshed from +90
        clock.now += 100 - send_margin(100) - 0.01
        assert provider.sendable(held) == held  # in the refresh margin: still sent
        clock.now += 0.02
        assert provider.sendable(held) is None  # 5 s from expiry: fetch one first
        assert await provider.get() == "jwt-2"
        assert provider.sendable(held) == "jwt-2"  # a worker still holding jwt-1 sends jwt-2
        provider.invalidate("jwt-2")  # a 401
        assert provider.sendable("jwt-2") is None
    assert send_margin(100) == 5 and send_margin(3600) == 30


async def test_invalidate_forces_one_new_token(endpoint: tuple[TokenEndpoint, str]) -> None:
    ep, url = endpoint
    ep.gate.set()
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(session, url, "c", "s")
        first = await provider.get()
        provider.invalidate("some-older-token")  # a stale 401 must not drop the new token
        assert await provider.get() == first
        provider.invalidate(first)
        assert await provider.get() == "jwt-2"


@pytest.mark.parametrize("status", [400, 401])
async def test_refused_client_is_final_and_releases_all_waiters(
    endpoint: tuple[TokenEndpoint, str], status: int
) -> None:
    ep, url = endpoint
    ep.answers = [(status, {"error": "invalid_client"})]
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(session, url, "c", "wrong-secret-value")
        waiters = [asyncio.create_task(provider.get()) for _ in range(20)]
        await ep.received.wait()
        ep.gate.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, CredentialsRefused) for r in results)
    assert "invalid_client" in str(results[0]) and "wrong-secret-value" not in str(results[0])
    assert len(ep.requests) == 1


async def test_5xx_is_retried_then_succeeds(endpoint: tuple[TokenEndpoint, str]) -> None:
    ep, url = endpoint
    ep.gate.set()
    ep.answers = [(503, {}), (500, {}), (429, {}), (408, {})]  # 408: a timeout, not a no
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(session, url, "c", "s", give_up_after=30)
        assert await provider.get() == "jwt-1"
    assert len(ep.requests) == 5


async def test_a_404_names_the_token_endpoints_url_not_the_credentials(
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    """Nothing there takes tokens: it said 'correct BAMBORA_CLIENT_ID ...'."""
    ep, url = endpoint
    ep.gate.set()
    ep.answers = [(404, {})]
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(session, url, "c", "s")
        with pytest.raises(CredentialsRefused, match="answered 404") as caught:
            await provider.get()
    assert caught.value.fix is not None and "BAMBORA_AUTH_URL" in caught.value.fix


@pytest.mark.parametrize(("retry_after", "jittered"), [("0", 0), (None, 2)])
async def test_retry_after_replaces_the_jittered_backoff(
    endpoint: tuple[TokenEndpoint, str],
    monkeypatch: pytest.MonkeyPatch,
    retry_after: str | None,
    jittered: int,
) -> None:
    draws: list[float] = []

    def uniform(low: float, high: float) -> float:
        draws.append(high)
        return 0.0  # no real waiting either way

    monkeypatch.setattr(tenacity.wait.random, "uniform", uniform)
    ep, url = endpoint
    ep.gate.set()
    ep.answers = [(503, {}), (429, {})]
    ep.retry_after = retry_after
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(session, url, "c", "s", give_up_after=30)
        assert await provider.get() == "jwt-1"
    assert len(ep.requests) == 3
    assert len(draws) == jittered  # with Retry-After the server's wait is used instead


async def test_endpoint_down_gives_up_and_releases_waiters() -> None:
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(
            session, "http://127.0.0.1:9/connect/token", "c", "s", give_up_after=1
        )
        results = await asyncio.gather(*(provider.get() for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, AuthUnavailable) for r in results)


async def test_cancelled_waiter_does_not_cancel_the_refresh(
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    ep, url = endpoint
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(session, url, "c", "s")
        impatient = asyncio.create_task(provider.get())
        patient = asyncio.create_task(provider.get())
        await ep.received.wait()
        impatient.cancel()
        ep.gate.set()
        assert await patient == "jwt-1"


async def test_static_token_cannot_refresh() -> None:
    token = StaticToken("ready.jwt.value")
    assert await token.get() == "ready.jwt.value"
    assert token.sendable("ready.jwt.value") == "ready.jwt.value"  # its expiry is unknown
    with pytest.raises(CredentialsRefused):
        token.invalidate("ready.jwt.value")
    assert "ready.jwt.value" not in repr(token)


def b64(part: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(part)).rstrip(b"=").decode()


def test_jwt_lifetime_read_from_exp_without_checking_the_signature() -> None:
    assert jwt_lifetime(jwt.encode({"exp": 1060}, "k" * 32), now=1000.0) == 60.0
    assert jwt_lifetime(jwt.encode({"exp": 1060.5}, None, algorithm="none"), now=1000.0) == 60.5
    forged = f"{b64({'alg': 'HS256'})}.{b64({'exp': 1030})}.{b64('not the signature')}"
    assert jwt_lifetime(forged, now=1000.0) == 30.0  # we use the token, the API judges it


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b",
        f"{b64({'alg': 'none'})}.{b64({'exp': 1060})}",  # no signature part
        f"not-json.{b64({'exp': 1060})}.",
        f"{b64(['alg'])}.{b64({'exp': 1060})}.",  # header not an object
        f"{b64({'alg': 'none'})}.{b64([1060])}.",  # claims not an object
        f"{b64({'alg': 'none'})}.{b64({'exp': '1060'})}.",
        f"{b64({'alg': 'none'})}.{b64({'exp': True})}.",
        f"{b64({'alg': 'none'})}.{b64({'sub': 'x'})}.",
        f"{b64({'alg': 'none'})}.%%%.",
    ],
)
def test_jwt_lifetime_of_what_is_no_jwt_with_an_exp_is_none(token: str) -> None:
    assert jwt_lifetime(token, now=1000.0) is None


@dataclass
class Watch:
    """Records what the token provider tells the run's health gate."""

    heard: list[tuple[str, str]] = field(default_factory=list)

    def token_failing(self, endpoint: str, what: str) -> None:
        self.heard.append((endpoint, what))

    def token_answered(self) -> None:
        self.heard.append(("answered", ""))


@pytest.mark.parametrize("give_up_after", [15.0, 4.0])
async def test_give_up_after_counts_from_the_first_failure_and_is_kept_exactly(
    endpoint: tuple[TokenEndpoint, str], give_up_after: float
) -> None:
    ep, url = endpoint
    ep.gate.set()
    ep.answers = [(503, {})] * 1000
    clock, slept = Clock(), []

    async def sleep(seconds: float) -> None:  # the fake clock runs while "sleeping"
        slept.append(seconds)
        clock.now += seconds

    watch = Watch()
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(
            session,
            url,
            "c",
            "s",
            give_up_after=give_up_after,
            clock=clock,
            sleep=sleep,
            watch=watch,
        )
        with pytest.raises(AuthUnavailable) as caught:
            await provider.get()
    # The last wait is cut to the deadline (the jittered one went up to 30 s past it).
    assert clock.now - 1000.0 == pytest.approx(give_up_after)
    assert url in str(caught.value) and "HTTP 503" in str(caught.value)
    assert watch.heard and all(heard == (url, "HTTP 503") for heard in watch.heard)
    assert len(watch.heard) == len(ep.requests)


async def test_a_recovered_token_endpoint_is_announced_and_a_refusal_says_what_to_fix(
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    ep, url = endpoint
    ep.gate.set()
    ep.answers = [(500, {}), (500, {})]
    watch = Watch()

    async def no_wait(seconds: float) -> None:
        pass

    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(session, url, "c", "s", sleep=no_wait, watch=watch)
        assert await provider.get() == "jwt-1"
        assert watch.heard == [(url, "HTTP 500"), (url, "HTTP 500"), ("answered", "")]
        ep.answers = [(401, {"error": "invalid_client"})]
        provider.invalidate("jwt-1")
        with pytest.raises(CredentialsRefused) as caught:
            await provider.get()
    assert "401 invalid_client" in str(caught.value)
    assert "BAMBORA_CLIENT_SECRET" in caught.value.fix and "again" not in caught.value.fix


async def test_a_hanging_token_endpoint_gives_up_at_the_deadline_not_after_the_timeout(
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    _, url = endpoint  # the gate is never opened: the endpoint never answers
    watch = Watch()
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(
            session, url, "c", "s", timeout=600, give_up_after=0.3, watch=watch
        )
        # bounded only so that a regression fails instead of hanging for the timeout
        with pytest.raises(AuthUnavailable, match=r"no answer within 0\.3 s"):
            await asyncio.wait_for(provider.get(), 60)
    assert watch.heard == [(url, "no answer within 0.3 s")]


async def test_a_refused_connection_is_named_as_such() -> None:
    watch, clock = Watch(), Clock()

    async def sleep(seconds: float) -> None:
        clock.now += seconds

    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(
            session,
            "http://127.0.0.1:9/connect/token",
            "c",
            "s",
            give_up_after=5,
            clock=clock,
            sleep=sleep,
            watch=watch,
        )
        with pytest.raises(AuthUnavailable, match=r"last: connection refused$"):
            await provider.get()
    assert set(watch.heard) == {("http://127.0.0.1:9/connect/token", "connection refused")}


async def test_a_stop_ends_the_wait_for_a_token_and_not_the_fetch(
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    ep, url = endpoint
    gate = StopGate()
    async with aiohttp.ClientSession() as session:
        provider = ClientCredentials(session, url, "c", "s", stop=gate)
        waiting = asyncio.create_task(provider.get())
        await ep.received.wait()  # the token endpoint holds the answer
        gate.stop()
        with pytest.raises(Stopped):
            await waiting  # at the stop, not when the endpoint answers
        ep.gate.set()
        unstopped = ClientCredentials(session, url, "c", "s")  # the endpoint still answers
        assert (await unstopped.get()).startswith("jwt-")
