"""Wiring: builds the collaborators of a run from its settings, in one place.

`open_sender` opens the HTTP session (two when the token endpoint takes another proxy
than the API) and builds the token provider, the health gate, the throttle and the
`Canceller` (or `DryRun`), and closes the sessions after. `sandboxed` starts the
embedded sandbox for `--sandbox` and hands back settings aimed at it.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import aiohttp
import yarl
from tenacity.wait import WaitBaseT

from worker.bambora.api import ApiClient
from worker.bambora.auth import ClientCredentials, StaticToken
from worker.bambora.backoff import BACKOFF
from worker.bambora.deadline import Deadlines
from worker.bambora.session import make_session, proxy_for, tls_context
from worker.control.outage import OutageGate
from worker.control.stop import StopGate
from worker.control.throttle import Throttle
from worker.model import Mode, Outcome, Result, Row
from worker.observe import logs
from worker.run.canceller import Canceller, Journal
from worker.run.summary import Calls
from worker.settings import Credentials, Settings

#: The outage streak grows with the workers in flight, up to this many (control/outage.py).
MAX_STREAK_WORKERS = 10


class DryRun:
    """Stands in for the canceller under `--dry-run`: every valid row would be sent."""

    async def process(self, row: Row, *, maybe_landed: bool = False) -> Result:
        return Result(row.line, row.merchant, row.reference, Outcome.WOULD_CANCEL, extra=row.extra)


@dataclass
class Sender:
    """What a run sends through; a dry run has no tokens, health gate or throttle."""

    canceller: Canceller | DryRun
    tokens: ClientCredentials | StaticToken | None = None
    health: OutageGate | None = None
    throttle: Throttle | None = None

    def token_refreshes(self) -> int:
        return self.tokens.refreshes if self.tokens is not None else 0

    def held_seconds(self) -> float:
        """How long references were held behind an outage."""
        return self.health.held_total if self.health is not None else 0.0


@contextlib.asynccontextmanager
async def open_sender(
    s: Settings,
    calls: Calls,
    journal: Journal | None,
    stop: StopGate,
    *,
    wait: WaitBaseT = BACKOFF,
) -> AsyncIterator[Sender]:
    """`stop` is the run's gate: the token wait, the rate slot and the sends obey it.
    `wait`: the retry backoff policy (tests pass a fast one)."""
    if s.dry_run:
        yield Sender(DryRun())
        return
    async with contextlib.AsyncExitStack() as stack:
        session, token_session = await _sessions(s, stack)
        deadlines = Deadlines(s.timeout)
        stack.callback(deadlines.close)
        api = ApiClient(session, s.api_url, deadlines)
        yield assemble_sender(s, calls, journal, stop, api, token_session, wait=wait)


def assemble_sender(
    s: Settings,
    calls: Calls,
    journal: Journal | None,
    stop: StopGate,
    api: ApiClient,
    token_session: aiohttp.ClientSession,
    *,
    wait: WaitBaseT = BACKOFF,
    clock: Callable[[], float] = time.monotonic,
) -> Sender:
    """The outage gate, tokens, throttle and canceller over an API client and a token
    session: what `open_sender` opens, and the simulator hands fakes and its clock to."""
    # A streak of at least --max-attempts failures means "everyone is failing"
    # (control/outage.py explains why); larger with more workers in flight.
    health = OutageGate(
        threshold=max(s.max_attempts, min(s.concurrency, MAX_STREAK_WORKERS)),
        give_up_after=s.give_up_after,
        clock=clock,
    )
    creds = s.credentials
    tokens: ClientCredentials | StaticToken
    if creds.token:
        tokens = StaticToken(creds.token)
    else:
        assert creds.client_id and creds.client_secret
        tokens = ClientCredentials(
            token_session,
            s.auth_url,
            creds.client_id,
            creds.client_secret,
            timeout=s.timeout,
            give_up_after=s.give_up_after,
            clock=clock,
            watch=health,
            stop=stop,
            on_token=logs.REDACTOR.add_token,
        )
    throttle = Throttle(s.rate, clock=clock, stop=stop, deadline=health)
    canceller = Canceller(
        api,
        tokens,
        throttle,
        health,
        max_attempts=s.max_attempts,
        comment=s.comment,
        check_only=s.mode is Mode.CHECK,
        journal=journal,
        calls=calls,
        stop=stop,
        wait=wait,
    )
    return Sender(canceller, tokens, health, throttle)


async def _sessions(
    s: Settings, stack: contextlib.AsyncExitStack
) -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
    """The sessions for the API and for the token endpoint: one, unless their proxies differ.

    Proxies come from HTTPS_PROXY/HTTP_PROXY/NO_PROXY (`session.proxy_for`); `ca_bundle`
    (when set) holds the only CAs trusted. A bad bundle or proxy URL is a usage error
    (`CaBundleError`, `ProxyError`: exit 2) whose message names the culprit.
    """
    bundle = s.ca_bundle
    tls: ssl.SSLContext | None = tls_context(bundle) if bundle else None
    # The embedded sandbox is in this process: no proxy could reach it.
    api_proxy = None if s.sandbox else proxy_for(s.api_url)
    auth_proxy = None if s.sandbox else proxy_for(s.auth_url)
    for proxy in (api_proxy, auth_proxy):
        if proxy is not None:  # a proxy password is a secret: masked in every log line
            logs.REDACTOR.add(proxy.password, proxy.raw_password)
    if api_proxy or auth_proxy or bundle:
        logs.log.info(
            "egress", api_proxy=_shown(api_proxy), auth_proxy=_shown(auth_proxy), ca_bundle=bundle
        )

    async def open_session(proxy: yarl.URL | None) -> aiohttp.ClientSession:
        session = make_session(concurrency=s.concurrency, proxy=proxy, tls=tls)
        return await stack.enter_async_context(session)

    session = await open_session(api_proxy)
    if auth_proxy == api_proxy:
        return session, session
    return session, await open_session(auth_proxy)


def _shown(proxy: yarl.URL | None) -> str | None:
    return None if proxy is None else str(proxy.with_user(None))


@contextlib.asynccontextmanager
async def sandboxed(s: Settings) -> AsyncIterator[tuple[Settings, str | None]]:
    """With `--sandbox`: the embedded sandbox runs, and the settings point at it."""
    if not s.sandbox:
        yield s, None
        return
    from worker.sandbox import SandboxConfig, SandboxServer

    if s.sandbox_overrides:  # a CANCEL_WORKER_SANDBOX=1 left over must not go unnoticed
        names = ", ".join(s.sandbox_overrides)
        logs.log.warning(
            "sandbox_overrides",
            ignored=list(s.sandbox_overrides),
            message=f"sandbox mode (--sandbox or CANCEL_WORKER_SANDBOX) is on: {names} from "
            "the environment are ignored, and this run touches no real payment",
        )
    config = SandboxConfig(slow_delay=s.timeout + 1.0)
    async with SandboxServer(config, host="127.0.0.1", port=0) as server:
        logs.REDACTOR.add(config.client_secret)
        yield (
            replace(
                s,
                api_url=server.api_url,
                auth_url=server.auth_url,
                credentials=Credentials(config.client_id, config.client_secret),
            ),
            server.url,
        )
