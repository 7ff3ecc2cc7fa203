"""How each client is started, measured and checked; one `Run` per measured run.

Owns the clients' command lines and their pass/fail checks: cancel-worker must count
every reference in the expected outcome in its JSON `summary` event, the baseline
scripts must report that many 201s, and every curl must print 201. A failed check
marks the run `ok: false` (exit status 1), it never stops the benchmark. `Context`
carries what every scenario needs: the process registry, the temp dir, the size scale
and the fast server.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import BENCH
from .procs import Measured, Processes, log, measure
from .servers import Server, fetch_token

PY = sys.executable


@dataclass
class Run:
    """One measured client run."""

    client: str
    label: str
    references: int
    wall_s: float
    refs_per_s: float
    cpu_s: float
    cpu_s_per_10k: float
    user_s: float
    sys_s: float
    rss_tree_peak_mb: float
    maxrss_mb: float
    ru_maxrss_mb: float
    returncode: int
    ok: bool
    in_process_refs_per_s: float | None = None
    requests: int | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _make_run(
    client: str, label: str, n: int, m: Measured, ok: bool, done: int | None = None, **kw: Any
) -> Run:
    """`n`: references in the input; `done`: how many the run got through (all by default;
    fewer in a time-boxed run), which the per-reference figures divide by."""
    done = n if done is None else done
    return Run(
        client=client,
        label=label,
        references=n,
        wall_s=round(m.wall, 3),
        refs_per_s=round(done / m.wall, 1) if m.wall else 0.0,
        cpu_s=round(m.cpu, 3),
        cpu_s_per_10k=round(m.cpu / done * 10_000, 3) if done else 0.0,
        user_s=round(m.user, 3),
        sys_s=round(m.sys, 3),
        rss_tree_peak_mb=round(m.rss_tree_peak_mb, 1),
        maxrss_mb=round(m.maxrss_mb, 1),
        ru_maxrss_mb=round(m.ru_maxrss_mb, 1),
        returncode=m.returncode,
        ok=ok and not m.timed_out,
        **kw,
    )


def cancel_worker_cmd() -> list[str]:
    beside = Path(PY).parent / "cancel-worker"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cancel-worker")
    return [found] if found else [PY, "-m", "worker"]


def summary_event(stderr_log: Path) -> dict[str, Any] | None:
    """The last `summary` event in a cancel-worker JSON log, if any."""
    summary = None
    with stderr_log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if '"summary"' in line:
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if doc.get("event") == "summary":
                        summary = doc
    return summary


@dataclass
class Context:
    procs: Processes
    tmp: Path
    quick: bool
    rounds: int = 3  # throughput: interleaved rounds of the compared clients
    dry_run_10m: bool = False  # memory: add the 10M-reference dry-run
    server: Server | None = None  # the fast server (throughput, memory, profile)

    @property
    def scale(self) -> int:
        return 10 if self.quick else 1

    def size(self, n: int) -> int:
        return max(n // self.scale, 1)

    def env(self, server: Server | None) -> dict[str, str]:
        """Our environment minus job settings, pointed at `server` (or at nothing, port 9)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("BAMBORA_") and k not in ("JOB_COMPLETION_INDEX", "SHARD_COUNT")
        }
        url = server.url if server else "http://127.0.0.1:9"
        env.update(
            BAMBORA_API_URL=url,
            BAMBORA_AUTH_URL=f"{url}/connect/token",
            BAMBORA_CLIENT_ID="bench",
            BAMBORA_CLIENT_SECRET="bench",
        )
        return env

    @contextlib.contextmanager
    def workdir(self, name: str) -> Iterator[Path]:
        """A scratch dir in the run's temp dir, removed afterwards (reports are not kept)."""
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def measure(
        self, cmd: list[str], server: Server | None, cwd: Path, timeout: float, **streams: Any
    ) -> Measured:
        """`procs.measure` of `cmd` in `cwd`, with the environment pointed at `server`."""
        return measure(self.procs, cmd, env=self.env(server), cwd=cwd, timeout=timeout, **streams)

    def fast(self) -> Server:
        assert self.server is not None, "this scenario needs the fast server"
        return self.server


