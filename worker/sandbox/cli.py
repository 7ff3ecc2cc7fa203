"""`cancel-worker sandbox` and `python -m worker.sandbox`: the sandbox alone, in a shell.

One click command, `sandbox_command`, for both ways in, so the flags cannot drift
apart. On start it prints where it listens and ready-to-paste lines that aim the
worker (and curl) at it; then it logs one line per request to stderr unless `--quiet`.
Mistakes a user can make (a port in use, an address not on this machine, a seed file
that is missing or wrong) end as one `Error:` line on stderr and exit 2, never a
traceback; click does the same for malformed flags.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal
import socket
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import click

from worker.sandbox.config import SandboxConfig
from worker.sandbox.faults import FAULT_KINDS
from worker.sandbox.server import SandboxServer
from worker.sandbox.state import request_log

EXIT_USAGE = 2
_DEFAULTS = SandboxConfig()


class SandboxError(click.ClickException):
    """A mistake in the command line or in a file it names: one line, exit 2."""

    exit_code = EXIT_USAGE


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror) or not exc.errno:
        return exc.strerror or str(exc)
    # asyncio wraps bind errors in a long message that repeats the address.
    return os.strerror(exc.errno)


def _fault_kinds(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; known: {','.join(FAULT_KINDS)}")
    return kinds


def _configured(flag: str, attr: str, kind: Any, help: str) -> Callable[..., Any]:
    """An option whose default is `SandboxConfig`'s own, shown in --help."""
    default = getattr(_DEFAULTS, attr)
    return click.option(flag, type=kind, default=default, show_default=True, help=help)


def _described(kinds: tuple[str, ...]) -> str:
    left_out = [k for k in FAULT_KINDS if k not in kinds]
    return f"all but {', '.join(left_out)}" if left_out else "all"


def banner(server: SandboxServer, quiet: bool) -> str:
    """What the command prints once it listens: the URLs, credentials and lines to paste."""
    cfg = server.config
    url, auth = server.url, server.auth_url
    env = {
        "BAMBORA_API_URL": server.api_url,
        "BAMBORA_AUTH_URL": auth,
        "BAMBORA_CLIENT_ID": cfg.client_id,
        "BAMBORA_CLIENT_SECRET": cfg.client_secret,
    }
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    user = shlex.quote(f"{cfg.client_id}:{cfg.client_secret}")
    where = ", ".join(server.bound)
    if [where] == [url.removeprefix("http://")]:
        listening = f"Bambora sandbox listening on {url}"
    else:  # a wildcard (0.0.0.0, ::) is where it listens, not an address to connect to
        listening = f"Bambora sandbox listening on {where}; from this machine: {url}"
    return "\n".join(
        [
            listening,
            f"  auth URL:      {auth}",
            f"  client id:     {cfg.client_id}",
            f"  client secret: {cfg.client_secret}",
            "Aim the worker at it (a token or secret file in the environment would win):",
            "  unset BAMBORA_TOKEN BAMBORA_CLIENT_SECRET_FILE",
            f"  export {exports}",
            "Try:",
            f"  TOKEN=$(curl -s -u {user} -d grant_type=client_credentials"
            f" -d 'scope=cancel_payment read_payment' {shlex.quote(auth)}"
            " | python3 -c 'import json,sys;"
            ' print(json.load(sys.stdin)["access_token"])\')',
            "  curl -s -X POST -H \"Authorization: Bearer $TOKEN\" -H 'API-Version: 1'"
            f" {shlex.quote(url + '/v1/merchants/T123/payments/order-1/cancel/')}",
            "Ctrl-C stops it." if quiet else "Each request is logged to stderr. Ctrl-C stops it.",
        ]
    )


def exposure_warning(server: SandboxServer) -> str | None:
    """Said on stderr when other machines can reach the sandbox: its admin endpoints
    take no credentials, and its own credentials are printed for anyone to paste."""
    if server.loopback_only:
        return None
    return textwrap.fill(
        f"Warning: listening on {', '.join(server.bound)}, beyond this machine: anyone who "
        "can reach it can use its admin endpoints (/_sandbox/outage, "
        "/_sandbox/expire_tokens, /_sandbox/state) without authentication, and its "
        "sandbox credentials. Use --host 127.0.0.1 unless other machines must reach it.",
        width=80,
        break_on_hyphens=False,
    )


def _log_requests_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    request_log.addHandler(handler)
    request_log.setLevel(logging.INFO)
    request_log.propagate = False


async def serve(server: SandboxServer, quiet: bool) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await server.start()
        except OSError as exc:
            where = f"{server.host}:{server.port}"
            raise SandboxError(f"cannot listen on {where}: {_reason(exc)}") from None
        try:
            if (warning := exposure_warning(server)) is not None:
                print(warning, file=sys.stderr, flush=True)
            print(banner(server, quiet), flush=True)
            await stop.wait()
        finally:
            await server.stop()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


@click.command(
    "sandbox", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0 picks a free one).",
)
@click.option(
    "--seed",
    "seed_file",
    metavar="FILE",
    help="JSON seed file: payments with a given state or scripted faults.",
)
@_configured("--random-seed", "seed", int, "Seed for random faults (same seed, same faults).")
@_configured(
    "--fault-rate",
    "fault_rate",
    click.FloatRange(0, 1),
    "Share of cancels and queries that get a random fault.",
)
@click.option(
    "--fault-kinds",
    metavar="KIND,...",
    default=",".join(_DEFAULTS.fault_kinds),
    show_default=_described(_DEFAULTS.fault_kinds),
    callback=_fault_kinds,
    help=f"Kinds random faults are drawn from, of: {', '.join(FAULT_KINDS)}.",
)
@_configured(
    "--token-ttl", "token_ttl", click.FloatRange(1), "Lifetime of issued tokens, in seconds."
)
@_configured(
    "--slow-delay",
    "slow_delay",
    click.FloatRange(0),
    "Seconds a slow- reference (or a slow_after fault) stalls before answering.",
)
@click.option(
    "--retry-after",
    default=_DEFAULTS.retry_after,
    show_default=True,
    help="Retry-After sent with 429s: seconds or an HTTP date.",
)
@click.option("--client-id", default=_DEFAULTS.client_id, show_default=True)
@click.option("--client-secret", default=_DEFAULTS.client_secret, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="Do not log each request to stderr.")
def sandbox_command(
    host: str,
    port: int,
    seed_file: str | None,
    random_seed: int,
    fault_rate: float,
    fault_kinds: tuple[str, ...],
    token_ttl: float,
    slow_delay: float,
    retry_after: str,
    client_id: str,
    client_secret: str,
    quiet: bool,
) -> None:
    """Run the Bambora-compatible sandbox API alone.

    Prints where it listens and lines to paste that aim the worker at it, then logs
    each request to stderr. Reference prefixes (flaky-, captured-, ...) choose what a
    payment answers; see docs/sandbox.md.
    """
    try:
        config = SandboxConfig(
            client_id=client_id,
            client_secret=client_secret,
            token_ttl=token_ttl,
            slow_delay=slow_delay,
            seed=random_seed,
            fault_rate=fault_rate,
            fault_kinds=fault_kinds,
            retry_after=retry_after,
            seed_file=seed_file,
            # Nobody reads single records from a shell; counts for /_sandbox/state are
            # kept anyway, and memory stays flat however long it runs.
            record_requests=False,
        )
        server = SandboxServer(config, host=host, port=port)  # reads the seed file
    except ValueError as exc:
        raise SandboxError(str(exc)) from None
    if not quiet:
        _log_requests_to_stderr()
    asyncio.run(serve(server, quiet))
