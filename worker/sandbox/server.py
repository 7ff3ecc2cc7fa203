"""Starting and stopping the sandbox on a TCP port: `SandboxServer`, used by tests, by
`run --sandbox` and by the standalone command in `worker.sandbox.cli`."""

from __future__ import annotations

import ipaddress
from types import TracebackType
from typing import Any

from aiohttp import web

from worker.sandbox.app import SandboxApp
from worker.sandbox.config import SandboxConfig
from worker.sandbox.http import TOKEN_PATH
from worker.sandbox.state import SandboxState

# A 2,000-character reference of 4-byte UTF-8 characters is 24,000 bytes once
# percent-encoded; aiohttp's default request-line limit (8,190) would refuse it before
# any handler could answer, in a text/plain body the swagger does not describe.
_MAX_LINE_SIZE = 65536

# Backstop for aiohttp's graceful shutdown. Stalls end on their own when `stop()` sets
# the stopping event, so this only matters if a handler is stuck somewhere unexpected.
_SHUTDOWN_TIMEOUT = 0.25

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def _address(sockname: Any) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


class SandboxServer:
    """A Bambora-compatible API on a local port. `async with SandboxServer() as s: s.url`."""

    def __init__(
        self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config if config is not None else SandboxConfig()
        self.host = host
        self.port = port
        self.state = SandboxState()
        self._sandbox = SandboxApp(self.config, self.state)  # loads the seed file now
        self._runner: web.AppRunner | None = None
        self._url = ""
        self._bound: list[str] = []

    @property
    def url(self) -> str:
        if not self._url:
            raise RuntimeError("the sandbox is not started")
        return self._url

    @property
    def bound(self) -> list[str]:
        """Where it really listens, `host:port` per socket (`0.0.0.0:8080` for every
        IPv4 address), as opposed to `url`, which is where to connect from here."""
        if not self._bound:
            raise RuntimeError("the sandbox is not started")
        return list(self._bound)

    @property
    def loopback_only(self) -> bool:
        """Whether only this machine can reach it (and its unauthenticated admin paths)."""
        return all(_is_loopback(address.rsplit(":", 1)[0]) for address in self.bound)

    @property
    def api_url(self) -> str:
        return self.url

    @property
    def auth_url(self) -> str:
        return self.url + TOKEN_PATH

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the sandbox is already started")
        runner = web.AppRunner(
            self._sandbox.make_app(),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
            max_line_size=_MAX_LINE_SIZE,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]  # the real port when 0 was asked for
        # A wildcard address listens everywhere but is no address to connect to.
        host = _WILDCARDS.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        self._url = f"http://{host}:{port}"
        self._bound = [_address(sockname) for sockname in runner.addresses]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._sandbox.release_stalls()
        await runner.cleanup()
        self._url = ""
        self._bound = []

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def start_outage(self, seconds: float) -> None:
        """Every API and token request gets 503 or a dropped connection (alternately) for
        `seconds` from now; `start_outage(0)` ends an outage."""
        self.state.start_outage(seconds)

    def expire_tokens(self) -> None:
        """Every token issued so far is refused (401) from now on."""
        self._sandbox.tokens.expire_all()
