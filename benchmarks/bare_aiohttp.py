"""The floor to compare `cancel-worker` with: the least aiohttp code that does the same job.

    python benchmarks/bare_aiohttp.py INPUT.csv --out OUT.csv [--concurrency 64] [--uvloop]

One token from BAMBORA_AUTH_URL (client credentials, Basic auth), one ClientSession,
N tasks pulling `payment_reference,merchant_number` rows from one shared iterator, one
`POST .../cancel/` each (`Authorization: Bearer`, `API-Version: 1`), the JSON answer
parsed, one CSV line per reference written to OUT. No retries, no rate limit, no
journal, no resume. Prints a JSON summary on standard output; exit 1 if any reference
did not answer 201.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from collections.abc import Iterator
from typing import TextIO

import aiohttp
from harness.baseline import Tally, api_base, cancel_url, rows


async def fetch_token(session: aiohttp.ClientSession) -> str:
    pair = f"{os.environ['BAMBORA_CLIENT_ID']}:{os.environ['BAMBORA_CLIENT_SECRET']}"
    headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}
    form = {"grant_type": "client_credentials", "scope": "cancel_payment read_payment"}
    url = os.environ["BAMBORA_AUTH_URL"]
    async with session.post(url, data=form, headers=headers) as response:
        response.raise_for_status()
        doc = await response.json(content_type=None)
    return str(doc["access_token"])


async def worker(
    session: aiohttp.ClientSession,
    refs: Iterator[tuple[str, str]],
    base: str,
    headers: dict[str, str],
    tally: Tally,
) -> None:
    for ref, merchant in refs:
        try:
            async with session.post(cancel_url(base, merchant, ref), headers=headers) as response:
                body = await response.read()
                status = response.status
            state = json.loads(body).get("state", "") if body else ""
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            status, state = 0, type(exc).__name__
        tally.add(merchant, ref, status, state)


async def run(src: TextIO, out: TextIO, concurrency: int) -> int:
    base = api_base()
    tally = Tally(out)
    connector = aiohttp.TCPConnector(limit=concurrency)
    refs = rows(src)
    async with aiohttp.ClientSession(connector=connector) as session:
        token = await fetch_token(session)
        headers = {"Authorization": f"Bearer {token}", "API-Version": "1"}
        await asyncio.gather(
            *(worker(session, refs, base, headers, tally) for _ in range(concurrency))
        )
    return tally.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("--out", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args(argv)
    with (
        open(args.input, newline="", encoding="utf-8") as src,
        open(args.out, "w", encoding="utf-8") as out,
    ):
        coro = run(src, out, args.concurrency)
        if args.uvloop:
            import uvloop

            return uvloop.run(coro)
        return asyncio.run(coro)


if __name__ == "__main__":
    sys.exit(main())
