"""API client: the only module that knows Bambora's URLs, headers and encodings.

It also builds the run's HTTP session (`make_session`): the pool, the timeouts, the
egress proxy (`proxy_for`) and the trusted CAs (`tls_context`).

It turns one call (cancel or query) into a `Reply`, a plain value that says what came
back: an HTTP status with the problem+json fields and the payment state, or the kind
of transport trouble and whether the request may have reached the server. It never
decides what a reply *means*: that is `outcomes.decide`.
"""

from __future__ import annotations

import email.utils
import ssl
import time
import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote
from urllib.request import getproxies_environment

import aiohttp
import orjson
import yarl

from worker.model import DETAIL_LIMIT, Op, Reply
from worker.settings import is_loopback

API_VERSION = "1"
MAX_RETRY_AFTER = 60.0


def segment(value: str) -> str:
    """Percent-encode text as exactly one path segment.

    `quote(safe="")` encodes `/ ? # %`, spaces and non-ASCII; `.` and `..` are
    unreserved yet special to every URL resolver, so they are encoded by hand.
    """
    if value in (".", ".."):
        return "%2E" * len(value)
    return quote(value, safe="")


def payment_url(base: str, merchant: str, reference: str, op: Op) -> yarl.URL:
    """`encoded=True` stops yarl from normalising the path (docs/pitfalls.md)."""
    tail = "cancel/" if op is Op.CANCEL else ""
    return yarl.URL(
        f"{base}/v1/merchants/{segment(merchant)}/payments/{segment(reference)}/{tail}",
        encoded=True,
    )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class CaBundleError(ValueError):
    """A CA bundle that cannot be used; the message names the file (the CLI: exit 2)."""


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
    The rules are those `trust_env` applies: lower-case names win; `NO_PROXY` lists
    hosts and domain suffixes (`*`: all), no ports, no CIDR; loopback is not exempt by
    itself. One rule more: a loopback URL never goes through a proxy on another host,
    which could not reach it and would see plain http. A proxy without a scheme is
    `http://`; another scheme is a ValueError (that does not quote the URL: it may
    hold a password).
    """
    env = getproxies_environment() if proxies is None else proxies
    target = yarl.URL(url)
    host = target.host or ""
    if no_proxy_covers(host, env.get("no", "")):
        return None
    raw = env.get(target.scheme, "").strip()
    if not raw:
        return None
    what = f"the {target.scheme} proxy ({target.scheme.upper()}_PROXY)"
    try:
        proxy = yarl.URL(raw if "://" in raw else f"http://{raw}")
        proxy.port  # noqa: B018 - parsed lazily: a bad port fails here, not mid-run
    except ValueError:
        raise ValueError(f"{what} is not a URL") from None
    if proxy.scheme != "http" or not proxy.host:
        raise ValueError(f"{what} must be an http://host:port URL, got a {proxy.scheme}:// URL")
    if is_loopback(host) and not is_loopback(proxy.host):
        return None
    return proxy


def no_proxy_covers(host: str, no_proxy: str) -> bool:
    """Whether `NO_PROXY` exempts `host`: urllib's `proxy_bypass_environment` rules."""
    if no_proxy.strip() == "*":
        return True
    host = host.lower()
    for name in no_proxy.split(","):
        name = name.strip().lstrip(".").lower()
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def make_session(
    *,
    concurrency: int,
    timeout: float,
    proxy: yarl.URL | None = None,
    tls: ssl.SSLContext | None = None,
) -> aiohttp.ClientSession:
    """The run's one session: pooled connections sized to the concurrency, defaults set
    once instead of per request (they showed in the profile).

    No automatic Content-Type: a cancel without a body must not claim octet-stream,
    which a strict API may answer with 415; callers with a body set it themselves.
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
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout),
            skip_auto_headers=("Content-Type",),
            **extra,
        )


class ApiClient:
    """Sends cancels and queries over one shared aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        """`session` comes from `make_session` (timeout and header defaults live there)."""
        self._session = session
        self._base = base_url.rstrip("/")
        # Header dicts are built once per token, not once per request (hot path).
        self._headers_for: tuple[str, dict[str, str], dict[str, str]] | None = None

    def _headers(self, token: str, with_body: bool) -> dict[str, str]:
        cached = self._headers_for
        if cached is None or cached[0] != token:
            plain = {
                "Authorization": f"Bearer {token}",
                "API-Version": API_VERSION,
                "Accept": "application/json",
            }
            cached = (token, plain, {**plain, "Content-Type": "application/json"})
            self._headers_for = cached
        return cached[2] if with_body else cached[1]

    async def call(
        self, op: Op, merchant: str, reference: str, token: str, comment: str | None = None
    ) -> Reply:
        url = payment_url(self._base, merchant, reference, op)
        data: bytes | None = None
        if op is Op.CANCEL and comment:
            data = orjson.dumps({"comment": comment})
        headers = self._headers(token, data is not None)
        method = "POST" if op is Op.CANCEL else "GET"
        try:
            async with self._session.request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return self._reply(response, body)
        except aiohttp.ConnectionTimeoutError:
            return Reply(None, "timeout", detail="timed out connecting", maybe_sent=False)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return Reply(None, "timeout", detail="no answer within the timeout")
        except aiohttp.ClientConnectorError as exc:
            return Reply(None, "connection_error", detail=_describe(exc), maybe_sent=False)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            return Reply(None, "disconnected", detail=_describe(exc))
        except aiohttp.ClientError as exc:
            return Reply(None, "connection_error", detail=_describe(exc))

    @staticmethod
    def _reply(response: aiohttp.ClientResponse, body: bytes) -> Reply:
        doc: Any = None
        if body:
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                doc = None
        fields = doc if isinstance(doc, dict) else {}
        status = response.status
        problem = status >= 400
        return Reply(
            status,
            error_type=_text(fields.get("type")) if problem else None,
            title=_text(fields.get("title")) if problem else None,
            detail=_text(fields.get("detail")) if problem else None,
            payment_state=None if problem else _text(fields.get("state")),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            amount=None if problem else _minor_units(fields.get("amount")),
            currency=None if problem else _text(fields.get("currency")),
        )


def _minor_units(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:DETAIL_LIMIT]
