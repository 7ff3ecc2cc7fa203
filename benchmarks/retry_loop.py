"""CPU per reference of the retry wrapper alone, when the first try succeeds.

Compares tenacity's `AsyncRetrying` (a copy per reference, as concurrent references
need) with the canceller's explicit loop. The difference is what each reference pays
before its first request: `run/canceller.py` states it in its docstring.

    .venv/bin/python benchmarks/retry_loop.py
"""

from __future__ import annotations

import asyncio
import time

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from worker.bambora.backoff import BACKOFF, RetryLater

N = 50_000
ROUNDS = 3
RETRYING = AsyncRetrying(
    stop=stop_after_attempt(5),
    wait=BACKOFF,
    retry=retry_if_exception_type(RetryLater),
    reraise=True,
)


async def one_try() -> int:
    return 1


async def with_tenacity() -> int:
    async for attempt in RETRYING.copy():
        with attempt:
            return await one_try()
    raise AssertionError("unreachable")


async def with_loop() -> int:
    tries = 0
    while True:
        try:
            return await one_try()
        except RetryLater:
            tries += 1
            if tries >= 5:
                raise


async def main() -> None:
    best: dict[str, float] = {}
    for _ in range(ROUNDS):  # interleaved, best of ROUNDS: the least disturbed figure
        for fn in (with_tenacity, with_loop):
            start = time.process_time()
            for _ in range(N):
                await fn()
            micros = (time.process_time() - start) / N * 1e6
            best[fn.__name__] = min(best.get(fn.__name__, micros), micros)
    for name, micros in best.items():
        print(f"{name:15} {micros:7.2f} µs CPU per reference")


if __name__ == "__main__":
    asyncio.run(main())
