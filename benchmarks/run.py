"""cancel-worker benchmarks: one entry point, every scenario side by side, loopback only.

    python benchmarks/run.py [--quick] [--only SCENARIO ...] [--server auto|nginx|aiohttp]
                             [--profile]

Scenarios (see benchmarks/README.md): throughput, latency, rate, memory. Prints a table,
writes benchmarks/out/results.json and benchmarks/out/results.png (if matplotlib imports).
Generated input files are cached in benchmarks/out/data/. Every process it starts (fake
API servers, clients) is stopped before it exits, on Ctrl-C and on errors too.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Any

import psutil

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
DATA = OUT / "data"
PY = sys.executable
SCENARIOS = ("throughput", "latency", "rate", "memory")
MERCHANTS = ("P1000001", "P1000002", "P1000003", "P1000004")
TOKEN_JSON = '{"access_token":"bench-token","token_type":"Bearer","expires_in":3600}'
CANCELED_JSON = '{"state":"Canceled","id":"bench","amount":100,"currency":"EUR"}'
AUTHORIZED_JSON = '{"state":"Authorized","id":"bench","amount":100,"currency":"EUR"}'
POLL_SECONDS = 0.05
MB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


class Processes:
    """Every child we start, each in its own session (so its group id is its pid)."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.live.append(proc)
        return proc

    def forget(self, proc: subprocess.Popen[bytes]) -> None:
        if proc in self.live:
            self.live.remove(proc)

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """SIGTERM the child's process group, SIGKILL it after `grace` seconds."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            if proc.returncode is not None:
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of a group whose leader is gone
        self.forget(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            self.stop(proc)


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signum)


@dataclass
class Measured:
    wall: float
    user: float
    sys: float
    rss_tree_peak_mb: float  # polled every 50 ms: sum of RSS over the child's process tree
    maxrss_mb: float  # kernel high-water mark of the largest single process in the tree
    returncode: int
    timed_out: bool = False

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total


def measure(
    procs: Processes,
    cmd: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    stdin: IO[bytes] | int = subprocess.DEVNULL,
    stdout: IO[bytes] | int = subprocess.DEVNULL,
    stderr: IO[bytes] | int = subprocess.DEVNULL,
) -> Measured:
    """Run `cmd`; CPU and maxrss come from wait4 (this child and its reaped descendants only)."""
    started = time.perf_counter()
    proc = procs.start(cmd, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr)
    root = psutil.Process(proc.pid)
    peak = 0
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _tree_rss(root))
        if time.perf_counter() - started > timeout:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    procs.forget(proc)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # nothing of it may outlive the measurement
    return Measured(
        wall=wall,
        user=usage.ru_utime,
        sys=usage.ru_stime,
        rss_tree_peak_mb=peak / MB,
        maxrss_mb=usage.ru_maxrss / 1024,  # Linux: KiB
        returncode=proc.returncode,
        timed_out=timed_out,
    )


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    kind: str  # "nginx" or "aiohttp"
    url: str
    proc: subprocess.Popen[bytes]
    describe: str

    @property
    def auth_url(self) -> str:
        return f"{self.url}/connect/token"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def nginx_config(tmp: Path, port: int, workers: int) -> str:
    user = ""
    if os.geteuid() == 0:  # a root master would otherwise run its workers as `nobody`
        import grp
        import pwd

        user_name = pwd.getpwuid(os.geteuid()).pw_name
        user = f"user {user_name} {grp.getgrgid(os.getegid()).gr_name};"
    temp_paths = "\n".join(
        f"    {name}_temp_path {tmp / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
{user}
worker_processes {workers};
daemon off;
master_process on;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
{temp_paths}
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server_tokens off;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type application/json;
        location = /connect/token {{ return 200 '{TOKEN_JSON}'; }}
        location ~ /cancel/$ {{ return 201 '{CANCELED_JSON}'; }}
        location ~ ^/v1/merchants/[^/]+/payments/[^/]+/$ {{ return 200 '{AUTHORIZED_JSON}'; }}
        location / {{ return 404 '{{"title":"Not Found","status":404}}'; }}
    }}
}}
"""


