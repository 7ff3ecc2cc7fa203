"""The simulator's runner: replay one seed, or explore many.

    python -m tests.sim --seed 12345            # one history, printed
    python -m tests.sim --seeds 100000          # seeds 0..99999: figures, failing seeds
    python -m tests.sim --seeds 1000 --start 5000

Exits 1 when any history broke an invariant.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.sim.history import replay_command, run_history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--seed", type=int, help="replay this seed and print its history")
    group.add_argument("--seeds", type=int, help="explore this many seeds")
    parser.add_argument("--start", type=int, default=0, help="the first seed explored")
    parser.add_argument("--show", type=int, default=3, help="failing histories printed")
    args = parser.parse_args(argv)
    if args.seed is not None:
        history = run_history(args.seed)
        print(history.text())
        return 1 if history.violations else 0
    started = time.perf_counter()
    failing: list[int] = []
    runs = requests = 0
    for seed in range(args.start, args.start + args.seeds):
        history = run_history(seed)
        runs, requests = runs + history.runs, requests + history.requests
        if history.violations:
            failing.append(seed)
            if len(failing) <= args.show:
                print(history.text(), f"\nreplay: {replay_command(seed)}\n", sep="", flush=True)
        done = seed - args.start + 1
        if done % 5000 == 0:
            rate = done / (time.perf_counter() - started)
            print(
                f"... {done} seeds, {len(failing)} failing, {runs} runs, {requests} requests, "
                f"{rate:.1f} histories/s",
                file=sys.stderr,
                flush=True,
            )
    elapsed = time.perf_counter() - started
    print(
        f"seeds explored: {args.seeds} ({args.start}..{args.start + args.seeds - 1})\n"
        f"runs (process lives): {runs}, requests: {requests}\n"
        f"violations found: {len(failing)} seeds"
        + (f" (first: {', '.join(map(str, failing[:10]))})" if failing else "")
        + f"\nelapsed: {elapsed:.1f} s, histories/s: {args.seeds / elapsed:.1f}"
    )
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
