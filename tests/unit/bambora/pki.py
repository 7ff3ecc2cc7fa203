"""A throwaway private CA and a server certificate for 127.0.0.1, made with `openssl`.

The `openssl` command line is used (not the `cryptography` package, which the test
extra does not install). The CA is what `--ca-bundle` / `SSL_CERT_FILE` would name; the
server certificate, signed by it, is served by a TLS server on loopback.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass(frozen=True)
class Pki:
    ca: Path  # the bundle to trust (PEM)
    cert: Path  # the server's certificate, for 127.0.0.1 and localhost
    key: Path


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "these tests need the openssl command line on PATH"
    subprocess.run([openssl, *args], check=True, capture_output=True)


def make_pki(folder: Path, name: str = "cancel-worker test CA") -> Pki:
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "server.pem", folder / "server.key", folder / "server.csr"
    ext = folder / "server.ext"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n",
        encoding="ascii",
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return Pki(ca, cert, key)


async def tls_server(pki: Pki) -> TestServer:
    """A started HTTPS server on 127.0.0.1 that answers every path with 200 `hello`."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)
    server = TestServer(app, host="127.0.0.1", scheme="https")
    await server.start_server(ssl=context)
    return server
