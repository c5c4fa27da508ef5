"""``aws login`` sessions: a profile's ``login_session``, as botocore's login provider reads and refreshes it.

``aws login`` leaves, in ``~/.aws/login/cache/<sha256 of the session name>.json``
(``AWS_LOGIN_CACHE_DIRECTORY`` moves the directory), short-lived credentials
(``accessToken``: ``accessKeyId``, ``secretAccessKey``, ``sessionToken``,
``accountId``, ``expiresAt``), a ``refreshToken``, the ``clientId`` and a
``dpopKey`` (a P-256 private key in PEM). While the cached credentials have
more than ``LOGIN_REFRESH_SECONDS`` left they are used as they are; after
that they are refreshed through AWS Sign-In ``CreateOAuth2Token``
(``POST /v1/token``, grant ``refresh_token``) with a DPoP proof signed by
that key (ES256), and the cache is rewritten. The endpoint is
``https://{region}.signin.aws.amazon.com`` for the profile's region, or
``AWS_ENDPOINT_URL_SIGNIN`` and the other endpoint settings botocore reads.

Signing the proof needs ``cryptography`` (extra ``login``; botocore needs
its ``crt`` extra for the same reason), imported only when a refresh is due.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from .._aws_config import AwsFiles
from .._credentials import Credentials, SourceFailed
from ._documents import redact
from ._http import HttpError, request, session
from ._token_cache import cache_path, home_dir, read_entry, timestamp, utc_text, write_entry

__all__ = ["LOGIN_REFRESH_SECONDS", "LOGIN_WINDOWS", "dpop_proof", "login_credentials"]

LOGIN_REFRESH_SECONDS: Final = 5 * 60
"""Cached login credentials with less than this left are refreshed (botocore's threshold)."""
LOGIN_WINDOWS: Final = (float(LOGIN_REFRESH_SECONDS), 60.0)
"""The refresh windows (advisory, mandatory) for login credentials, which live 15 minutes at most."""
LOGIN_TIMEOUT: Final = 5.0
_REQUIRED: Final = ("accessToken", "refreshToken", "dpopKey", "clientId")
_EXTRA_HINT: Final = "pip install 'aiopersonalize-events[login]'"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _cache_dir(environ: Mapping[str, str]) -> str:
    configured = environ.get("AWS_LOGIN_CACHE_DIRECTORY")
    if configured:
        return os.path.expanduser(os.path.expandvars(configured))
    return os.path.join(home_dir(environ), ".aws", "login", "cache")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def dpop_proof(pem: str, url: str, *, issued_at: int | None = None, jti: str | None = None) -> str:
    """A DPoP proof (RFC 9449) for ``POST url``, signed ES256 with the P-256 key in ``pem``, as botocore builds it.

    Raises ``SourceFailed`` when ``cryptography`` (extra ``login``) is not
    installed or the key cannot be loaded.
    """
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    except ImportError:
        raise SourceFailed(f"refreshing an `aws login` session needs the cryptography package: {_EXTRA_HINT}") from None
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----")).strip()
    try:
        key = serialization.load_der_private_key(base64.b64decode(body), password=None)
    except (ValueError, TypeError):
        raise SourceFailed("the dpopKey of the cached login session cannot be loaded") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SourceFailed("the dpopKey of the cached login session is not a P-256 key")
    numbers = key.public_key().public_numbers()
    header = {
        "typ": "dpop+jwt",
        "alg": "ES256",
        "jwk": {
            "kty": "EC",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
            "crv": "P-256",
        },
    }
    payload = {
        "htm": "POST",
        "htu": url,
        "iat": issued_at if issued_at is not None else int(time.time()),
        "jti": jti or str(uuid.uuid4()),
    }
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(payload, separators=(",", ":")).encode())
    )
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _credentials(entry: Mapping[str, Any], what: str) -> Credentials:
    access = entry.get("accessToken")
    if not isinstance(access, dict):
        raise SourceFailed(f"{what} has no accessToken")
    key, secret, token = access.get("accessKeyId"), access.get("secretAccessKey"), access.get("sessionToken")
    missing = [
        name
        for name, value in (("accessKeyId", key), ("secretAccessKey", secret), ("sessionToken", token))
        if not isinstance(value, str) or not value
    ]
    if missing or not isinstance(key, str) or not isinstance(secret, str) or not isinstance(token, str):
        raise SourceFailed(f"{what} lacks {', '.join(missing)}")
    return Credentials(key, secret, token, timestamp(access, "expiresAt", what))


