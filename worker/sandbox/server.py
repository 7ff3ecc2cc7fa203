"""Starting and stopping the sandbox: `SandboxServer` for tests and the embedded run,
`run_sandbox` and `main` for running it alone from a shell."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
from collections.abc import Sequence
from types import TracebackType

from aiohttp import web

from worker.sandbox.app import SandboxApp
from worker.sandbox.config import SandboxConfig
from worker.sandbox.faults import FAULT_KINDS
from worker.sandbox.http import TOKEN_PATH
from worker.sandbox.state import SandboxState
from worker.sandbox.tokens import DEFAULT_SCOPE

# A 2,000-character reference of 4-byte UTF-8 characters is 24,000 bytes once
# percent-encoded; aiohttp's default request-line limit (8,190) would refuse it before
# any handler could answer, in a text/plain body the swagger does not describe.
_MAX_LINE_SIZE = 65536

# Backstop for aiohttp's graceful shutdown. Stalls end on their own when `stop()` sets
# the stopping event, so this only matters if a handler is stuck somewhere unexpected.
_SHUTDOWN_TIMEOUT = 0.25


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

    @property
    def url(self) -> str:
        if not self._url:
            raise RuntimeError("the sandbox is not started")
        return self._url

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
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._url = f"http://{host}:{port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._sandbox.release_stalls()
        await runner.cleanup()
        self._url = ""

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

    def issue_token(self, scope: str = DEFAULT_SCOPE) -> str:
        """A valid token without a token request (e.g. for a `BAMBORA_TOKEN` test);
        not counted in `state.tokens_issued`."""
        return self._sandbox.tokens.issue(self.config.client_id, scope)


def banner(server: SandboxServer) -> str:
    """What `run_sandbox` prints: where it listens, the credentials and curl to try."""
    cfg = server.config
    url, auth = server.url, server.auth_url
    return "\n".join(
        [
            f"Bambora sandbox listening on {url}",
            f"  auth URL:      {auth}",
            f"  client id:     {cfg.client_id}",
            f"  client secret: {cfg.client_secret}",
            "Try:",
            f"  TOKEN=$(curl -s -u {shlex.quote(f'{cfg.client_id}:{cfg.client_secret}')}"
            " -d grant_type=client_credentials -d 'scope=cancel_payment read_payment'"
            f" {auth} | python3 -c 'import json,sys;"
            ' print(json.load(sys.stdin)["access_token"])\')',
            "  curl -s -X POST -H \"Authorization: Bearer $TOKEN\" -H 'API-Version: 1'"
            f" {url}/v1/merchants/T123/payments/order-1/cancel/",
        ]
    )


async def serve(host: str, port: int, config: SandboxConfig) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly."""
    server = SandboxServer(config, host, port)
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        print(banner(server), flush=True)
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await server.stop()


def run_sandbox(host: str, port: int, config: SandboxConfig) -> None:
    """Run the sandbox in the foreground (blocking) until SIGINT/SIGTERM."""
    asyncio.run(serve(host, port, config))


def build_parser() -> argparse.ArgumentParser:
    defaults = SandboxConfig()
    p = argparse.ArgumentParser(
        prog="python -m worker.sandbox",
        description="Run the Bambora-compatible sandbox API.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--seed", metavar="FILE", help="JSON seed file of payments and faults")
    p.add_argument("--fault-seed", type=int, default=defaults.seed, help="seeds random faults")
    p.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    p.add_argument(
        "--fault-kinds",
        default=",".join(defaults.fault_kinds),
        help=f"comma-separated, from: {','.join(FAULT_KINDS)}",
    )
    p.add_argument("--token-ttl", type=float, default=defaults.token_ttl)
    p.add_argument("--slow-delay", type=float, default=defaults.slow_delay)
    p.add_argument("--retry-after", default=defaults.retry_after)
    p.add_argument("--client-id", default=defaults.client_id)
    p.add_argument("--client-secret", default=defaults.client_secret)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = SandboxConfig(
            client_id=args.client_id,
            client_secret=args.client_secret,
            token_ttl=args.token_ttl,
            slow_delay=args.slow_delay,
            seed=args.fault_seed,
            fault_rate=args.fault_rate,
            fault_kinds=tuple(k for k in args.fault_kinds.split(",") if k),
            retry_after=args.retry_after,
            seed_file=args.seed,
        )
        run_sandbox(args.host, args.port, config)
    except (ValueError, OSError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    return 0
