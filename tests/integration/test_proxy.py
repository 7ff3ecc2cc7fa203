"""Egress through a forward proxy: the real CLI against the sandbox, via a proxy on loopback.

`ForwardProxy` is a minimal HTTP forward proxy that records every request it carries:
absolute-form requests (`POST http://127.0.0.1:PORT/path HTTP/1.1`, how plain http goes
through a proxy) are forwarded and answered one per connection; `CONNECT host:port`
opens a blind tunnel (how https goes through one), used here with a private CA.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yarl

from tests.support import env_for, read_report, run_cli, sandbox, write_csv
from tests.unit.bambora.pki import make_pki, tls_server
from worker.bambora.api import ApiClient
from worker.bambora.deadline import Deadlines
from worker.bambora.session import make_session, proxy_for, tls_context
from worker.model import Op
from worker.sandbox import SandboxServer

PROXY_VARIABLES = {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # absolute-form URL, or host:port for CONNECT
    headers: dict[str, str]  # names lower-cased


class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1 that records what passes through it.

    With `login`, a request without that Proxy-Authorization gets 407 (and is recorded).
    Request bodies must carry a Content-Length (aiohttp's do); every answer closes its
    connection, so the client opens one per request.
    """

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.seen: list[Seen] = []
        self._expected = (
            "Basic " + base64.b64encode(":".join(login).encode()).decode() if login else None
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def targets(self, method: str) -> list[str]:
        return [s.target for s in self.seen if s.method == method]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *fields = head.decode("latin-1").split("\r\n")[:-2]
            method, target, _ = line.split(" ", 2)
            headers = {}
            for field in fields:
                name, _, value = field.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.seen.append(Seen(method, target, headers))
            if self._expected and headers.get("proxy-authorization") != self._expected:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
                writer.write(b"Proxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")
            elif method == "CONNECT":
                await self._tunnel(target, reader, writer)
            else:
                await self._forward(method, target, headers, reader, writer)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _forward(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        assert "transfer-encoding" not in headers, "this proxy reads Content-Length bodies only"
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        url = yarl.URL(target, encoded=True)
        assert url.absolute and url.host and url.port, f"not an absolute-form target: {target}"
        up_reader, up_writer = await asyncio.open_connection(url.host, url.port)
        hop_by_hop = ("connection", "keep-alive", "proxy-authorization", "proxy-connection")
        lines = [f"{method} {url.raw_path_qs} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k not in hop_by_hop]
        lines += ["Connection: close", "", ""]
        up_writer.write("\r\n".join(lines).encode("latin-1") + body)
        answer = await up_reader.read()  # to the end: the request said Connection: close
        up_writer.close()
        status_and_headers, _, rest = answer.partition(b"\r\n\r\n")
        kept = [
            h
            for h in status_and_headers.split(b"\r\n")
            if not h.lower().startswith((b"connection:", b"keep-alive:"))
        ]
        writer.write(b"\r\n".join([*kept, b"Connection: close", b"", b""]) + rest)

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port = target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def proxy_env(server: SandboxServer, **variables: str) -> dict[str, str]:
    """`env_for(server)` without any proxy variable of this machine's, plus `variables`."""
    env = {k: v for k, v in env_for(server).items() if k.lower() not in PROXY_VARIABLES}
    return env | variables


REFS = [(f"PX-{i:03d}", "T1") for i in range(25)]


def cancel_url(server: SandboxServer, reference: str) -> str:
    return f"{server.api_url}/v1/merchants/T1/payments/{reference}/cancel/"


def log_events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def files_text(folder: Path) -> list[str]:
    """Every file the run left (report, run record, ...), as text."""
    return [p.read_text(encoding="utf-8") for p in folder.iterdir() if p.is_file()]


def all_canceled(folder: Path) -> bool:
    rows = read_report(folder / "payments.report.csv")
    return sorted(r["payment_reference"] for r in rows) == [r for r, _ in REFS] and all(
        r["outcome"] == "canceled" for r in rows
    )


async def test_token_and_cancel_requests_go_through_http_proxy(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "payments.csv", REFS)
    async with sandbox() as server, ForwardProxy() as proxy:
        env = proxy_env(server, HTTP_PROXY=proxy.url, NO_PROXY="")
        done = await run_cli("run", str(src), "--rate", "2000", env=env, cwd=tmp_path)
        assert done.code == 0, done.stderr[-2000:]
        targets = proxy.targets("POST")
        assert targets[0] == server.auth_url  # the token first, then every cancel once
        assert sorted(targets[1:]) == sorted(cancel_url(server, ref) for ref, _ in REFS)
        assert len(proxy.seen) == len(server.state.requests) == 1 + len(REFS)
    assert all_canceled(tmp_path)
    egress = [e for e in log_events(done.stderr) if e["event"] == "egress"]
    assert egress == [egress[0] | {"api_proxy": proxy.url, "auth_proxy": proxy.url}]


async def test_no_proxy_covering_loopback_bypasses_the_proxy(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "payments.csv", REFS)
    async with sandbox() as server, ForwardProxy() as proxy:
        env = proxy_env(server, HTTP_PROXY=proxy.url, NO_PROXY="localhost,127.0.0.1")
        done = await run_cli("run", str(src), "--rate", "2000", env=env, cwd=tmp_path)
        assert done.code == 0, done.stderr[-2000:]
        assert proxy.seen == []
        assert len(server.state.requests) == 1 + len(REFS)
    assert all_canceled(tmp_path)


async def test_the_token_endpoint_can_bypass_a_proxy_the_api_takes(tmp_path: Path) -> None:
    """NO_PROXY names the auth host only: the token goes direct, the cancels via the proxy."""
    src = write_csv(tmp_path / "payments.csv", REFS)
    async with sandbox() as server, ForwardProxy() as proxy:
        auth_url = server.auth_url.replace("127.0.0.1", "localhost")
        env = proxy_env(server, HTTP_PROXY=proxy.url, NO_PROXY="localhost")
        env["BAMBORA_AUTH_URL"] = auth_url
        done = await run_cli("run", str(src), "--rate", "2000", env=env, cwd=tmp_path)
        assert done.code == 0, done.stderr[-2000:]
        assert sorted(proxy.targets("POST")) == sorted(cancel_url(server, r) for r, _ in REFS)
        assert [r.kind for r in server.state.requests].count("token") == 1
    assert all_canceled(tmp_path)


async def test_proxy_credentials_are_sent_and_never_shown(tmp_path: Path) -> None:
    password = "proxy-pw-8c1f"
    src = write_csv(tmp_path / "payments.csv", REFS)
    async with sandbox() as server, ForwardProxy(login=("egress", password)) as proxy:
        url = proxy.url.replace("http://", f"http://egress:{password}@")
        env = proxy_env(server, HTTP_PROXY=url, NO_PROXY="")
        args = ("run", str(src), "--rate", "2000", "--log-level", "debug", "--log-format", "json")
        done = await run_cli(*args, env=env, cwd=tmp_path)
        assert done.code == 0, done.stderr[-2000:]
        assert len(proxy.seen) == 1 + len(REFS)  # none refused with 407
    assert all_canceled(tmp_path)
    written = [done.stdout, done.stderr, *files_text(tmp_path)]
    assert len(written) > 3 and not [text for text in written if password in text]


async def test_https_through_connect_with_a_private_ca(tmp_path: Path) -> None:
    """The production shape: HTTPS_PROXY, and a server certificate from a private CA."""
    pki = make_pki(tmp_path)
    server = await tls_server(pki)
    base = str(server.make_url("")).rstrip("/")
    try:
        async with ForwardProxy() as proxy:
            hop = proxy_for(base, {"https": proxy.url})
            tls = tls_context(str(pki.ca))
            async with make_session(concurrency=2, proxy=hop, tls=tls) as session:
                reply = await ApiClient(session, base, Deadlines(5)).call(
                    Op.QUERY, "T1", "r1", "jwt"
                )
            assert reply.status == 200
            assert proxy.targets("CONNECT") == [f"127.0.0.1:{server.port}"]
    finally:
        await server.close()


async def test_a_refused_proxy_login_leaves_the_password_out_of_the_reply(
    tmp_path: Path,
) -> None:
    """aiohttp quotes the proxy URL in a 407-to-CONNECT error; the session keeps the
    login out of that URL, so a report's `detail` cannot show it."""
    pki = make_pki(tmp_path)
    server = await tls_server(pki)
    base = str(server.make_url("")).rstrip("/")
    try:
        async with ForwardProxy(login=("egress", "right-pw")) as proxy:
            hop = proxy_for(base, {"https": proxy.url.replace("//", "//egress:wrong-pw-77@")})
            tls = tls_context(str(pki.ca))
            async with make_session(concurrency=2, proxy=hop, tls=tls) as session:
                reply = await ApiClient(session, base, Deadlines(5)).call(
                    Op.CANCEL, "T1", "r1", "jwt"
                )
    finally:
        await server.close()
    assert reply.status is None and reply.detail and "407" in reply.detail
    assert "wrong-pw-77" not in reply.detail
