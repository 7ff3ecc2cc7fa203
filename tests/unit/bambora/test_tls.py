"""Trusted CAs: `--ca-bundle` (via `tls_context`) and `SSL_CERT_FILE` (the default context).

A private CA and a server certificate for 127.0.0.1 are made with `openssl` (pki.py);
every handshake is a real one, against a TLS server on loopback.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.unit.bambora.pki import Pki, make_pki, tls_server
from worker.bambora.session import make_session, tls_context
from worker.errors import CaBundleError


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def subjects(context: ssl.SSLContext) -> set[str]:
    return {
        value
        for cert in context.get_ca_certs()
        for rdn in cert["subject"]
        for key, value in rdn
        if key == "commonName"
    }


def test_the_bundle_is_loaded_into_a_verifying_context(pki: Pki) -> None:
    context = tls_context(str(pki.ca))
    assert subjects(context) == {"cancel-worker test CA"}  # that bundle, and only it
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


async def test_a_session_trusts_the_bundle_and_only_the_bundle(pki: Pki, tmp_path: Path) -> None:
    server = await tls_server(pki)
    url = str(server.make_url("/v1/ping"))
    other = make_pki(tmp_path, "another CA")  # does not vouch for this server
    try:
        async with (
            make_session(concurrency=2, tls=tls_context(str(pki.ca))) as session,
            session.get(url) as response,
        ):
            assert response.status == 200 and await response.text() == "hello"
        for tls in (None, tls_context(str(other.ca))):  # system CAs; the wrong CA
            async with make_session(concurrency=2, tls=tls) as session:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await session.get(url)
    finally:
        await server.close()


@pytest.mark.parametrize("kind", ["missing", "empty", "not-pem", "a-folder"])
def test_an_unusable_bundle_is_an_error_that_names_it(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.pem"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not-pem":
        path.write_text("this is not a certificate\n", encoding="ascii")
    elif kind == "a-folder":
        path.mkdir()
    with pytest.raises(CaBundleError) as caught:
        tls_context(str(path))
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"cannot use the CA bundle {path}: ")


# Runs in a fresh interpreter: OpenSSL reads SSL_CERT_FILE when the default context is
# made, which aiohttp does once, at import.
PROBE = """
import asyncio, sys
import aiohttp
from worker.bambora.session import make_session

async def main():
    async with make_session(concurrency=2) as session:
        try:
            async with session.get(sys.argv[1]) as response:
                print(response.status, await response.text())
        except aiohttp.ClientConnectorCertificateError as exc:
            print("untrusted", exc.certificate_error.reason)

asyncio.run(main())
"""


async def probe(url: str, env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE, url, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    return out.decode().strip()


async def test_the_default_context_trusts_SSL_CERT_FILE(pki: Pki, tmp_path: Path) -> None:
    """Without a bundle, the session's default context takes its CAs from SSL_CERT_FILE."""
    server = await tls_server(pki)
    url = str(server.make_url("/"))
    base = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    empty = tmp_path / "no-certs"
    empty.mkdir()
    try:
        trusted = await probe(
            url, {**base, "SSL_CERT_FILE": str(pki.ca), "SSL_CERT_DIR": str(empty)}
        )
        untrusted = await probe(url, base)  # OpenSSL's own defaults: the system CAs
    finally:
        await server.close()
    assert trusted == "200 hello"
    assert untrusted == "untrusted CERTIFICATE_VERIFY_FAILED"


async def test_an_untrusted_token_endpoint_is_named_a_certificate_problem(pki: Pki) -> None:
    """A token endpoint behind a private CA, without --ca-bundle: the holding and the
    abort said "operation not permitted" (OpenSSL's errno 1 read as EPERM)."""
    from worker.bambora.auth import _failure

    server = await tls_server(pki)
    try:
        async with make_session(concurrency=2, tls=None) as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError) as caught:
                await session.post(str(server.make_url("/connect/token")))
    finally:
        await server.close()
    said = _failure(caught.value)
    assert said.startswith("TLS certificate not trusted (") and "--ca-bundle" in said
    assert "operation not permitted" not in said
