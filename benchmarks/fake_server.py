"""Minimal Bambora-shaped fake API on aiohttp's low-level server (the benchmark fallback).

    python benchmarks/fake_server.py [--port 0] [--delay 0.1] [--record] [--uvloop]

Answers what `cancel-worker` needs and nothing else:

- `POST .../cancel/`                        -> 201 `{"state": "Canceled", ...}`
- `GET  /v1/merchants/{m}/payments/{ref}/` -> 200 `{"state": "Authorized", ...}`
- `POST /connect/token`                     -> 200 OAuth token JSON
- `GET  /__timestamps`                      -> JSON list of payment-call arrival times
  (`time.time()`, recorded only with `--record`; token calls are not recorded)
- `GET  /__first`                           -> `{"first": t or null, "count": n}`: the first
  payment call's arrival and how many came (with `--record`; cheap to poll)
- `POST /__reset`                            -> 204: forget the arrivals recorded so far

`--delay S` sleeps S seconds in every payment call (not the token call). Once listening it
prints `READY <port>` on standard output. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

CANCELED = b'{"state":"Canceled","id":"bench","amount":100,"currency":"EUR"}'
AUTHORIZED = b'{"state":"Authorized","id":"bench","amount":100,"currency":"EUR"}'
TOKEN = b'{"access_token":"bench-token","token_type":"Bearer","expires_in":3600}'
NOT_FOUND = b'{"type":"about:blank","title":"Not Found","status":404}'
JSON = "application/json"


def make_handler(
    delay: float, stamps: list[float] | None
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        method = request.method
        if path.startswith("/v1/merchants/"):
            if stamps is not None:
                stamps.append(time.time())
            if delay > 0:
                await asyncio.sleep(delay)
            if method == "POST" and path.endswith("/cancel/"):
                await request.read()
                return web.Response(status=201, body=CANCELED, content_type=JSON)
            if method == "GET":
                return web.Response(status=200, body=AUTHORIZED, content_type=JSON)
        elif path == "/connect/token" and method == "POST":
            await request.read()
            return web.Response(status=200, body=TOKEN, content_type=JSON)
        elif path == "/__first" and method == "GET":
            first = stamps[0] if stamps else None
            body = {"first": first, "count": len(stamps or [])}
            return web.Response(status=200, text=json.dumps(body), content_type=JSON)
        elif path == "/__reset" and method == "POST" and stamps is not None:
            stamps.clear()  # the next run's first call is measured afresh
            return web.Response(status=204)
        elif path == "/__timestamps" and method == "GET":
            return web.Response(status=200, text=json.dumps(stamps or []), content_type=JSON)
        return web.Response(status=404, body=NOT_FOUND, content_type=JSON)

    return handler


async def serve(port: int, delay: float, record: bool) -> None:
    stamps: list[float] | None = [] if record else None
    server = web.Server(make_handler(delay, stamps), access_log=None)
    runner = web.ServerRunner(server, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    print(f"READY {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per payment call")
    parser.add_argument("--record", action="store_true", help="record payment-call arrivals")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop if importable")
    args = parser.parse_args(argv)
    coro = serve(args.port, args.delay, args.record)
    if args.uvloop:
        try:
            import uvloop
        except ImportError:
            print("uvloop not importable; using asyncio's loop", file=sys.stderr)
        else:
            uvloop.run(coro)
            return 0
    asyncio.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