async def login_credentials(
    profile: str, session_name: str, region: str | None, environ: Mapping[str, str], files: AwsFiles
) -> Credentials:
    """Credentials of the ``aws login`` session ``session_name``, refreshed through AWS Sign-In when due.

    Raises ``SourceFailed``; a missing or expired session says to run
    ``aws login --profile NAME``.
    """
    hint = f"run `aws login --profile {profile}`"
    path = cache_path(_cache_dir(environ), hashlib.sha256(session_name.encode("utf-8")).hexdigest())
    entry = await read_entry(path)
    if entry is None:
        raise SourceFailed(f"profile {profile!r}: no cached login session {session_name!r} in {path}; {hint}")
    what = f"the cached login session in {path}"
    missing = [key for key in _REQUIRED if key not in entry]
    if missing:
        raise SourceFailed(f"{what} lacks {', '.join(missing)}; {hint}")
    current = _credentials(entry, what)
    assert current.expiration is not None
    if (current.expiration - _now()).total_seconds() > LOGIN_REFRESH_SECONDS:
        return current  # still good (or refreshed by another process since we last looked)
    if not region:
        raise SourceFailed(
            f"profile {profile!r}: refreshing its login session needs a region: set region in the profile, "
            "or AWS_REGION"
        )
    suffix = "amazonaws.cn" if region.startswith("cn-") else "aws.amazon.com"
    endpoint = files.service_endpoint(profile, environ, "SIGNIN", f"https://{region}.signin.{suffix}").rstrip("/")
    url = endpoint + "/v1/token"
    refresh_token, client_id, key_pem = entry.get("refreshToken"), entry.get("clientId"), entry.get("dpopKey")
    if not all(isinstance(v, str) and v for v in (refresh_token, client_id, key_pem)):
        raise SourceFailed(f"{what} has an empty refreshToken, clientId or dpopKey; {hint}")
    assert isinstance(key_pem, str)
    body = json.dumps({"clientId": client_id, "refreshToken": refresh_token, "grantType": "refresh_token"}).encode()
    headers = {"Content-Type": "application/json", "DPoP": dpop_proof(key_pem, url)}
    try:
        async with session(LOGIN_TIMEOUT) as client:
            answer = await request(client, "POST", url, headers=headers, data=body)
    except HttpError as exc:
        raise SourceFailed(f"profile {profile!r}: refreshing the login session failed: {exc}") from None
    try:
        data = json.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if answer.status != 200:
        code = data.get("error") if isinstance(data, dict) else None
        if code in ("TOKEN_EXPIRED", "USER_CREDENTIALS_CHANGED"):
            raise SourceFailed(f"profile {profile!r}: the login session has expired or its credentials changed; {hint}")
        if code == "INSUFFICIENT_PERMISSIONS":
            raise SourceFailed(
                f"profile {profile!r}: the login session may not call signin:CreateOAuth2Token "
                "(INSUFFICIENT_PERMISSIONS)"
            )
        detail = f" ({redact(str(code), 60)})" if isinstance(code, str) else ""
        raise SourceFailed(f"profile {profile!r}: refreshing the login session failed: HTTP {answer.status}{detail}")
    output = data if isinstance(data, dict) else {}
    access, expires_in, new_refresh = output.get("accessToken"), output.get("expiresIn"), output.get("refreshToken")
    if (
        not isinstance(access, dict)
        or not isinstance(expires_in, int)
        or isinstance(expires_in, bool)
        or not isinstance(new_refresh, str)
    ):
        raise SourceFailed(f"profile {profile!r}: AWS Sign-In answered the refresh without credentials; {hint}")
    updated = dict(entry)
    updated["accessToken"] = {
        "accessKeyId": access.get("accessKeyId"),
        "secretAccessKey": access.get("secretAccessKey"),
        "sessionToken": access.get("sessionToken"),
        "accountId": entry["accessToken"].get("accountId"),
        "expiresAt": utc_text(_now() + timedelta(seconds=expires_in)),
    }
    updated["refreshToken"] = new_refresh
    fresh = _credentials(updated, "AWS Sign-In's answer")
    await write_entry(path, updated)
    return fresh
