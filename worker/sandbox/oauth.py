"""The OAuth 2.0 token endpoint (`POST /connect/token`, client_credentials grant).

Accepts the client's credentials as HTTP Basic (both the RFC 6749 form-encoded
spelling and curl's raw one) or as form fields, and answers RFC 6749 errors as JSON
(not problem+json: that is what an OAuth server sends). Issuing and checking the JWTs
themselves is `tokens.TokenIssuer`'s job.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import unquote_plus

from aiohttp import web

from worker.sandbox.config import SandboxConfig
from worker.sandbox.http import NOTE, json_response
from worker.sandbox.state import SandboxState
from worker.sandbox.tokens import DEFAULT_SCOPE, TokenIssuer

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenEndpoint:
    """Checks the client and grant, then issues a token."""

    def __init__(self, config: SandboxConfig, state: SandboxState, tokens: TokenIssuer) -> None:
        self.config = config
        self.state = state
        self.tokens = tokens

    def _client_ok(self, client_id: str, secret: str) -> bool:
        cfg = self.config
        # compare_digest on bytes: str arguments must be ASCII.
        id_ok = hmac.compare_digest(client_id.encode(), cfg.client_id.encode())
        secret_ok = hmac.compare_digest(secret.encode(), cfg.client_secret.encode())
        return id_ok and secret_ok

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        header = request.headers.get("Authorization")
        if header is not None:
            # RFC 6749 2.3.1: Basic credentials are form-encoded before base64; curl -u
            # sends them raw. Accept either spelling.
            scheme, _, value = header.strip().partition(" ")
            try:
                if scheme.lower() != "basic":
                    raise ValueError(scheme)
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (ValueError, binascii.Error):
                return _oauth_error(401, "invalid_client", "Malformed Basic credentials.")
            user, _, password = decoded.partition(":")
            if not (
                self._client_ok(user, password)
                or self._client_ok(unquote_plus(user), unquote_plus(password))
            ):
                return _oauth_error(401, "invalid_client", "Unknown client or bad secret.")
        else:
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if not isinstance(client_id, str) or not isinstance(secret, str):
                return _oauth_error(400, "invalid_client", "No client credentials given.")
            if not self._client_ok(client_id, secret):
                return _oauth_error(400, "invalid_client", "Unknown client or bad secret.")
        grant = form.get("grant_type")
        if not isinstance(grant, str) or not grant:
            return _oauth_error(400, "invalid_request", "grant_type is missing.")
        if grant != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", "Only client_credentials is supported."
            )
        scope_field = form.get("scope")
        scope = " ".join(scope_field.split()) if isinstance(scope_field, str) else ""
        scope = scope or DEFAULT_SCOPE
        token = self.tokens.issue(self.config.client_id, scope)
        self.state.tokens_issued += 1
        response = json_response(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(self.config.token_ttl),
                "scope": scope,
            },
            headers=_NO_STORE,
        )
        response[NOTE] = f"token issued, scope {scope!r}"
        return response


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    headers = dict(_NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="bambora-sandbox"'
    response = json_response(status, {"error": error, "error_description": description}, headers)
    response[NOTE] = f"{error}: {description}"
    return response
