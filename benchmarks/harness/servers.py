"""The fake Bambora API the clients talk to, always on 127.0.0.1.

Owns which server answers and how it is started: nginx from a generated config in the
run's temp dir (never the system service) when installed, else the aiohttp fallback
(`benchmarks/fake_server.py`) in its own process. Both answer the same fixed JSON, so
scenarios only see a `Server` with a URL. Also the two side channels a scenario needs:
a token for clients that cannot fetch one (curl) and the fallback's arrival times.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .data import BENCH
from .procs import Processes, log

TOKEN_JSON = '{"access_token":"bench-token","token_type":"Bearer","expires_in":3600}'
CANCELED_JSON = '{"state":"Canceled","id":"bench","amount":100,"currency":"EUR"}'
AUTHORIZED_JSON = '{"state":"Authorized","id":"bench","amount":100,"currency":"EUR"}'


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
    cmd = [sys.executable, str(BENCH / "fake_server.py"), "--port", "0", "--delay", str(delay)]
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


@contextlib.contextmanager
def dedicated(procs: Processes, **kw: Any) -> Iterator[Server]:
    """An aiohttp fallback server of a scenario's own (`delay`, `record`), stopped after."""
    server = start_aiohttp(procs, **kw)
    try:
        yield server
    finally:
        procs.stop(server.proc)


def start_fast(procs: Processes, tmp: Path, choice: str) -> Server:
    """The fast server for throughput, memory and the profile: `auto`, `nginx` or `aiohttp`."""
    server = None
    if choice in ("auto", "nginx"):
        server = start_nginx(procs, tmp)
        if server is None and choice == "nginx":
            raise SystemExit("nginx requested but not found or not startable")
    return server or start_aiohttp(procs)


def fetch_token(server: Server) -> str:
    body = b"grant_type=client_credentials&scope=cancel_payment+read_payment"
    request = urllib.request.Request(server.auth_url, data=body, method="POST")
    request.add_header("Authorization", "Basic YmVuY2g6YmVuY2g=")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["access_token"])


def server_timestamps(server: Server) -> list[float]:
    with urllib.request.urlopen(f"{server.url}/__timestamps", timeout=30) as answer:
        return [float(t) for t in json.loads(answer.read())]
