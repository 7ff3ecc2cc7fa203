"""Session: the run's HTTP session: the pool, the egress proxy, the trusted CAs.

`make_session` builds it; `proxy_for` reads the proxy variables once per run;
`tls_context` trusts a private CA bundle. Nothing here knows Bambora's URLs (api.py).

Only aiohttp's public API is used. aiohttp labels a POST without a body
`application/octet-stream` unless told not to; a cancel without a comment has no
body, and a strict API may answer such a label with 415. aiohttp's own switch for it,
`skip_auto_headers=("Content-Type",)`, builds a skip list and a copy of the headers
again for every request: 5-10 us of CPU (about 5 %) of an `ApiClient.call` of 130-150
us (interleaved rounds against the fast fake API, `benchmarks/api_calls.py`). So the
session uses the public `request_class` parameter with `BodylessPost`, a request whose
`POST_METHODS` (the public class attribute aiohttp reads for that one default, and
nowhere else in 3.x) is empty. tests/unit/bambora/test_session.py pins the bytes on
the wire, so an aiohttp that reads it elsewhere fails the build, not a night.
"""

from __future__ import annotations

import ssl
import urllib.request
import warnings
from collections.abc import Mapping
from typing import Any

import aiohttp
import yarl

from worker.access import is_loopback
from worker.errors import CaBundleError, ProxyError


class BodylessPost(aiohttp.ClientRequest):
    """A request that never adds `Content-Type: application/octet-stream` by itself.

    Callers with a body set Content-Type themselves (api.py, auth.py).
    """

    POST_METHODS: set[str] = set()  # noqa: RUF012 (aiohttp types it as a mutable set)


def tls_context(ca_bundle: str) -> ssl.SSLContext:
    """A verifying TLS context that trusts the CAs of `ca_bundle` (a PEM file) and no others.

    For a private CA, or a proxy that re-signs TLS with a corporate CA. Without a
    bundle the session keeps aiohttp's default context, `ssl.create_default_context()`,
    which OpenSSL points at `SSL_CERT_FILE`/`SSL_CERT_DIR` when they are set.
    """
    try:
        context = ssl.create_default_context(cafile=ca_bundle)
    except ssl.SSLError as exc:  # before OSError: it is one
        raise CaBundleError(
            f"cannot use the CA bundle {ca_bundle}: no PEM certificate in it ({exc.reason})"
        ) from None
    except OSError as exc:
        # The OSError alone says "No such file or directory" without saying which.
        raise CaBundleError(
            f"cannot use the CA bundle {ca_bundle}: {exc.strerror or exc}"
        ) from None
    context.set_alpn_protocols(("http/1.1",))  # as aiohttp's own default context does
    return context


def proxy_for(url: str, proxies: Mapping[str, str] | None = None) -> yarl.URL | None:
    """The forward proxy for requests to `url`, or None for a direct connection.

    From `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (`proxies` in urllib's
    `getproxies_environment()` form, its default), read once per run. Not aiohttp's
    `trust_env`: it looks them up on every request (two thread hops each) and also
    applies `~/.netrc` logins, which clash with our Authorization header (ValueError).
    The rules are those `trust_env` applies, by the same urllib function
    (`proxy_bypass_environment`, on every platform; typeshed leaves it out as
    undocumented): lower-case names win; `NO_PROXY` lists hosts and domain suffixes,
    matched without case (`*` alone: all), no ports, no CIDR; loopback is not exempt
    by itself. One rule more: a loopback URL never goes through a proxy on another
    host, which could not reach it and would see plain http. A proxy without a scheme
    is `http://`; another scheme is a ProxyError (that does not quote the URL: it may
    hold a password).
    """
    env = urllib.request.getproxies_environment() if proxies is None else proxies
    target = yarl.URL(url)
    host = target.host or ""
    if urllib.request.proxy_bypass_environment(host, env):  # type: ignore[attr-defined]
        return None
    raw = env.get(target.scheme, "").strip()
    if not raw:
        return None
    what = f"the {target.scheme} proxy ({target.scheme.upper()}_PROXY)"
    try:
        proxy = yarl.URL(raw if "://" in raw else f"http://{raw}")
        proxy.port  # noqa: B018 - parsed lazily: a bad port fails here, not mid-run
    except ValueError:
        raise ProxyError(f"{what} is not a URL") from None
    if proxy.scheme != "http" or not proxy.host:
        raise ProxyError(f"{what} must be an http://host:port URL, got a {proxy.scheme}:// URL")
    if is_loopback(host) and not is_loopback(proxy.host):
        return None
    return proxy


def make_session(
    *,
    concurrency: int,
    proxy: yarl.URL | None = None,
    tls: ssl.SSLContext | None = None,
) -> aiohttp.ClientSession:
    """The run's one session: pooled connections sized to the concurrency, defaults set
    once instead of per request (they showed in the profile).

    No aiohttp timeout: `ApiClient`'s `Deadlines` bound each whole exchange,
    connecting included, to `--timeout` seconds, more cheaply than aiohttp's
    per-request timer (deadline.py). A stall while connecting is a plain timeout, as
    any other: the request may have gone out (a proxy tunnel, a TLS resumption), so
    the cancel's fate is asked, not assumed.
    `proxy` (from `proxy_for`) carries every request of the session; its user and
    password become Proxy-Authorization and are kept out of the URL, which aiohttp
    quotes in errors (a 407 to CONNECT) and so in report details. `tls` (from
    `tls_context`) replaces aiohttp's default verifying context. No `trust_env`
    (see `proxy_for`).
    """
    connector = aiohttp.TCPConnector(
        limit=concurrency + 2, ttl_dns_cache=300, ssl=True if tls is None else tls
    )
    extra: dict[str, Any] = {}
    with warnings.catch_warnings():
        # BasicAuth and `proxy_auth` are deprecated for aiohttp 4 (pyproject pins <4);
        # their replacement, per-request proxy_headers, has no session-wide form.
        warnings.simplefilter("ignore", DeprecationWarning)
        if proxy is not None:
            extra["proxy"] = proxy.with_user(None)
            if proxy.user is not None or proxy.password is not None:
                extra["proxy_auth"] = aiohttp.BasicAuth(proxy.user or "", proxy.password or "")
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),  # see above: Deadlines keep it
            request_class=BodylessPost,
            **extra,
        )
    # aiohttp sends a GET (a query) again, unseen, when a reused connection drops: a
    # request nobody counts, outside the rate slot (docs/pitfalls.md). Every request is
    # ours to count and retry; aiohttp's own test client turns it off the same way.
    session._retry_connection = False
    return session
