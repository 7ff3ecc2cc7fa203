"""Resume and streams at scale: peak RSS and time to the first request.

    python benchmarks/resume.py                       # 1M and 10M resumes, 3M and 10M stdin
    python benchmarks/resume.py --resume 1000000 --stdin 3000000 --after-first 5

- **Rerun of a big report** (`--resume N...`): the input is `benchmarks/out/data/
  refs-N.csv` (see harness/data.py). The night is first run for real against the fake
  API and stopped (SIGTERM) once its first cancel arrived, so its run records, intent
  journal and survey (`<report>.survey.json`) are the ones a killed night leaves; then
  its report's rows are replaced by a `canceled` row for the first 90 % of the
  references, as if it had been killed at 90 % (nine million real cancels would take
  hours). With `--killed` the intent journal is the one a SIGKILL at 90 % leaves (an
  intent for every finished reference: only a clean end removes it). With
  `--no-survey` that first run is left out: the report holds those rows
  and a run record naming the input's SHA-256, as earlier versions measured, and the
  rerun reads the whole file. The rerun, `cancel-worker run` against a fresh fake API
  (`fake_server.py --record`, which tells when the first payment call arrived), is what
  is measured: time to the first request is that moment minus the process start. It
  goes on for `--after-first` seconds, then gets SIGTERM (its normal shutdown).
- **A dry run on standard input** (`--stdin N...`): `cat refs-N.csv | cancel-worker run -
  --dry-run`, to the end: exact duplicate detection over a stream.

Peak RSS is the worker process's own `VmHWM`, polled every 50 ms. The machine's load
average is printed with each figure: other processes share these cores. Results go to
`benchmarks/out/resume.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness.data import MERCHANTS, OUT, ensure_input
from harness.procs import _hwm_kib

FINAL_SHARE = 0.9
POLL = 0.05
HEADER = (
    "line,merchant_number,payment_reference,outcome,http_status,error_type,payment_state,"
    "attempts,detail,finished_at,amount,currency,run_id\n"
)
WORKER = [sys.executable, "-m", "worker"]
SERVER = [sys.executable, str(Path(__file__).with_name("fake_server.py")), "--record"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_report(report: Path, source: Path, n: int, record: bool = True) -> None:
    """A report as a night killed at 90 % leaves it, with its run record (`record`)."""
    done = int(n * FINAL_SHARE)
    with open(report, "w", encoding="utf-8") as out:
        out.write(HEADER)
        for start in range(0, done, 200_000):
            out.write(
                "".join(
                    f"{i + 2},{MERCHANTS[i & 3]},BENCH{i:012d},canceled,201,,Canceled,1,,"
                    "2026-12-01T21:00:00.000Z,100,EUR,benchrun0001\n"
                    for i in range(start, min(done, start + 200_000))
                )
            )
    if not record:
        return
    record = {
        "run_id": "benchrun0001",
        "mode": "run",
        "started_at": "2026-12-01T21:00:00.000Z",
        "input": str(source),
        "input_sha256": sha256_of(source),
        "shard": "0/1",
    }
    report.with_name(report.name + ".runs.jsonl").write_bytes(json.dumps(record).encode() + b"\n")


def write_journal(report: Path, n: int) -> None:
    """The intent journal a night SIGKILLed at 90 % leaves: an intent for every cancel
    it sent (a clean end or a completed night removes it; a kill cannot)."""
    done = int(n * FINAL_SHARE)
    with open(report.with_name(report.name + ".journal"), "w", encoding="utf-8") as out:
        for start in range(0, done, 200_000):
            out.write(
                "".join(
                    f'["{MERCHANTS[i & 3]}","BENCH{i:012d}"]\n'
                    for i in range(start, min(done, start + 200_000))
                )
            )


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(SERVER, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().split()
    if not line or line[0] != "READY":
        raise SystemExit("fake_server.py did not start")
    return proc, f"http://127.0.0.1:{line[1]}"


def first_call(url: str) -> tuple[float | None, int]:
    with urllib.request.urlopen(f"{url}/__first", timeout=5) as answer:
        doc = json.loads(answer.read())
    return doc["first"], int(doc["count"])


def _env(url: str) -> dict[str, str]:
    # the sandbox switch is left out, not emptied: an empty one is a usage error
    return {k: v for k, v in os.environ.items() if k != "CANCEL_WORKER_SANDBOX"} | {
        "BAMBORA_API_URL": url,
        "BAMBORA_AUTH_URL": f"{url}/connect/token",
        "BAMBORA_CLIENT_ID": "resume-benchmark",
        # not a word of any path: the log masker would star it out of the paths
        "BAMBORA_CLIENT_SECRET": "s3cr3t-9f2c",
    }


def first_night(cmd: list[str], url: str, timeout: float) -> None:
    """The night itself, stopped by SIGTERM once its first cancel arrived; the fake API
    then forgets it (a report names its API: the rerun must use the same one)."""
    proc = subprocess.Popen(cmd, env=_env(url), stderr=subprocess.DEVNULL)
    started = time.time()
    while proc.poll() is None and first_call(url)[0] is None:
        if time.time() - started > timeout:
            break
        time.sleep(POLL)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    urllib.request.urlopen(urllib.request.Request(f"{url}/__reset", method="POST"), timeout=5)


def resume(
    n: int, after_first: float, timeout: float, survey: bool = True, journal: bool = False
) -> dict[str, Any]:
    source = ensure_input(n)
    with tempfile.TemporaryDirectory(prefix="resume-bench-") as tmp:
        report = Path(tmp) / "night.report.csv"
        cmd = [*WORKER, "run", str(source), "--report", str(report), "--rate", "0"]
        cmd += ["--concurrency", "64", "--yes", "--log-format", "json"]
        server, url = start_server()
        env = _env(url)
        try:
            if survey:
                first_night(cmd, url, timeout)
            write_report(report, source, n, record=not survey)
            if journal:
                write_journal(report, n)
            surveyed = report.with_name(report.name + ".survey.json").exists()
            load = os.getloadavg()[0]
            with open(Path(tmp) / "stderr.log", "wb") as err:
                started = time.time()
                proc = subprocess.Popen(cmd, env=env, stderr=err, start_new_session=True)
                hwm, first, stopped_at, cpu_before = 0, None, None, None
                while proc.poll() is None:
                    hwm = max(hwm, _hwm_kib(proc.pid))
                    now = time.time()
                    if first is None:
                        first, _ = first_call(url)
                        cpu_before = None if first is None else _cpu_seconds(proc.pid)
                    if first is not None and stopped_at is None and now - first > after_first:
                        stopped_at = now
                        os.killpg(proc.pid, signal.SIGTERM)
                    if now - started > timeout:
                        os.killpg(proc.pid, signal.SIGKILL)
                        break
                    time.sleep(POLL)
                proc.wait()
            if first is None:
                first, _ = first_call(url)
            _, count = first_call(url)
            events = _events(Path(tmp) / "stderr.log")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait()
    return {
        "case": f"resume {n:,} (90 % final)"
        + ("" if survey else ", no survey")
        + (", journal of a SIGKILL" if journal else ""),
        "survey": surveyed,
        "references": n,
        "peak_rss_mb": round(hwm / 1024, 1),
        "first_request_s": None if first is None else round(first - started, 2),
        # the worker's own CPU time until then: what a machine of its own would take
        "cpu_s_before_first": cpu_before,
        "requests_seen": count,
        "exit_code": proc.returncode,
        "resuming_events": events.count("resuming"),
        "load_avg_1m": round(load, 2),
    }


def stdin_dry_run(n: int, timeout: float) -> dict[str, Any]:
    source = ensure_input(n)
    with tempfile.TemporaryDirectory(prefix="stdin-bench-") as tmp:
        report = Path(tmp) / "dry-run.csv"
        cmd = [*WORKER, "run", "-", "--dry-run", "--report", str(report), "--log-format", "json"]
        load = os.getloadavg()[0]
        with open(source, "rb") as data:
            cat = subprocess.Popen(["cat"], stdin=data, stdout=subprocess.PIPE)
        started = time.time()
        proc = subprocess.Popen(
            cmd, stdin=cat.stdout, stderr=subprocess.DEVNULL, start_new_session=True
        )
        assert cat.stdout is not None
        cat.stdout.close()
        hwm = 0
        while proc.poll() is None:
            hwm = max(hwm, _hwm_kib(proc.pid))
            if time.time() - started > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(POLL)
        proc.wait()
        cat.wait()
        spilled = any(Path(tmp).glob("*.index.sqlite"))
    return {
        "case": f"dry run on stdin {n:,}",
        "references": n,
        "peak_rss_mb": round(hwm / 1024, 1),
        "wall_s": round(time.time() - started, 1),
        "exit_code": proc.returncode,
        "index_left_behind": spilled,
        "load_avg_1m": round(load, 2),
    }


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)


def _events(log: Path) -> list[str]:
    names = []
    for raw in log.read_bytes().splitlines():
        with contextlib.suppress(ValueError):
            names.append(json.loads(raw).get("event", ""))
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resume", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--stdin", type=int, nargs="*", default=[3_000_000, 10_000_000])
    parser.add_argument("--after-first", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--no-survey", action="store_true", help="no first run: the rerun reads the whole file"
    )
    parser.add_argument(
        "--killed",
        action="store_true",
        help="the journal a SIGKILL leaves: an intent for each of the 90 %% finished",
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    survey, killed = not args.no_survey, args.killed
    cases = [
        lambda n=n: resume(n, args.after_first, args.timeout, survey, killed) for n in args.resume
    ]
    cases += [lambda n=n: stdin_dry_run(n, args.timeout) for n in args.stdin]
    for case in cases:
        results.append(case())
        print(json.dumps(results[-1]), flush=True)  # each as it is measured: they are long
        (OUT / "resume.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