def start_nginx(procs: Processes, tmp: Path) -> Server | None:
    binary = nginx_binary()
    if binary is None:
        return None
    ndir = tmp / "nginx"
    ndir.mkdir()
    port = free_port()
    workers = 1 if (os.cpu_count() or 1) <= 2 else 2
    conf = ndir / "nginx.conf"
    conf.write_text(nginx_config(ndir, port, workers))
    errors = ndir / "stderr.log"
    with errors.open("wb") as err:
        cmd = [binary, "-p", str(ndir), "-c", str(conf), "-e", str(ndir / "error.log")]
        proc = procs.start(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    if not _wait_listening(port, proc):
        log(f"nginx did not start: {errors.read_text()[-500:]!r}; using the aiohttp fallback")
        procs.stop(proc)
        return None
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    describe = f"{version.replace('nginx version: ', '')} ({workers} worker process)"
    return Server("nginx", f"http://127.0.0.1:{port}", proc, describe)


def start_aiohttp(
    procs: Processes, *, delay: float = 0.0, record: bool = False, uvloop: bool = True
) -> Server:
    cmd = [PY, str(HERE / "fake_server.py"), "--port", "0", "--delay", str(delay)]
    if record:
        cmd.append("--record")
    if uvloop and find_spec("uvloop") is not None:
        cmd.append("--uvloop")
    proc = procs.start(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 15.0)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("READY "):
        procs.stop(proc)
        raise RuntimeError(f"aiohttp fake server did not start: {line!r}")
    port = int(line.split()[1])
    loop = "uvloop" if "--uvloop" in cmd else "asyncio loop"
    extra = f", +{delay * 1000:.0f} ms per payment call" if delay else ""
    describe = f"aiohttp {metadata.version('aiohttp')} fallback ({loop}, 1 process{extra})"
    return Server("aiohttp", f"http://127.0.0.1:{port}", proc, describe)


def fetch_token(server: Server) -> str:
    body = b"grant_type=client_credentials&scope=cancel_payment+read_payment"
    request = urllib.request.Request(server.auth_url, data=body, method="POST")
    request.add_header("Authorization", "Basic YmVuY2g6YmVuY2g=")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["access_token"])


def server_timestamps(server: Server) -> list[float]:
    with urllib.request.urlopen(f"{server.url}/__timestamps", timeout=30) as answer:
        return [float(t) for t in json.loads(answer.read())]


# --------------------------------------------------------------------------- inputs


