"""Event loop: how a job's coroutine is run, and the garbage collector set for the job.

A job makes tens of thousands of requests, each allocating a few hundred short-lived
objects (aiohttp's request and response, futures, coroutine frames), nearly all freed
by reference counting the moment they are done with. CPython's cyclic collector does
not know that: by default it scans the youngest objects every 700 allocations, and now
and then every object of the process, modules included. Measured on the throughput
benchmark (50,000 references against nginx, docs/performance.md), that was 6 to 8 % of
the process's CPU. So, once, before the job starts:

- `gc.freeze()`: every object alive by then (the imported modules, the settings, what
  `prepare` keeps for the whole run) moves to the permanent generation, which no
  collection scans again. They live until the process ends anyway.
- the youngest generation is collected every `YOUNG_COLLECTION` allocations instead of
  700. Cyclic garbage (an exception and its traceback, mostly) waits a little longer
  for its collection; peak memory did not move (docs/performance.md).

Usage::

    tune_collector()                       # once, before prepare
    code = run_loop(lambda: job(), use_uvloop=True)
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any

#: Net container allocations between two collections of the youngest generation
#: (CPython's default: 700). 5,000 already took most of the gain; above 20,000 none.
YOUNG_COLLECTION = 20_000


def tune_collector() -> None:
    """Freeze what is alive now and collect the youngest generation less often."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION, middle, old)


def run_loop(main: Callable[[], Coroutine[Any, Any, int]], use_uvloop: bool) -> int:
    """Run `main()` to its end on uvloop (when asked and installed) or asyncio's loop."""
    gc.freeze()  # what prepare built and the imports since `tune_collector`
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is optional off Linux/macOS
            pass
        else:
            return uvloop.run(main())
    return asyncio.run(main())
