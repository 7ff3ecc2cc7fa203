"""Auth: the token provider. One object, one refresh in flight, secrets kept inside.

`ClientCredentials` fetches JWTs from the auth URL (OAuth2 client credentials,
Basic auth, scope `cancel_payment read_payment`), caches one, and refreshes it
shortly before it expires: at most 10 % of its lifetime and at most 60 s early. A
worker that held a token while it waited for its rate slot asks `sendable` before it
sends, so a token is not sent in the last half of that margin (a slow rate, short
tokens: the wait can outlast them).
However many workers ask at once, one token request is in flight; when it fails,
every waiter gets the error (nobody hangs). Transient trouble at the token endpoint
(5xx, 429, timeouts, resets) is retried with `backoff.BACKOFF` (`Retry-After`
honoured, else capped full-jitter backoff) until `give_up_after` has passed since the
first failed request was sent (waits and timeouts are cut to that deadline, so the
abort comes on time); a refused client is final (`CredentialsRefused`, exit 3), and
says what to fix. Every worker waits for that one token, so its trouble holds the
whole run: the `TokenWatch` (the run's health gate) hears of each failure and of the
recovery, and says so as it does for an API outage. A worker waiting for a token
leaves with `Stopped` when the run stops (`control.stop`): it sends nothing after a stop.

`StaticToken` wraps `BAMBORA_TOKEN`: used as is, and it cannot be refreshed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
import jwt
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from worker.access import SCOPE, basic_credentials
from worker.bambora.api import parse_retry_after
from worker.bambora.backoff import BACKOFF, RetryLater
from worker.control.stop import StopGate
from worker.errors import AuthUnavailable, CredentialsRefused

DEFAULT_LIFETIME = 300.0
#: A token request given less time than this before the deadline could not succeed.
MIN_TRY = 0.1


#: What a person must change when the auth server refuses the client.
FIX_CLIENT = (
    "correct BAMBORA_CLIENT_ID and BAMBORA_CLIENT_SECRET (or BAMBORA_CLIENT_SECRET_FILE); "
    "a rerun with them resumes from the report"
)
FIX_URL = (
    "check BAMBORA_AUTH_URL: it must be the token endpoint (for example "
    "https://auth.bambora.com/connect/token); a rerun with it resumes from the report"
)


class TokenWatch(Protocol):
    """Hears how the token endpoint is doing (`control.health.OutageGate`)."""

    def token_failing(self, endpoint: str, what: str) -> None: ...

    def token_answered(self) -> None: ...


class _Unwatched:
    def token_failing(self, endpoint: str, what: str) -> None:
        pass

    def token_answered(self) -> None:
        pass


class TokenProvider(Protocol):
    refreshes: int

    async def get(self) -> str: ...

    def invalidate(self, token: str) -> None: ...

    def sendable(self, token: str) -> str | None:
        """The token to send now, without a wait, for one `get` gave before a wait for
        a rate slot: it, or a fresher one; None if a new one must be fetched first."""
        ...


class StaticToken:
    """A ready JWT from the environment; a 401 with it is final."""

    refreshes = 0

    def __init__(self, token: str) -> None:
        self._token = token

    async def get(self) -> str:
        return self._token

    def sendable(self, token: str) -> str | None:
        """Its expiry is not known, and it cannot be refreshed anyway: a 401 says so."""
        return token

    def invalidate(self, token: str) -> None:
        raise CredentialsRefused(
            "the API refused BAMBORA_TOKEN (401); it cannot be refreshed",
            fix="set a fresh BAMBORA_TOKEN, or BAMBORA_CLIENT_ID and BAMBORA_CLIENT_SECRET "
            "so that tokens are fetched and refreshed",
        )

    def __repr__(self) -> str:
        return "StaticToken(<hidden>)"


def jwt_lifetime(token: str, now: float) -> float | None:
    """Seconds until the JWT's `exp`, read without verifying (we are its user, not its
    judge); None for a token PyJWT cannot read or one without a numeric `exp`."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:  # dropped, never shown: it is about a secret
        return None
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return float(exp) - now
    return None


def basic_authorization(client_id: str, client_secret: str) -> str:
    """The `Authorization` header for client credentials, as RFC 6749 2.3.1 says (see
    `access.basic_credentials`: plain Basic auth cannot carry a ':' in the user name)."""
    return "Basic " + basic_credentials(client_id, client_secret)


def refresh_margin(lifetime: float) -> float:
    """How early to refresh: at most 10 % of the lifetime and at most 60 s."""
    return min(0.1 * lifetime, 60.0)


def send_margin(lifetime: float) -> float:
    """A token this close to its expiry is not sent (`sendable`): half the refresh
    margin, for the request's way to the API and a server that rounds `exp` down."""
    return refresh_margin(lifetime) / 2