def ensure_input(n: int, gz: bool = False) -> Path:
    """`payment_reference,merchant_number`, deterministic, cached; a smaller file is a prefix."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"refs-{n}.csv{'.gz' if gz else ''}"
    if path.exists():
        return path
    log(f"generating {path.relative_to(HERE.parent)} ({n:,} references)")
    part = path.with_name(path.name + ".part")
    chunk = 200_000
    with gzip.open(part, "wb", compresslevel=1) if gz else part.open("wb") as out:
        out.write(b"payment_reference,merchant_number\n")
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            out.write(
                "".join(f"BENCH{i:012d},{MERCHANTS[i & 3]}\n" for i in range(start, stop)).encode()
            )
    part.rename(path)
    return path


# --------------------------------------------------------------------------- clients


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
    returncode: int
    ok: bool
    in_process_refs_per_s: float | None = None
    requests: int | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _make_run(client: str, label: str, n: int, m: Measured, ok: bool, **kw: Any) -> Run:
    return Run(
        client=client,
        label=label,
        references=n,
        wall_s=round(m.wall, 3),
        refs_per_s=round(n / m.wall, 1) if m.wall else 0.0,
        cpu_s=round(m.cpu, 3),
        cpu_s_per_10k=round(m.cpu / n * 10_000, 3) if n else 0.0,
        user_s=round(m.user, 3),
        sys_s=round(m.sys, 3),
        rss_tree_peak_mb=round(m.rss_tree_peak_mb, 1),
        maxrss_mb=round(m.maxrss_mb, 1),
        returncode=m.returncode,
        ok=ok and not m.timed_out,
        **kw,
    )


class Bench:
    def __init__(self, procs: Processes, tmp: Path, quick: bool) -> None:
        self.procs = procs
        self.tmp = tmp
        self.quick = quick
        self.scale = 10 if quick else 1

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

    def workdir(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp))
        return path

    # cancel-worker -------------------------------------------------------------------

    def cancel_worker(
        self,
        server: Server | None,
        path: Path,
        n: int,
        *,
        label: str,
        args: list[str],
        expect: str = "canceled",
        timeout: float,
        client: str = "cancel-worker",
    ) -> Run:
        work = self.workdir("cw")
        report = work / "r.csv"
        cmd = [*cancel_worker_cmd(), "run", str(path), "--report", str(report), *args]
        cmd += ["--log-format", "json"]
        env = self.env(server)
        with (work / "stderr.log").open("wb") as err:
            m = measure(self.procs, cmd, env=env, cwd=work, timeout=timeout, stderr=err)
        summary = _summary(work / "stderr.log")
        outcomes = summary.get("outcomes", {}) if summary else {}
        ok = m.returncode == 0 and outcomes.get(expect) == n
        detail = "" if ok else f"rc={m.returncode} outcomes={outcomes} timed_out={m.timed_out}"
        if not ok:
            tail = (work / "stderr.log").read_text(errors="replace")[-400:]
            log(f"{label}: FAILED {detail}\n{tail}")
        run = _make_run(
            client,
            label,
            n,
            m,
            ok,
            in_process_refs_per_s=(
                round(n / summary["elapsed_seconds"], 1)
                if summary and summary.get("elapsed_seconds")
                else None
            ),
            requests=summary.get("requests") if summary else None,
            detail=detail,
        )
        shutil.rmtree(work, ignore_errors=True)
        return run

    # baselines -------------------------------------------------------------------------

    def script(
        self, server: Server, script: str, path: Path, n: int, *, label: str, args: list[str]
    ) -> Run:
        work = self.workdir("script")
        cmd = [PY, str(HERE / script), str(path), "--out", str(work / "out.csv"), *args]
        with (work / "stdout.log").open("wb") as out, (work / "stderr.log").open("wb") as err:
            m = measure(
                self.procs,
                cmd,
                env=self.env(server),
                cwd=work,
                timeout=120 + n / 200,
                stdout=out,
                stderr=err,
            )
        try:
            summary = json.loads((work / "stdout.log").read_text().strip().splitlines()[-1])
        except (IndexError, ValueError):
            summary = {}
        ok = m.returncode == 0 and summary.get("ok") == n
        detail = "" if ok else f"rc={m.returncode} summary={summary}"
        if not ok:
            log(f"{label}: FAILED {detail} {(work / 'stderr.log').read_text()[-400:]}")
        run = _make_run(
            script.removesuffix(".py"),
            label,
            n,
            m,
            ok,
            in_process_refs_per_s=summary.get("references_per_second"),
            requests=n if ok else None,
            detail=detail,
        )
        shutil.rmtree(work, ignore_errors=True)
        return run

    def curl(self, server: Server, path: Path, n: int, *, label: str, parallel: int) -> Run:
        work = self.workdir("curl")
        token = fetch_token(server)
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
            m = measure(
                self.procs,
                cmd,
                env=self.env(server),
                cwd=work,
                timeout=120 + n / 20,
                stdin=src,
                stdout=out,
            )
        counted = Counter(codes.read_text().split())
        ok = m.returncode == 0 and counted.get("201") == n
        detail = "" if ok else f"rc={m.returncode} codes={dict(counted)}"
        run = _make_run("xargs+curl", label, n, m, ok, requests=n, detail=detail)
        shutil.rmtree(work, ignore_errors=True)
        return run

    # scenarios -------------------------------------------------------------------------

    def throughput(self, server: Server) -> dict[str, Any]:
        n = self.size(50_000)
        conc = 64
        path = ensure_input(n)
        cw_args = ["--rate", "0", "--concurrency", str(conc)]
        runs: list[Run] = []
        notes: list[str] = []

        def add(run: Run) -> None:
            runs.append(run)
            log(
                f"  {run.label}: {run.refs_per_s:,.0f} refs/s, "
                f"{run.cpu_s_per_10k:.2f} CPU s/10k, maxrss {run.maxrss_mb:.0f} MB"
                + ("" if run.ok else "  FAILED")
            )

        log(f"throughput: {n:,} references, concurrency {conc}, server {server.describe}")
        add(
            self.cancel_worker(
                server,
                path,
                n,
                label=f"(a) cancel-worker --rate 0 -c {conc}",
                args=cw_args,
                timeout=120 + n / 100,
            )
        )
        c_flag = ["--concurrency", str(conc)]
        add(self.script(server, "bare_aiohttp.py", path, n, label="(b) bare aiohttp", args=c_flag))
        if find_spec("uvloop") is not None:
            add(
                self.script(
                    server,
                    "bare_aiohttp.py",
                    path,
                    n,
                    label="(c) bare aiohttp + uvloop",
                    args=[*c_flag, "--uvloop"],
                )
            )
        else:
            notes.append("(c) skipped: uvloop not importable")
        if shutil.which("curl") and shutil.which("xargs"):
            n_curl = self.size(5_000)
            add(
                self.curl(
                    server,
                    ensure_input(n_curl),
                    n_curl,
                    label=f"(d) xargs -P {conc} curl [{n_curl:,}-ref slice]",
                    parallel=conc,
                )
            )
        else:
            notes.append("(d) skipped: curl or xargs not found")
        if find_spec("requests") is not None:
            n_req = self.size(2_000)
            add(
                self.script(
                    server,
                    "seq_requests.py",
                    ensure_input(n_req),
                    n_req,
                    label=f"(e) sequential requests [{n_req:,}-ref slice]",
                    args=[],
                )
            )
        else:
            notes.append("(e) skipped: `requests` not importable (pip install requests)")
        ratios: dict[str, Any] = {}
        cw = runs[0]
        for run in runs[1:3]:
            if run.client == "bare_aiohttp" and run.ok and cw.ok:
                key = "vs_uvloop" if "uvloop" in run.label else "vs_asyncio"
                ratios[key] = {
                    "throughput": round(cw.refs_per_s / run.refs_per_s, 3),
                    "cpu_per_ref": round(cw.cpu_s_per_10k / run.cpu_s_per_10k, 3),
                    "maxrss": round(cw.maxrss_mb / run.maxrss_mb, 3),
                }
        return {
            "references": n,
            "concurrency": conc,
            "server": server.describe,
            "runs": [asdict(r) for r in runs],
            "ratios_cancel_worker_over_bare": ratios,
            "notes": notes,
        }

    def latency(self) -> dict[str, Any]:
        n = self.size(5_000)
        conc = 50
        delay = 0.1
        ideal = conc / delay
        path = ensure_input(n)
        server = start_aiohttp(self.procs, delay=delay)
        log(f"latency: {n:,} references, concurrency {conc}, server {server.describe}")
        try:
            cw = self.cancel_worker(
                server,
                path,
                n,
                label=f"cancel-worker --rate 0 -c {conc}",
                args=["--rate", "0", "--concurrency", str(conc)],
                timeout=120 + 4 * n / ideal,
            )
            bare = self.script(
                server,
                "bare_aiohttp.py",
                path,
                n,
                label=f"bare aiohttp -c {conc}",
                args=["--concurrency", str(conc)],
            )
        finally:
            self.procs.stop(server.proc)
        runs = []
        for run in (cw, bare):
            achieved = run.in_process_refs_per_s or run.refs_per_s
            runs.append(
                {
                    **asdict(run),
                    "ideal_refs_per_s": ideal,
                    "achieved_over_ideal_wall": round(run.refs_per_s / ideal, 3),
                    "achieved_over_ideal_in_process": round(achieved / ideal, 3),
                }
            )
            log(f"  {run.label}: {run.refs_per_s:.0f}/s wall, {achieved:.0f}/s in-process")
        return {
            "references": n,
            "concurrency": conc,
            "delay_s": delay,
            "ideal_refs_per_s": ideal,
            "server": server.describe,
            "runs": runs,
            "notes": ["nginx has no stock sleep, so the 100 ms server is the aiohttp fallback"],
        }

    def rate(self) -> dict[str, Any]:
        asked = 200.0
        n = self.size(4_000)
        conc = 64
        path = ensure_input(n)
        server = start_aiohttp(self.procs, record=True)
        log(f"rate: {n:,} references at --rate {asked:g}, concurrency {conc}")
        try:
            run = self.cancel_worker(
                server,
                path,
                n,
                label=f"cancel-worker --rate {asked:g} -c {conc}",
                args=["--rate", f"{asked:g}", "--concurrency", str(conc)],
                timeout=120 + 3 * n / asked,
            )
            stamps = sorted(server_timestamps(server))
        finally:
            self.procs.stop(server.proc)
        span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        achieved = (len(stamps) - 1) / span if span > 0 else 0.0
        peak, at = max_in_window(stamps, 1.0)
        result = {
            "references": n,
            "concurrency": conc,
            "asked_per_s": asked,
            "requests_seen": len(stamps),
            "span_s": round(span, 3),
            "achieved_per_s": round(achieved, 2),
            "achieved_over_asked": round(achieved / asked, 4),
            "max_in_any_1s_window": peak,
            "max_window_starts_after_first_s": round(at - stamps[0], 3) if stamps else None,
            "allowed_per_contract": int(asked) + 1,
            "within_contract": peak <= asked + 1,
            "server": server.describe,
            "run": asdict(run),
        }
        log(f"  achieved {achieved:.2f}/s over {span:.2f} s; max 1-s window {peak}")
        return result

    def memory(self, server: Server) -> dict[str, Any]:
        sizes = [self.size(n) for n in (100_000, 1_000_000, 10_000_000)]
        http_sizes = sizes[:1] if self.quick else sizes[:2]
        runs: list[dict[str, Any]] = []
        for n in sizes:
            path = ensure_input(n, gz=True)
            log(f"memory: dry-run {n:,} references")
            run = self.cancel_worker(
                None,
                path,
                n,
                label=f"dry-run {n:,}",
                args=["--dry-run"],
                expect="would_cancel",
                timeout=300 + n / 5_000,
            )
            runs.append({"mode": "dry-run", **asdict(run)})
            log(f"  maxrss {run.maxrss_mb:.1f} MB, {run.refs_per_s:,.0f} rows/s")
        for n in http_sizes:
            path = ensure_input(n, gz=True)
            log(f"memory: HTTP {n:,} references against {server.kind}")
            run = self.cancel_worker(
                server,
                path,
                n,
                label=f"HTTP {n:,} --rate 0 -c 64",
                args=["--rate", "0", "--concurrency", "64"],
                timeout=300 + n / 200,
            )
            runs.append({"mode": "http", **asdict(run)})
            log(f"  maxrss {run.maxrss_mb:.1f} MB, {run.refs_per_s:,.0f} refs/s")
        skipped = [n for n in sizes if n not in http_sizes]
        verdicts = {}
        for mode in ("dry-run", "http"):
            mine = [r for r in runs if r["mode"] == mode and r["ok"]]
            if len(mine) >= 2:
                small, big = mine[0], mine[-1]
                growth = big["maxrss_mb"] / small["maxrss_mb"]
                verdicts[mode] = {
                    "from": small["references"],
                    "to": big["references"],
                    "maxrss_growth": round(growth, 3),
                    "flat": growth <= 1.2,
                }
        notes = [
            f"HTTP path skipped for {', '.join(f'{n:,}' for n in skipped)} references "
            "(at the measured rate it would take too long; the dry-run covers the reader, "
            "duplicate detection and report writer at that size)"
        ]
        return {
            "sizes": sizes,
            "runs": runs,
            "flat_means": "maxRSS at the largest size within 20% of the smallest",
            "verdicts": verdicts,
            "notes": notes,
        }

    def profile(self, server: Server) -> dict[str, Any]:
        spy = shutil.which("py-spy", path=f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
        if spy is None:
            return {"skipped": "py-spy not found (pip install py-spy)"}
        n = self.size(50_000)
        path = ensure_input(n)
        work = self.workdir("profile")
        folded = OUT / "profile.folded"
        cmd = [spy, "record", "--format", "raw", "--nolineno", "--gil", "--rate", "250"]
        cmd += ["-o", str(folded)]
        cmd += ["--", *cancel_worker_cmd(), "run", str(path), "--report", str(work / "r.csv")]
        cmd += ["--rate", "0", "--concurrency", "64", "--log-format", "json"]
        log(f"profile: py-spy record on cancel-worker, {n:,} references")
        with (work / "stderr.log").open("wb") as err:
            m = measure(
                self.procs, cmd, env=self.env(server), cwd=work, timeout=300 + n / 100, stderr=err
            )
        if not folded.exists():
            tail = (work / "stderr.log").read_text(errors="replace")[-400:]
            return {"skipped": f"py-spy failed (rc={m.returncode}): {tail}"}
        shutil.rmtree(work, ignore_errors=True)
        own, files, total = own_time(folded)
        return {
            "references": n,
            "samples": total,
            "folded_stacks": str(folded.relative_to(HERE.parent)),
            "top_functions_own": [
                {"function": k, "share": round(v / total, 4)} for k, v in own.most_common(15)
            ],
            "top_files_own": [
                {"file": k, "share": round(v / total, 4)} for k, v in files.most_common(10)
            ],
            "note": "py-spy --gil: only samples holding the GIL, i.e. Python CPU time; "
            "wall time under py-spy is not comparable to the measured runs",
        }


def cancel_worker_cmd() -> list[str]:
    beside = Path(PY).parent / "cancel-worker"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cancel-worker")
    return [found] if found else [PY, "-m", "worker"]


def _summary(stderr_log: Path) -> dict[str, Any] | None:
    summary = None
    with stderr_log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if '"summary"' in line:
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if doc.get("event") == "summary":
                        summary = doc
    return summary


def max_in_window(stamps: list[float], width: float) -> tuple[int, float]:
    """Largest number of sorted `stamps` inside any half-open window of `width` seconds."""
    best, best_at, lo = 0, stamps[0] if stamps else 0.0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= width:
            lo += 1
        if hi - lo + 1 > best:
            best, best_at = hi - lo + 1, stamps[lo]
    return best, best_at


_LINE_NO = re.compile(r":\d+\)$")


def own_time(folded: Path) -> tuple[Counter[str], Counter[str], int]:
    """py-spy raw (folded) stacks -> samples per leaf function and per leaf file."""
    own: Counter[str] = Counter()
    files: Counter[str] = Counter()
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = _LINE_NO.sub(")", stack.rsplit(";", 1)[-1])
        own[leaf] += int(count)
        match = re.search(r"\(([^()]*)\)$", leaf)
        files[match.group(1) if match else leaf] += int(count)
        total += int(count)
    return own, files, total


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    commit = subprocess.run(
        ["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),
        "uvloop": version("uvloop"),
        "cancel_worker": version("cancel-worker"),
        "git": commit or None,
    }


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells))
    return "\n".join(out)


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    parts = [
        f"cancel-worker benchmarks  {meta['date']}  quick={meta['quick']}  "
        f"total {meta.get('total_wall_s', 0):.0f} s",
        f"machine: {meta['nproc']} CPUs ({meta['cpu_model']}), {meta['memory_gb']} GB, "
        f"Linux {meta['kernel']}; Python {meta['python']}, aiohttp {meta['aiohttp']}, "
        f"uvloop {meta['uvloop']}, cancel-worker {meta['cancel_worker']} ({meta['git']})",
        f"fast server: {meta.get('server', 'n/a')}",
    ]
    if tp := results.get("throughput"):
        parts.append(
            f"\n1. Throughput, no rate limit: {tp['references']:,} refs, c={tp['concurrency']}"
        )
        rows = [
            [
                r["label"] + ("" if r["ok"] else "  FAILED"),
                f"{r['references']:,}",
                f"{r['refs_per_s']:,.0f}",
                f"{r['in_process_refs_per_s']:,.0f}" if r["in_process_refs_per_s"] else "-",
                f"{r['cpu_s_per_10k']:.2f}",
                f"{r['maxrss_mb']:.0f}",
                f"{r['rss_tree_peak_mb']:.0f}",
            ]
            for r in tp["runs"]
        ]
        parts.append(
            table(
                ["client", "refs", "refs/s", "in-proc/s", "CPU s/10k", "maxRSS MB", "treeRSS MB"],
                rows,
            )
        )
        for key, ratio in tp["ratios_cancel_worker_over_bare"].items():
            parts.append(
                f"cancel-worker / bare ({key.removeprefix('vs_')}): "
                f"throughput x{ratio['throughput']:.2f}, CPU per ref x{ratio['cpu_per_ref']:.2f}, "
                f"maxRSS x{ratio['maxrss']:.2f}"
            )
        parts.extend(f"note: {n}" for n in tp["notes"])
    if lat := results.get("latency"):
        parts.append(
            f"\n2. Latency-bound: +{lat['delay_s'] * 1000:.0f} ms per call, "
            f"{lat['references']:,} refs, c={lat['concurrency']}, "
            f"ideal {lat['ideal_refs_per_s']:.0f}/s ({lat['server']})"
        )
        rows = [
            [
                r["label"] + ("" if r["ok"] else "  FAILED"),
                f"{r['refs_per_s']:.0f}",
                f"{r['achieved_over_ideal_wall']:.1%}",
                f"{r['in_process_refs_per_s'] or 0:.0f}",
                f"{r['achieved_over_ideal_in_process']:.1%}",
            ]
            for r in lat["runs"]
        ]
        parts.append(table(["client", "refs/s", "of ideal", "in-proc/s", "of ideal"], rows))
        parts.extend(f"note: {n}" for n in lat["notes"])
    if rt := results.get("rate"):
        verdict = "OK" if rt["within_contract"] else "EXCEEDS R+1"
        parts.append(
            f"\n3. Rate accuracy: --rate {rt['asked_per_s']:g}, {rt['references']:,} refs, "
            f"c={rt['concurrency']} ({rt['server']})\n"
            f"achieved {rt['achieved_per_s']:.2f}/s over {rt['span_s']:.2f} s "
            f"({rt['achieved_over_asked']:.2%} of asked); max in any 1-s window: "
            f"{rt['max_in_any_1s_window']} (contract <= {rt['allowed_per_contract']}: {verdict})"
            + ("" if rt["run"]["ok"] else "  RUN FAILED")
        )
    if mem := results.get("memory"):
        parts.append("\n4. Memory (peak RSS of the cancel-worker process; .csv.gz inputs)")
        rows = [
            [
                r["label"] + ("" if r["ok"] else "  FAILED"),
                f"{r['references']:,}",
                f"{r['wall_s']:.1f}",
                f"{r['refs_per_s']:,.0f}",
                f"{r['maxrss_mb']:.1f}",
            ]
            for r in mem["runs"]
        ]
        parts.append(table(["run", "refs", "wall s", "refs/s", "maxRSS MB"], rows))
        for mode, v in mem["verdicts"].items():
            parts.append(
                f"{mode}: maxRSS x{v['maxrss_growth']:.2f} from {v['from']:,} to {v['to']:,} "
                f"-> {'flat' if v['flat'] else 'NOT flat'} (flat = within 20%)"
            )
        parts.extend(f"note: {n}" for n in mem["notes"])
    if prof := results.get("profile"):
        if "skipped" in prof:
            parts.append(f"\nprofile: skipped: {prof['skipped']}")
        else:
            parts.append(
                f"\nProfile (py-spy, {prof['samples']:,} samples, own time, "
                f"{prof['references']:,} refs, GIL-holding samples only; "
                f"stacks in {prof['folded_stacks']})"
            )
            rows = [[f["function"], f"{f['share']:.1%}"] for f in prof["top_functions_own"][:10]]
            parts.append(table(["function (file)", "own"], rows))
    return "\n".join(parts)


def chart(results: dict[str, Any], path: Path) -> str | None:
    """PNG of the numbers; returns a note instead when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib not importable (pip install matplotlib)"
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    meta = results["meta"]
    fig.suptitle(
        f"cancel-worker benchmarks {meta['date']} - {meta['nproc']} CPUs {meta['cpu_model']}, "
        f"Python {meta['python']}, aiohttp {meta['aiohttp']}; server: {meta.get('server')}",
        fontsize=9,
    )
    if tp := results.get("throughput"):
        labels = [r["label"].replace(" [", "\n[") for r in tp["runs"]]
        for ax, key, title in (
            (axes[0][0], "refs_per_s", "throughput, references/s (higher is better)"),
            (axes[0][1], "cpu_s_per_10k", "CPU seconds per 10,000 references (lower is better)"),
            (axes[1][0], "maxrss_mb", "peak RSS MB, largest process (lower is better)"),
        ):
            values = [r[key] for r in tp["runs"]]
            bars = ax.barh(labels, values, color="tab:blue")
            bars[0].set_color("tab:orange")
            ax.bar_label(bars, fmt="%.4g", fontsize=8)
            ax.set_title(title, fontsize=10)
            ax.invert_yaxis()
            ax.tick_params(labelsize=8)
    else:
        for ax in (axes[0][0], axes[0][1], axes[1][0]):
            ax.set_axis_off()
    ax = axes[1][1]
    if mem := results.get("memory"):
        for mode, marker in (("dry-run", "o-"), ("http", "s-")):
            points = [(r["references"], r["maxrss_mb"]) for r in mem["runs"] if r["mode"] == mode]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker, label=f"cancel-worker {mode}")
        ax.set_xscale("log")
        top = max((r["maxrss_mb"] for r in mem["runs"]), default=1.0)
        ax.set_ylim(0, top * 1.2)
        ax.set_xlabel("references in input")
        ax.set_ylabel("peak RSS MB")
        ax.set_title("memory vs input size (flat = largest within 20% of smallest)", fontsize=10)
        ax.legend(fontsize=8)
    else:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cancel-worker benchmarks (loopback only)")
    parser.add_argument("--quick", action="store_true", help="every size / 10: a smoke run")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, metavar="SCENARIO")
    parser.add_argument(
        "--server",
        choices=("auto", "nginx", "aiohttp"),
        default="auto",
        help="fast fake API for throughput and memory: nginx if installed (auto), or aiohttp",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run cancel-worker once under py-spy (throughput input) and list hot spots",
    )
    args = parser.parse_args(argv)
    chosen = args.only or list(SCENARIOS)
    OUT.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_interrupt)
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    started = time.perf_counter()
    results: dict[str, Any] = {"meta": {**machine(), "quick": args.quick, "scenarios": chosen}}
    status = 0
    try:
        bench = Bench(procs, tmp, args.quick)
        server: Server | None = None
        if {"throughput", "memory"} & set(chosen) or args.profile:
            if args.server in ("auto", "nginx"):
                server = start_nginx(procs, tmp)
                if server is None and args.server == "nginx":
                    raise SystemExit("nginx requested but not found or not startable")
            if server is None:
                server = start_aiohttp(procs)
            results["meta"]["server"] = f"{server.kind}: {server.describe}"
            log(f"fast server: {server.describe} at {server.url}")
        if "throughput" in chosen and server:
            results["throughput"] = bench.throughput(server)
        if "latency" in chosen:
            results["latency"] = bench.latency()
        if "rate" in chosen:
            results["rate"] = bench.rate()
        if "memory" in chosen and server:
            results["memory"] = bench.memory(server)
        if args.profile and server:
            results["profile"] = bench.profile(server)
    except KeyboardInterrupt as exc:
        log("interrupted: stopping every child process")
        results["meta"]["interrupted"] = True
        status = 128 + (exc.args[0] if exc.args else signal.SIGINT)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    results["meta"]["total_wall_s"] = round(time.perf_counter() - started, 1)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    note = chart(results, OUT / "results.png")
    print(render(results))
    print(f"\nwrote {OUT / 'results.json'}")
    print(note or f"wrote {OUT / 'results.png'}")
    failed = any(
        not r.get("ok", True)
        for section in ("throughput", "latency", "memory")
        for r in results.get(section, {}).get("runs", [])
    )
    return status or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
