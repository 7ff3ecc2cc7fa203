"""Sequential baseline: one `requests.Session` (keep-alive), one cancel after another.

    python benchmarks/seq_requests.py INPUT.csv --out OUT.csv

Same job and output as `bare_aiohttp.py`, with no concurrency at all.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from urllib.parse import quote

import requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    base = os.environ["BAMBORA_API_URL"].rstrip("/")
    counts = {"ok": 0, "bad": 0}
    started = time.perf_counter()
    with (
        requests.Session() as session,
        open(args.input, newline="", encoding="utf-8") as src,
        open(args.out, "w", encoding="utf-8") as out,
    ):
        answer = session.post(
            os.environ["BAMBORA_AUTH_URL"],
            data={"grant_type": "client_credentials", "scope": "cancel_payment read_payment"},
            auth=(os.environ["BAMBORA_CLIENT_ID"], os.environ["BAMBORA_CLIENT_SECRET"]),
            timeout=15,
        )
        answer.raise_for_status()
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}", "API-Version": "1"}
        reader = csv.reader(src)
        next(reader)
        for ref, merchant, *_ in reader:
            m, r = quote(merchant, safe=""), quote(ref, safe="")
            url = f"{base}/v1/merchants/{m}/payments/{r}/cancel/"
            try:
                response = session.post(url, headers=headers, timeout=15)
                status = response.status_code
                state = response.json().get("state", "")
            except (requests.RequestException, ValueError) as exc:
                status, state = 0, type(exc).__name__
            counts["ok" if status == 201 else "bad"] += 1
            out.write(f"{merchant},{ref},{status},{state}\n")
    elapsed = time.perf_counter() - started
    done = counts["ok"] + counts["bad"]
    summary = {**counts, "references": done, "elapsed_seconds": round(elapsed, 3)}
    summary["references_per_second"] = round(done / elapsed, 1) if elapsed > 0 else 0.0
    print(json.dumps(summary), flush=True)
    return 0 if counts["bad"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
