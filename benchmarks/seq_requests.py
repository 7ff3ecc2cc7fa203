"""Sequential baseline: one `requests.Session` (keep-alive), one cancel after another.

    python benchmarks/seq_requests.py INPUT.csv --out OUT.csv

Same job and output as `bare_aiohttp.py`, with no concurrency at all.
"""

from __future__ import annotations

import argparse
import os
import sys

import requests
from harness.baseline import Tally, api_base, cancel_url, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    with (
        requests.Session() as session,
        open(args.input, newline="", encoding="utf-8") as src,
        open(args.out, "w", encoding="utf-8") as out,
    ):
        tally = Tally(out)
        answer = session.post(
            os.environ["BAMBORA_AUTH_URL"],
            data={"grant_type": "client_credentials", "scope": "cancel_payment read_payment"},
            auth=(os.environ["BAMBORA_CLIENT_ID"], os.environ["BAMBORA_CLIENT_SECRET"]),
            timeout=15,
        )
        answer.raise_for_status()
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}", "API-Version": "1"}
        base = api_base()
        for ref, merchant in rows(src):
            try:
                response = session.post(
                    cancel_url(base, merchant, ref), headers=headers, timeout=15
                )
                status = response.status_code
                state = response.json().get("state", "")
            except (requests.RequestException, ValueError) as exc:
                status, state = 0, type(exc).__name__
            tally.add(merchant, ref, status, state)
        return tally.finish()


if __name__ == "__main__":
    sys.exit(main())
