"""The sandbox's OAuth side: issuing and checking HS256 JWTs (signed with PyJWT).

A real JWT signed with a key that lives only as long as the server, so a token from
another sandbox, a tampered one or an expired one is refused the way Bambora would
refuse it. PyJWT does the encoding and the signature, algorithm and `exp` checks; this
module adds what a JWT alone cannot say: sub-second expiry and "expire every token now".
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass

import jwt

DEFAULT_SCOPE = "cancel_payment read_payment"
ALGORITHM = "HS256"


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

    def issue(self, client_id: str, scope: str) -> str:
        now = time.time()
        jti = secrets.token_hex(12)
        expires = now + self.ttl
        self._expiry[jti] = expires
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
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def expire_all(self) -> None:
        """Every token issued so far is expired from now on."""
        for jti in self._expiry:
            self._expiry[jti] = 0.0

    def check(self, token: str) -> TokenCheck:
        # PyJWT says "Not enough segments" for this; the client deserves plainer words.
        if token.count(".") != 2:
            return TokenCheck("The access token is not a JWT.")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                options={"require": ["exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            return TokenCheck("The access token has expired.")
        except jwt.InvalidSignatureError:
            return TokenCheck("The access token signature is not valid.")
        except jwt.InvalidAlgorithmError:
            return TokenCheck("The access token algorithm is not accepted.")
        except jwt.DecodeError as exc:
            # Header or payload are not base64url JSON: there is no signature to trust.
            return TokenCheck(f"The access token is malformed, its signature unchecked: {exc}.")
        except jwt.InvalidTokenError as exc:
            return TokenCheck(f"The access token is not valid: {exc}.")
        expires = self._expiry.get(str(claims["jti"]))
        if expires is None:
            return TokenCheck("The access token was not issued by this server.")
        if time.time() >= expires:
            return TokenCheck("The access token has expired.")
        scope = claims.get("scope")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        return TokenCheck(scopes=scopes)