class ClientCredentials:
    """Fetches, caches and refreshes JWTs; single-flight."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        auth_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 15.0,
        give_up_after: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        watch: TokenWatch | None = None,
        stop: StopGate | None = None,
        on_token: Callable[[str], None] = lambda token: None,
    ) -> None:
        """`on_token` hears of each token fetched (the run masks it, `logs.REDACTOR`)."""
        self._on_token = on_token
        self._session = session
        self._stop = stop
        self._url = auth_url
        self._headers = {
            "Authorization": basic_authorization(client_id, client_secret),
            # explicit: the run's session adds no Content-Type itself (session.BodylessPost)
            "Content-Type": "application/x-www-form-urlencoded",
        }
        self._timeout = timeout
        self._give_up_after = give_up_after
        self._clock = clock
        self._sleep = sleep
        self._watch = watch or _Unwatched()
        self._token: str | None = None
        self._refresh_at = 0.0
        # token -> when it stops being sent (see `sendable`): the current one and the one
        # before it, which workers that took it before the refresh may still hold
        self._send_until: dict[str, float] = {}
        self._inflight: asyncio.Future[str] | None = None
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"ClientCredentials(url={self._url!r}, secret=<hidden>)"

    async def get(self) -> str:
        token = self._token
        if token is not None and self._clock() < self._refresh_at:
            return token
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh())
            self._inflight.add_done_callback(self._clear_inflight)
        # shield: a waiter that is cancelled must not cancel the refresh the others wait on.
        if self._stop is not None:
            return await self._stop.wait(asyncio.shield(self._inflight))
        return await asyncio.shield(self._inflight)

    def _clear_inflight(self, future: asyncio.Future[str]) -> None:
        if self._inflight is future:
            self._inflight = None
        if not future.cancelled():
            future.exception()  # mark retrieved: waiters re-raise it themselves

    def sendable(self, token: str) -> str | None:
        """`token` until it is within `send_margin` of its expiry (or refused with a
        401), then the cached token if another worker's `get` has fetched a fresh one
        meanwhile; else None: `get` must fetch one (a wait)."""
        now = self._clock()
        if now < self._send_until.get(token, 0.0):
            return token
        return self._token if self._token is not None and now < self._refresh_at else None

    def invalidate(self, token: str) -> None:
        """Forget `token` after a 401 so the next `get` fetches a new one."""
        self._send_until.pop(token, None)
        if self._token == token:
            self._token = None
            self._refresh_at = 0.0

    async def _refresh(self) -> str:
        deadline: float | None = None  # set at the first failure: its request's start + S
        last: RetryLater | None = None

        def left() -> float:
            """Seconds to the deadline; before any failure, the whole `give_up_after`."""
            return self._give_up_after if deadline is None else deadline - self._clock()

        def wait(state: RetryCallState) -> float:
            return max(min(BACKOFF(state), left()), 0.0)

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RetryLater),
            stop=lambda state: left() <= 0,
            wait=wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    started = self._clock()
                    if last is not None and left() < MIN_TRY:
                        raise last  # the wait ran to the deadline: no real try is left
                    try:
                        token = await self._fetch_once(min(self._timeout, left()))
                    except RetryLater as exc:
                        if deadline is None:
                            deadline = started + self._give_up_after
                        last = exc
                        self._watch.token_failing(self._url, str(exc))
                        raise
                    self._watch.token_answered()
                    return token
        except RetryLater as exc:
            raise AuthUnavailable(
                f"the token endpoint {self._url} failed for {self._give_up_after:g} s "
                f"(--give-up-after): last: {exc}"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetch_once(self, seconds: float) -> str:
        form = {"grant_type": "client_credentials", "scope": SCOPE}
        try:
            async with self._session.post(
                self._url,
                data=form,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                body = await response.read()
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            raise RetryLater(reason=f"no answer within {seconds:.3g} s") from None
        except aiohttp.ClientError as exc:
            raise RetryLater(reason=_failure(exc)) from None
        doc = _json(body)
        if status in (408, 429) or status >= 500:  # a timeout, a throttle, a failure: again
            raise RetryLater(retry_after, f"HTTP {status}")
        if status != 200:
            error = doc.get("error") if isinstance(doc.get("error"), str) else None
            reason = f"{status} {error}" if error else str(status)
            if status in (404, 405):  # nothing there takes tokens: the URL, not the client
                raise CredentialsRefused(
                    f"the token endpoint {self._url} answered {reason}", fix=FIX_URL
                )
            raise CredentialsRefused(
                f"the auth server refused the client credentials ({reason})", fix=FIX_CLIENT
            )
        token = doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise RetryLater(reason="HTTP 200 without an access_token")
        now = self._clock()
        lifetime = _lifetime(doc.get("expires_in"), token)
        if self._token is not None:
            self._send_until = {self._token: self._send_until.get(self._token, 0.0)}
        self._send_until[token] = now + lifetime - send_margin(lifetime)
        self._on_token(token)
        self._token = token
        self._refresh_at = now + lifetime - refresh_margin(lifetime)
        self.refreshes += 1
        return token


def _failure(exc: aiohttp.ClientError) -> str:
    """What went wrong, as people say it: `connection refused`, else the error's kind."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        # its errno is OpenSSL's 1, which os.strerror calls "operation not permitted"
        why = getattr(exc.certificate_error, "verify_message", None) or "verify failed"
        private = "issuer" in why or "self-signed" in why or "self signed" in why
        hint = ": for a private CA, give --ca-bundle" if private else ""
        return f"TLS certificate not trusted ({why}){hint}"
    cause = getattr(exc, "os_error", None)
    errno = getattr(cause, "errno", None) or getattr(exc, "errno", None)
    if errno:
        return os.strerror(errno).lower()
    return type(exc).__name__


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _lifetime(expires_in: Any, token: str) -> float:
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return float(expires_in)
    if isinstance(expires_in, str):
        try:
            return max(float(expires_in), 1.0)
        except ValueError:
            pass
    from_jwt = jwt_lifetime(token, time.time())
    return from_jwt if from_jwt and from_jwt > 0 else DEFAULT_LIFETIME