def cancel_worker(
    ctx: Context,
    server: Server | None,
    path: Path,
    n: int,
    *,
    label: str,
    args: list[str],
    expect: str = "canceled",
    timeout: float,
    stop_after: float | None = None,
    timeline: bool = False,
    client: str = "cancel-worker",
) -> Run:
    """`cancel-worker run`; ok when it exits 0 and counts all `n` references `expect`.

    `stop_after`: a time-boxed run, SIGTERMed after that many seconds; ok when it exits
    143 with only `expect` outcomes (at least one). `timeline`: keep the RSS samples.
    """
    with ctx.workdir("cw") as work:
        cmd = [*cancel_worker_cmd(), "run", str(path), "--report", str(work / "r.csv"), *args]
        cmd += ["--log-format", "json"]
        stderr_log = work / "stderr.log"
        with stderr_log.open("wb") as err:
            m = ctx.measure(cmd, server, work, timeout, stop_after=stop_after, stderr=err)
        summary = summary_event(stderr_log) or {}
        tail = stderr_log.read_text(errors="replace")[-400:]
    outcomes = summary.get("outcomes", {})
    done = outcomes.get(expect, 0)
    if m.stopped:
        ok = m.returncode == 143 and done > 0 and set(outcomes) == {expect}
    else:
        ok = m.returncode == 0 and done == n
    detail = "" if ok else f"rc={m.returncode} outcomes={outcomes} timed_out={m.timed_out}"
    if not ok:
        log(f"{label}: FAILED {detail}\n{tail}")
    elapsed = summary.get("elapsed_seconds")
    extra: dict[str, Any] = {k: summary.get(k) for k in ("rows_read", "rows_reported")}
    if m.stopped:
        extra.update(stopped_after_s=stop_after, done=done)
    if timeline:
        extra["rss_timeline"] = m.rss_timeline
    return _make_run(
        client,
        label,
        n,
        m,
        ok,
        done=done if m.stopped else n,
        in_process_refs_per_s=round(done / elapsed, 1) if elapsed else None,
        requests=summary.get("requests"),
        detail=detail,
        extra=extra,
    )


def script(
    ctx: Context, server: Server, name: str, path: Path, n: int, *, label: str, args: list[str]
) -> Run:
    """A baseline script of benchmarks/ (`bare_aiohttp.py`, `seq_requests.py`)."""
    with ctx.workdir("script") as work:
        cmd = [PY, str(BENCH / name), str(path), "--out", str(work / "out.csv"), *args]
        with (work / "stdout.log").open("wb") as out, (work / "stderr.log").open("wb") as err:
            m = ctx.measure(cmd, server, work, 120 + n / 200, stdout=out, stderr=err)
        try:
            summary = json.loads((work / "stdout.log").read_text().strip().splitlines()[-1])
        except (IndexError, ValueError):
            summary = {}
        tail = (work / "stderr.log").read_text(errors="replace")[-400:]
    ok = m.returncode == 0 and summary.get("ok") == n
    detail = "" if ok else f"rc={m.returncode} summary={summary}"
    if not ok:
        log(f"{label}: FAILED {detail} {tail}")
    return _make_run(
        name.removesuffix(".py"),
        label,
        n,
        m,
        ok,
        in_process_refs_per_s=summary.get("references_per_second"),
        requests=n if ok else None,
        detail=detail,
    )


def curl(ctx: Context, server: Server, path: Path, n: int, *, label: str, parallel: int) -> Run:
    """`xargs -P parallel curl`, one process per reference, every answer must be 201."""
    token = fetch_token(server)
    with ctx.workdir("curl") as work:
        urls = work / "urls.txt"
        with path.open(encoding="utf-8") as src, urls.open("w", encoding="utf-8") as out:
            next(src)
            for line in src:
                ref, merchant = line.rstrip("\n").split(",")[:2]
                out.write(f"{server.url}/v1/merchants/{merchant}/payments/{ref}/cancel/\n")
        cmd = ["xargs", "-P", str(parallel), "-n", "1", "curl", "-sS", "-o", "/dev/null"]
        cmd += ["-w", "%{http_code}\\n", "-X", "POST", "-H", f"Authorization: Bearer {token}"]
        cmd += ["-H", "API-Version: 1"]
        codes = work / "codes.txt"
        with urls.open("rb") as src, codes.open("wb") as out:
            m = ctx.measure(cmd, server, work, 120 + n / 20, stdin=src, stdout=out)
        counted = Counter(codes.read_text().split())
    ok = m.returncode == 0 and counted.get("201") == n
    detail = "" if ok else f"rc={m.returncode} codes={dict(counted)}"
    return _make_run("xargs+curl", label, n, m, ok, requests=n, detail=detail)
