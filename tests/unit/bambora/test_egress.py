"""Which proxy a URL takes (`proxy_for`), and what the session does with it.

The proxy rules are the ones aiohttp's `trust_env` applies (urllib's), read once;
the session itself trusts nothing else from the environment (no `.netrc`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.support import answering
from worker.bambora.api import ApiClient
from worker.bambora.deadline import Deadlines
from worker.bambora.session import make_session, proxy_for
from worker.model import Op

CORP = "http://proxy.corp:3128"
LOCAL = "http://127.0.0.1:3128"


@pytest.mark.parametrize(
    ("url", "proxies", "expected"),
    [
        ("https://api.bambora.com", {}, None),
        ("https://api.bambora.com", {"https": CORP}, CORP),
        ("https://api.bambora.com", {"https": "proxy.corp:3128"}, CORP),  # no scheme: http
        ("https://api.bambora.com", {"http": CORP}, None),  # http_proxy is for http URLs
        ("https://api.bambora.com", {"https": CORP, "no": ".bambora.com"}, None),
        ("https://api.bambora.com", {"https": CORP, "no": "bambora.com"}, None),
        ("https://api.bambora.com", {"https": CORP, "no": "API.Bambora.com"}, None),
        ("https://api.bambora.com", {"https": CORP, "no": "ambora.com"}, CORP),  # whole labels
        ("https://api.bambora.com", {"https": CORP, "no": "api.bambora.com:443"}, CORP),  # ports
        ("https://api.bambora.com", {"https": CORP, "no": "*"}, None),
        ("https://api.bambora.com", {"https": CORP, "no": "a.example,*"}, CORP),  # * alone
        ("https://api.bambora.com", {"https": CORP, "no": "a.example, api.bambora.com"}, None),
        ("https://api.bambora.com", {"https": CORP, "no": " x.y , .BAMBORA.COM "}, None),
        ("https://api.bambora.com", {"https": CORP, "no": ""}, CORP),
        # loopback is not exempt by itself: a proxy on this machine gets it ...
        ("http://127.0.0.1:8080", {"http": LOCAL}, LOCAL),
        ("http://localhost:8080", {"http": LOCAL}, LOCAL),
        ("http://127.0.0.1:8080", {"http": LOCAL, "no": "127.0.0.1,localhost"}, None),
        ("http://localhost:8080", {"http": LOCAL, "no": "127.0.0.1,localhost"}, None),
        ("http://[::1]:8080", {"http": LOCAL, "no": "127.0.0.1,localhost"}, LOCAL),
        ("http://[::1]:8080", {"http": LOCAL, "no": "::1"}, None),
        ("http://127.0.0.1:8080", {"http": LOCAL, "no": "127.0.0.0/8"}, LOCAL),  # no CIDR
        # ... but a proxy elsewhere never does: it cannot reach our loopback
        ("http://127.0.0.1:8080", {"http": CORP}, None),
        ("https://localhost:8443", {"https": CORP}, None),
    ],
)
def test_which_proxy_a_url_takes(url: str, proxies: dict[str, str], expected: str | None) -> None:
    proxy = proxy_for(url, proxies)
    assert (str(proxy) if proxy else None) == expected


def test_the_environment_is_read_lower_case_first(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:3128")
    assert str(proxy_for("https://api.bambora.com")) == "http://upper:3128"
    monkeypatch.setenv("https_proxy", "http://lower:3128")
    assert str(proxy_for("https://api.bambora.com")) == "http://lower:3128"
    monkeypatch.setenv("NO_PROXY", "bambora.com")
    assert proxy_for("https://api.bambora.com") is None


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("https://user:pw-1234@proxy:3128", "must be an http://host:port URL, got a https://"),
        ("socks5://user:pw-1234@p:1", "must be an http://host:port URL, got a socks5://"),
        ("http://user:pw-1234@proxy:port", "is not a URL"),
        ("http://user:pw-1234@[proxy", "is not a URL"),
    ],
)
def test_a_bad_proxy_is_refused_without_quoting_it(value: str, error: str) -> None:
    with pytest.raises(ValueError) as caught:
        proxy_for("https://api.bambora.com", {"https": value})
    assert str(caught.value).startswith("the https proxy (HTTPS_PROXY) ")
    assert error in str(caught.value) and "pw-1234" not in str(caught.value)


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"state": "Canceled"}, status=201)

    async with answering(handler) as url:
        yield url, seen


async def test_the_session_ignores_netrc_and_proxy_variables(
    echo: tuple[str, list[dict[str, str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `trust_env`, aiohttp would add this .netrc login to every request and then
    refuse the request (ValueError: it has an Authorization header already), and would
    send it to the proxy below, where nothing listens. `make_session` takes its proxy as
    an argument only."""
    netrc = tmp_path / "netrc"
    netrc.write_text("default login someone password netrc-pw\n", encoding="ascii")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    base, seen = echo
    async with make_session(concurrency=2) as session:
        assert session.trust_env is False
        reply = await ApiClient(session, base, Deadlines(5)).call(Op.CANCEL, "T1", "r1", "jwt")
    assert reply.status == 201
    assert seen[0]["Authorization"] == "Bearer jwt"
