"""The sandbox's OAuth side: issuing and checking HS256 JWTs with the standard library.

A real-looking JWT (header.payload.signature, base64url, no padding) signed with a
key that lives only as long as the server, so a token from another sandbox, a
tampered one or an expired one is refused the way Bambora would refuse it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass

DEFAULT_SCOPE = "cancel_payment read_payment"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """The verdict on a bearer token: `error` is empty when it is good."""

    error: str = ""
    scopes: frozenset[str] = frozenset()


class TokenIssuer:
    """Issues tokens, remembers their expiry, and checks them on every API call."""

    def __init__(self, ttl: float, issuer: str = "sandbox") -> None:
        self.ttl = ttl
        self.issuer = issuer
        self._key = secrets.token_bytes(32)
        # jti -> expiry (time.time()). Kept here, with sub-second precision, because
        # the JWT's own `exp` is whole seconds and tests use TTLs of a second or two.
        self._expiry: dict[str, float] = {}

    def _sign(self, signing_input: str) -> str:
        return _b64url(hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest())

    def issue(self, client_id: str, scope: str) -> str:
        now = time.time()
        jti = secrets.token_hex(12)
        expires = now + self.ttl
        self._expiry[jti] = expires
        header = {"alg": "HS256", "typ": "JWT"}
        claims = {
            "iss": self.issuer,
            "sub": client_id,
            "client_id": client_id,
            "scope": scope,
            "iat": int(now),
            # Rounded up so a JWT library reading `exp` never expires it before we do.
            "exp": math.ceil(expires),
            "jti": jti,
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        return f"{signing_input}.{self._sign(signing_input)}"

    def expire_all(self) -> None:
        """Every token issued so far is expired from now on."""
        for jti in self._expiry:
            self._expiry[jti] = 0.0

    def check(self, token: str) -> TokenCheck:
        parts = token.split(".")
        if len(parts) != 3:
            return TokenCheck("The access token is not a JWT.")
        signing_input = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._sign(signing_input), parts[2]):
            return TokenCheck("The access token signature is not valid.")
        try:
            header = json.loads(_unb64url(parts[0]))
            claims = json.loads(_unb64url(parts[1]))
        except (ValueError, binascii.Error):
            return TokenCheck("The access token cannot be decoded.")
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            return TokenCheck("The access token algorithm is not accepted.")
        if not isinstance(claims, dict):
            return TokenCheck("The access token cannot be decoded.")
        expires = self._expiry.get(str(claims.get("jti")))
        exp = claims.get("exp")
        if expires is None or not isinstance(exp, int):
            return TokenCheck("The access token was not issued by this server.")
        now = time.time()
        if now >= expires or now >= exp:
            return TokenCheck("The access token has expired.")
        scope = claims.get("scope")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        return TokenCheck(scopes=scopes)
