"""A local stand-in for the identity endpoints the credential chain calls: SSO portal, SSO OIDC, AWS Sign-In.

``IdentityEmulator`` serves, on one loopback port, the three operations a
developer laptop's credentials go through, in their documented wire forms
(botocore's service models ``sso/2019-06-10``, ``sso-oidc/2019-06-10``,
``signin/2023-01-01``):

- SSO ``GetRoleCredentials``: ``GET /federation/credentials?account_id=&role_name=``
  with the token in ``x-amz-sso_bearer_token``; answers
  ``{"roleCredentials": {accessKeyId, secretAccessKey, sessionToken, expiration}}``
  (expiration in epoch milliseconds); errors ``UnauthorizedException`` (401),
  ``InvalidRequestException`` (400), ``ResourceNotFoundException`` (404) with
  ``{"message": ...}`` and the ``x-amzn-ErrorType`` header;
- SSO OIDC ``CreateToken``: ``POST /token`` with camelCase JSON
  (``clientId``, ``clientSecret``, ``grantType``, ``refreshToken``); answers
  ``{accessToken, expiresIn, refreshToken, tokenType: "Bearer"}``; errors
  ``{"error": "invalid_grant", "error_description": ...}`` (also ``invalid_client``,
  ``unsupported_grant_type``, ``invalid_request``);
- Sign-In ``CreateOAuth2Token``: ``POST /v1/token`` with JSON ``clientId``,
  ``grantType``, ``refreshToken`` and a ``DPoP`` proof header (verified: ES256,
  ``htm`` POST, ``htu`` the request URL, the key the session was issued to);
  answers ``{accessToken: {accessKeyId, secretAccessKey, sessionToken}, tokenType: "aws_sigv4",
  expiresIn, refreshToken}``;
  errors ``AccessDeniedException`` (``TOKEN_EXPIRED``, 401) and ``ValidationException`` (400).

Tests point ``AWS_ENDPOINT_URL_SSO``, ``AWS_ENDPOINT_URL_SSO_OIDC`` and
``AWS_ENDPOINT_URL_SIGNIN`` at ``endpoint_url``. Refresh tokens rotate: a used
one is refused afterwards. ``calls`` counts requests by operation. Verifying
a DPoP proof needs ``cryptography`` (the dev extra).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

import attrs
from aiohttp import web

from ._answers import new_request_id
from ._server import Server

__all__ = ["IdentityEmulator", "RoleGrant"]

_SSO_ERROR_NS: Final = "http://internal.amazon.com/coral/com.amazonaws.switchboard.portal/"


@attrs.frozen
class RoleGrant:
    """The role credentials the portal hands out for one account and role (``repr`` hides the secret)."""

    access_key_id: str
    secret_access_key: str = attrs.field(repr=False)
    session_token: str = attrs.field(repr=False)
    lifetime: float = 3600.0


def _json(status: int, body: dict[str, Any], error_type: str | None = None) -> web.Response:
    headers = {"x-amzn-RequestId": new_request_id()}
    if error_type is not None:
        headers["x-amzn-ErrorType"] = error_type
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


def _sso_error(status: int, code: str, message: str) -> web.Response:
    return _json(status, {"message": message}, f"{code}:{_SSO_ERROR_NS}")


def _oidc_error(status: int, code: str, error: str, description: str) -> web.Response:
    return _json(status, {"error": error, "error_description": description}, code)


def _signin_error(status: int, code: str, error: str, message: str) -> web.Response:
    return _json(status, {"error": error, "message": message}, code)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class IdentityEmulator:
    """SSO portal, SSO OIDC and AWS Sign-In token endpoints on loopback, for the credential chain's tests.

    ``grant_role`` says which credentials an account and role get;
    ``issue_access_token`` makes a portal token (what ``aws sso login``
    caches), ``register_client`` an OIDC client and ``issue_refresh_token`` a
    refresh token for it; ``open_login_session`` a Sign-In session bound to a
    DPoP public key. ``wall_clock`` (epoch seconds) dates what it hands out.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token_lifetime: int = 3600,
        login_lifetime: int = 900,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._token_lifetime = token_lifetime
        self._login_lifetime = login_lifetime
        self._wall_clock = wall_clock
        self._roles: dict[tuple[str, str], RoleGrant] = {}
        self._access_tokens: dict[str, float] = {}
        self._clients: dict[str, str] = {}
        self._refresh_tokens: dict[str, str] = {}
        self._login_sessions: dict[str, tuple[str, dict[str, Any], RoleGrant]] = {}
        self._server = Server(host, port)
        self.calls: Counter[str] = Counter()
        """Requests served, by operation (``GetRoleCredentials``, ``CreateToken``, ``CreateOAuth2Token``)."""

    def __repr__(self) -> str:
        return f"IdentityEmulator({self._server.url or 'not started'}, roles={len(self._roles)})"

    # -- what the tests set up -----------------------------------------------------------------------------------

    def grant_role(self, account_id: str, role_name: str, grant: RoleGrant) -> None:
        """``GetRoleCredentials`` for ``account_id``/``role_name`` answers with ``grant``."""
        self._roles[(account_id, role_name)] = grant

    def issue_access_token(self, lifetime: float | None = None) -> str:
        """A new portal access token, valid for ``lifetime`` seconds (the emulator's token lifetime by default)."""
        token = "aoa" + secrets.token_urlsafe(24)
        self._access_tokens[token] = self._wall_clock() + (lifetime if lifetime is not None else self._token_lifetime)
        return token

    def register_client(self) -> tuple[str, str]:
        """A new OIDC client: ``(clientId, clientSecret)``."""
        client_id, secret = secrets.token_urlsafe(12), secrets.token_urlsafe(24)
        self._clients[client_id] = secret
        return client_id, secret

    def issue_refresh_token(self, client_id: str) -> str:
        """A refresh token ``CreateToken`` accepts once, from ``client_id``."""
        token = "aor" + secrets.token_urlsafe(24)
        self._refresh_tokens[token] = client_id
        return token

    def open_login_session(self, client_id: str, public_jwk: dict[str, Any], grant: RoleGrant) -> str:
        """A Sign-In refresh token for ``client_id``, bound to the DPoP key ``public_jwk``; refreshes give ``grant``."""
        token = "lrt" + secrets.token_urlsafe(24)
        self._login_sessions[token] = (client_id, dict(public_jwk), grant)
        return token

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application (three routes)."""
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/federation/credentials", self._get_role_credentials)
        app.router.add_post("/token", self._create_token)
        app.router.add_post("/v1/token", self._create_oauth2_token)
        return app

    @property
    def endpoint_url(self) -> str:
        """``http://HOST:PORT`` while running."""
        url = self._server.url
        if url is None:
            raise RuntimeError("the identity emulator is not running")
        return url

    async def __aenter__(self) -> IdentityEmulator:
        await self._server.start(self.make_app())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._server.stop()

    # -- the operations ------------------------------------------------------------------------------------------

    async def _get_role_credentials(self, request: web.Request) -> web.Response:
        self.calls["GetRoleCredentials"] += 1
        token = request.headers.get("x-amz-sso_bearer_token")
        account_id, role_name = request.query.get("account_id"), request.query.get("role_name")
        if not token or not account_id or not role_name:
            return _sso_error(400, "InvalidRequestException", "account_id, role_name and the bearer token are required")
        expires = self._access_tokens.get(token)
        if expires is None or expires <= self._wall_clock():
            return _sso_error(401, "UnauthorizedException", "Session token not found or invalid")
        grant = self._roles.get((account_id, role_name))
        if grant is None:
            return _sso_error(404, "ResourceNotFoundException", "No access")
        expiration_ms = int((self._wall_clock() + grant.lifetime) * 1000)
        return _json(
            200,
            {
                "roleCredentials": {
                    "accessKeyId": grant.access_key_id,
                    "secretAccessKey": grant.secret_access_key,
                    "sessionToken": grant.session_token,
                    "expiration": expiration_ms,
                }
            },
        )

    async def _body(self, request: web.Request) -> dict[str, Any] | None:
        try:
            data = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    async def _create_token(self, request: web.Request) -> web.Response:
        self.calls["CreateToken"] += 1
        data = await self._body(request)
        if data is None or not all(isinstance(data.get(k), str) for k in ("clientId", "clientSecret", "grantType")):
            return _oidc_error(400, "InvalidRequestException", "invalid_request", "clientId, clientSecret, grantType")
        if self._clients.get(data["clientId"]) != data["clientSecret"]:
            return _oidc_error(401, "InvalidClientException", "invalid_client", "Invalid client credentials")
        if data["grantType"] != "refresh_token":
            return _oidc_error(400, "UnsupportedGrantTypeException", "unsupported_grant_type", "Unsupported grant")
        refresh = data.get("refreshToken")
        if not isinstance(refresh, str) or self._refresh_tokens.get(refresh) != data["clientId"]:
            return _oidc_error(400, "InvalidGrantException", "invalid_grant", "Invalid refresh token provided")
        del self._refresh_tokens[refresh]  # refresh tokens rotate
        return _json(
            200,
            {
                "accessToken": self.issue_access_token(),
                "expiresIn": self._token_lifetime,
                "refreshToken": self.issue_refresh_token(data["clientId"]),
                "tokenType": "Bearer",
            },
        )

    def _dpop_ok(self, proof: str, url: str, jwk: dict[str, Any]) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        try:
            header_b64, payload_b64, signature_b64 = proof.split(".")
            header = json.loads(_b64url_decode(header_b64))
            payload = json.loads(_b64url_decode(payload_b64))
            signature = _b64url_decode(signature_b64)
        except ValueError:
            return False
        if header.get("typ") != "dpop+jwt" or header.get("alg") != "ES256" or header.get("jwk") != jwk:
            return False
        if payload.get("htm") != "POST" or payload.get("htu") != url or not payload.get("jti"):
            return False
        if not isinstance(payload.get("iat"), int) or abs(payload["iat"] - self._wall_clock()) > 300:
            return False
        if len(signature) != 64:
            return False
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(_b64url_decode(jwk["x"]), "big"),
            int.from_bytes(_b64url_decode(jwk["y"]), "big"),
            ec.SECP256R1(),
        )
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            numbers.public_key().verify(der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True

    async def _create_oauth2_token(self, request: web.Request) -> web.Response:
        self.calls["CreateOAuth2Token"] += 1
        data = await self._body(request)
        if data is None or not all(isinstance(data.get(k), str) for k in ("clientId", "grantType")):
            return _signin_error(400, "ValidationException", "INVALID_REQUEST", "clientId and grantType are required")
        if data["grantType"] != "refresh_token" or not isinstance(data.get("refreshToken"), str):
            return _signin_error(400, "ValidationException", "INVALID_REQUEST", "unsupported grant")
        held = self._login_sessions.get(data["refreshToken"])
        if held is None or held[0] != data["clientId"]:
            return _signin_error(401, "AccessDeniedException", "TOKEN_EXPIRED", "The refresh token has expired")
        client_id, jwk, grant = held
        proof = request.headers.get("DPoP", "")
        if not self._dpop_ok(proof, str(request.url), jwk):
            return _signin_error(400, "ValidationException", "INVALID_REQUEST", "Invalid DPoP proof")
        del self._login_sessions[data["refreshToken"]]
        return _json(
            200,
            {
                "accessToken": {
                    "accessKeyId": grant.access_key_id,
                    "secretAccessKey": grant.secret_access_key,
                    "sessionToken": grant.session_token,
                },
                "tokenType": "aws_sigv4",
                "expiresIn": self._login_lifetime,
                "refreshToken": self.open_login_session(client_id, jwk, grant),
            },
        )
