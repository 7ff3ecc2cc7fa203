"""Access: where the API is and who we are, read from the environment and checked.

URLs (https anywhere, plain http only on loopback, so the client secret and tokens
never cross a network in clear text), and the credentials: client id and secret (or
a secret file), or a ready token. Every problem is a `ConfigError` (exit 2), found
before any request; no message ever quotes a secret.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import yarl

from worker.errors import ConfigError

#: A bearer token as a header carries it: printable ASCII, no space (RFC 6750 b64token
#: is narrower; an opaque token may use more, but never a control character).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
DEFAULT_API_URL = "https://api.bambora.com"
DEFAULT_AUTH_URL = "https://auth.bambora.com/connect/token"
SCOPE = "cancel_payment read_payment"


@dataclass(frozen=True)
class Credentials:
    """How to authenticate: a ready token, or client credentials to fetch tokens with.

    `repr` hides the secret and the token so that a stray log of the settings cannot leak them.
    """

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def secrets(self) -> tuple[str, ...]:
        """What must never be written: the secret and the token, and the secret in the
        forms it goes on the wire (form-encoded, and the Basic header's base64 of
        `id:secret`), which a token endpoint may quote back in its refusal."""
        found = [self.client_secret, self.token]
        if self.client_secret:
            found += [quote_plus(self.client_secret, safe=""), quote(self.client_secret, safe="")]
            basic = basic_credentials(self.client_id or "", self.client_secret)
            found += [basic, basic.rstrip("=")]
        return tuple(dict.fromkeys(s for s in found if s))


def basic_credentials(client_id: str, client_secret: str) -> str:
    """Client credentials as RFC 6749 2.3.1 sends them in Basic auth: each part
    form-urlencoded, so an id or secret holding ':', '%', '+', spaces or non-ASCII
    reaches the server intact, then joined with ':' and base64'd."""
    pair = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return base64.b64encode(pair.encode("ascii")).decode("ascii")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(name: str, value: str) -> str:
    """Accept https anywhere, plain http only on a loopback host; return `value` as is.

    Plain http would carry the client secret and the tokens in clear text; on
    loopback (a local sandbox or proxy) they never leave the machine. `name` is the
    setting's name, used in the error message only.
    """
    try:
        url = yarl.URL(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{name} is not a URL: {value!r}") from None
    if url.user is not None or url.password is not None:
        # not echoed: the part after '//' may be a password
        raise ConfigError(
            f"{name} holds a user name or password (https://user:password@host); the "
            "API is reached with a bearer token and the token endpoint with "
            "BAMBORA_CLIENT_ID and BAMBORA_CLIENT_SECRET: give the URL without them"
        )
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{name} must be an http(s) URL with a host, got {value!r}")
    if url.scheme == "http" and not is_loopback(url.host):
        raise ConfigError(
            f"{name} uses plain http to {url.host}; only https is allowed except on loopback"
        )
    return value


def credentials_from_env(env: Mapping[str, str]) -> Credentials:
    """Read credentials; a secret file's trailing newline is ignored."""
    token = env.get("BAMBORA_TOKEN", "").strip() or None
    client_id = env.get("BAMBORA_CLIENT_ID", "").strip() or None
    secret = env.get("BAMBORA_CLIENT_SECRET") or None
    secret_file = env.get("BAMBORA_CLIENT_SECRET_FILE", "").strip()
    if secret_file:
        try:
            secret = Path(secret_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"cannot read BAMBORA_CLIENT_SECRET_FILE {secret_file}: {exc.strerror}"
            ) from None
        except UnicodeDecodeError:
            # Not the decoder's message: it quotes the offending byte of the secret.
            raise ConfigError(
                f"BAMBORA_CLIENT_SECRET_FILE {secret_file} is not UTF-8 text"
            ) from None
    if secret is not None:
        secret = secret.rstrip("\r\n")
    if token:
        if not _HEADER_SAFE.fullmatch(token):  # not echoed: it is a credential
            raise ConfigError(
                "BAMBORA_TOKEN holds a character an Authorization header cannot carry "
                "(a space, a line break, a control or non-ASCII character): check its value"
            )
        return Credentials(token=token, client_id=client_id, client_secret=secret)
    if not client_id or not secret:
        raise ConfigError(
            "no credentials: set BAMBORA_CLIENT_ID and BAMBORA_CLIENT_SECRET "
            "(or BAMBORA_CLIENT_SECRET_FILE), or BAMBORA_TOKEN; or use --sandbox (or, for run, "
            "--dry-run)"
        )
    return Credentials(client_id=client_id, client_secret=secret)
