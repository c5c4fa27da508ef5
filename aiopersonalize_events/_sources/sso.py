"""AWS IAM Identity Center (SSO) credentials: a cached token exchanged through the portal's ``GetRoleCredentials``.

Two ways to configure a profile, as botocore reads them:

- ``sso_session = NAME`` with an ``[sso-session NAME]`` section holding
  ``sso_start_url`` and ``sso_region``; the token is in
  ``~/.aws/sso/cache/<sha1 of NAME>.json`` and, within 15 minutes of its
  expiry, is refreshed through SSO OIDC ``CreateToken`` (grant
  ``refresh_token``) and written back to the cache;
- legacy: ``sso_start_url`` and ``sso_region`` in the profile itself; the
  token is in ``~/.aws/sso/cache/<sha1 of the start URL>.json`` and is never
  refreshed.

Both need ``sso_account_id`` and ``sso_role_name``. The token then buys role
credentials from ``GET /federation/credentials`` (header
``x-amz-sso_bearer_token``). Endpoints: ``https://portal.sso.{region}.amazonaws.com``
and ``https://oidc.{region}.amazonaws.com``, or ``AWS_ENDPOINT_URL_SSO`` /
``AWS_ENDPOINT_URL_SSO_OIDC`` and the other endpoint settings botocore reads.
A token that is missing, expired without a way to refresh it, or refused by
the portal is a ``SourceFailed`` that tells the user to run
``aws sso login --profile NAME``. Tokens never appear in a message or a log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final
from urllib.parse import urlencode

import attrs

from .._aws_config import AwsFiles
from .._credentials import Credentials, SourceFailed
from ._documents import redact
from ._http import Answer, HttpError, origin, request, session
from ._token_cache import cache_path, home_dir, read_entry, timestamp, utc_text, write_entry

__all__ = ["SSO_ATTEMPTS", "SSO_TIMEOUT", "TOKEN_REFRESH_SECONDS", "SsoProfile", "sso_credentials", "sso_profile"]

log: Final = logging.getLogger("aiopersonalize_events.credentials")

SSO_TIMEOUT: Final = 5.0
"""Seconds to connect to the SSO portal or OIDC and, separately, for each read of an answer."""
SSO_ATTEMPTS: Final = 3
"""Portal and OIDC calls are tried this many times on 429, 5xx, timeouts and connection errors."""
TOKEN_REFRESH_SECONDS: Final = 15 * 60
"""An ``sso_session`` token is refreshed when it expires within this many seconds (botocore's window)."""

_PROFILE_KEYS: Final = ("sso_role_name", "sso_account_id")
_SESSION_KEYS: Final = ("sso_start_url", "sso_region")


@attrs.frozen
class SsoProfile:
    """What a profile's SSO settings say (after merging its ``[sso-session]``); no secret is in here."""

    profile: str
    start_url: str
    region: str
    account_id: str
    role_name: str
    session_name: str | None

    @property
    def login_hint(self) -> str:
        """The command that gets the user a fresh token."""
        return f"run `aws sso login --profile {self.profile}`"


def sso_profile(files: AwsFiles, profile: str, values: Mapping[str, str]) -> SsoProfile | None:
    """The profile's SSO settings, None when it has none; ``SourceFailed`` when they are incomplete or inconsistent.

    As botocore: a profile uses SSO when it has ``sso_account_id`` or
    ``sso_role_name``; ``sso_session`` names an ``[sso-session NAME]`` section
    whose values must agree with any the profile repeats.
    """
    if not any(values.get(key) for key in _PROFILE_KEYS):
        return None
    merged = dict(values)
    session_name = values.get("sso_session") or None
    if session_name is not None:
        block = files.sso_sessions.get(session_name)
        if block is None:
            raise SourceFailed(
                f"profile {profile!r} names sso_session {session_name!r}, but {files.config_path} has no "
                f"[sso-session {session_name}] section"
            )
        for key, value in block.items():
            if key in merged and merged[key] != value:
                raise SourceFailed(f"{key} differs between profile {profile!r} and [sso-session {session_name}]")
            merged[key] = value
    missing = [key for key in (*_PROFILE_KEYS, *_SESSION_KEYS) if not merged.get(key)]
    if missing:
        raise SourceFailed(f"profile {profile!r} is configured for SSO but lacks {', '.join(missing)}")
    return SsoProfile(
        profile=profile,
        start_url=merged["sso_start_url"],
        region=merged["sso_region"],
        account_id=merged["sso_account_id"],
        role_name=merged["sso_role_name"],
        session_name=session_name,
    )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _cache_file(sso: SsoProfile, environ: Mapping[str, str]) -> str:
    key = hashlib.sha1((sso.session_name or sso.start_url).encode("utf-8")).hexdigest()
    return cache_path(os.path.join(home_dir(environ), ".aws", "sso", "cache"), key)


def _json(answer: Answer) -> dict[str, Any] | None:
    try:
        data = json.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


async def _call(what: str, method: str, url: str, *, headers: Mapping[str, str], data: bytes | None = None) -> Answer:
    """One portal or OIDC call, tried ``SSO_ATTEMPTS`` times on 429, 5xx and transport failures."""
    problem = f"{what} was not tried"
    async with session(SSO_TIMEOUT) as client:
        for attempt in range(1, SSO_ATTEMPTS + 1):
            try:
                answer = await request(client, method, url, headers=headers, data=data)
            except HttpError as exc:
                problem = f"{what} failed: {exc}"
            else:
                if answer.status < 500 and answer.status != 429:
                    return answer
                problem = f"{what} failed: HTTP {answer.status} from {origin(url)}"
            log.debug("%s, attempt %d: %s", what, attempt, problem)
            if attempt < SSO_ATTEMPTS:
                await asyncio.sleep(0.1 * 2 ** (attempt - 1))
    raise SourceFailed(problem)


def _error_text(data: Mapping[str, Any] | None, *keys: str) -> str:
    if data is None:
        return ""
    parts = [redact(str(data[key]), 120) for key in keys if isinstance(data.get(key), str) and data[key]]
    return ": " + " - ".join(parts) if parts else ""


async def _refreshed(
    sso: SsoProfile, token: Mapping[str, Any], environ: Mapping[str, str], files: AwsFiles
) -> dict[str, Any] | None:
    """A new token from OIDC ``CreateToken`` (grant ``refresh_token``); None when the token cannot be refreshed."""
    needed = ("refreshToken", "clientId", "clientSecret", "registrationExpiresAt")
    if any(not isinstance(token.get(key), str) or not token.get(key) for key in needed):
        log.info("the SSO token of profile %r cannot be refreshed: the cache lacks a refresh token", sso.profile)
        return None
    registration = timestamp(token, "registrationExpiresAt", "the cached SSO token")
    if registration <= _now():
        log.info("the SSO client registration of profile %r expired at %s", sso.profile, registration)
        return None
    endpoint = files.service_endpoint(
        sso.profile, environ, "SSO_OIDC", f"https://oidc.{sso.region}.{_suffix(sso.region)}"
    ).rstrip("/")
    body = json.dumps(
        {
            "clientId": token["clientId"],
            "clientSecret": token["clientSecret"],
            "grantType": "refresh_token",
            "refreshToken": token["refreshToken"],
        }
    ).encode("utf-8")
    try:
        answer = await _call(
            "SSO OIDC CreateToken",
            "POST",
            endpoint + "/token",
            headers={"Content-Type": "application/json"},
            data=body,
        )
    except SourceFailed as exc:
        log.warning("refreshing the SSO token of profile %r failed: %s", sso.profile, exc)
        return None
    data = _json(answer)
    if answer.status != 200 or data is None:
        log.warning(
            "refreshing the SSO token of profile %r failed: HTTP %d%s",
            sso.profile,
            answer.status,
            _error_text(data, "error", "error_description"),
        )
        return None
    access, expires_in = data.get("accessToken"), data.get("expiresIn")
    if not isinstance(access, str) or not access or not isinstance(expires_in, int) or isinstance(expires_in, bool):
        log.warning("refreshing the SSO token of profile %r failed: CreateToken answered without a token", sso.profile)
        return None
    fresh: dict[str, Any] = {
        "startUrl": sso.start_url,
        "region": sso.region,
        "accessToken": access,
        "expiresAt": utc_text(_now() + timedelta(seconds=expires_in)),
        "clientId": token["clientId"],
        "clientSecret": token["clientSecret"],
        "registrationExpiresAt": token["registrationExpiresAt"],
    }
    if isinstance(data.get("refreshToken"), str) and data["refreshToken"]:
        fresh["refreshToken"] = data["refreshToken"]
    log.info("SSO token of profile %r refreshed", sso.profile)
    return fresh


def _suffix(region: str) -> str:
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


async def _access_token(sso: SsoProfile, environ: Mapping[str, str], files: AwsFiles) -> str:
    path = _cache_file(sso, environ)
    entry = await read_entry(path)
    whose = f"sso-session {sso.session_name!r}" if sso.session_name else f"start URL {sso.start_url}"
    if entry is None:
        raise SourceFailed(f"profile {sso.profile!r}: no cached SSO token for {whose} in {path}; {sso.login_hint}")
    access = entry.get("accessToken")
    if not isinstance(access, str) or not access:
        raise SourceFailed(f"profile {sso.profile!r}: the cached SSO token in {path} is invalid; {sso.login_hint}")
    try:
        expires = timestamp(entry, "expiresAt", f"the cached SSO token in {path}")
    except SourceFailed as exc:
        raise SourceFailed(f"profile {sso.profile!r}: {exc}; {sso.login_hint}") from None
    if sso.session_name is not None and (expires - _now()).total_seconds() < TOKEN_REFRESH_SECONDS:
        fresh = await _refreshed(sso, entry, environ, files)
        if fresh is not None:
            await write_entry(path, fresh)
            access, expires = fresh["accessToken"], timestamp(fresh, "expiresAt", "the refreshed SSO token")
    if expires <= _now():
        how = "and could not be refreshed" if sso.session_name else "(a legacy SSO profile cannot refresh it)"
        raise SourceFailed(
            f"profile {sso.profile!r}: the cached SSO token for {whose} expired at {utc_text(expires)} {how}; "
            f"{sso.login_hint}"
        )
    return str(access)


async def sso_credentials(sso: SsoProfile, environ: Mapping[str, str], files: AwsFiles) -> Credentials:
    """Role credentials for ``sso`` through the portal's ``GetRoleCredentials``, refreshing the token first if due.

    Raises ``SourceFailed``; when the token is missing, expired or refused
    the message says ``aws sso login --profile NAME``.
    """
    token = await _access_token(sso, environ, files)
    endpoint = files.service_endpoint(
        sso.profile, environ, "SSO", f"https://portal.sso.{sso.region}.{_suffix(sso.region)}"
    ).rstrip("/")
    query = urlencode({"account_id": sso.account_id, "role_name": sso.role_name})
    if "\r" in token or "\n" in token:
        raise SourceFailed(f"profile {sso.profile!r}: the cached SSO token is not a valid header value")
    answer = await _call(
        "SSO GetRoleCredentials",
        "GET",
        f"{endpoint}/federation/credentials?{query}",
        headers={"x-amz-sso_bearer_token": token, "Accept": "application/json"},
    )
    data = _json(answer)
    if answer.status == 401:
        raise SourceFailed(
            f"profile {sso.profile!r}: the SSO portal refused the cached token (UnauthorizedException); "
            f"{sso.login_hint}"
        )
    if answer.status != 200:
        raise SourceFailed(
            f"profile {sso.profile!r}: SSO GetRoleCredentials for account {sso.account_id} role {sso.role_name} "
            f"failed: HTTP {answer.status}{_error_text(data, 'message')}"
        )
    role = data.get("roleCredentials") if data is not None else None
    if not isinstance(role, dict):
        raise SourceFailed(f"profile {sso.profile!r}: SSO GetRoleCredentials answered without roleCredentials")
    key, secret, session_token = role.get("accessKeyId"), role.get("secretAccessKey"), role.get("sessionToken")
    expiration = role.get("expiration")
    missing = [
        name
        for name, value in (("accessKeyId", key), ("secretAccessKey", secret), ("sessionToken", session_token))
        if not isinstance(value, str) or not value
    ]
    if not isinstance(expiration, (int, float)) or isinstance(expiration, bool):
        missing.append("expiration")
    if missing or not isinstance(key, str) or not isinstance(secret, str) or not isinstance(session_token, str):
        raise SourceFailed(f"profile {sso.profile!r}: SSO GetRoleCredentials answered without {', '.join(missing)}")
    assert isinstance(expiration, (int, float))
    expires = datetime.fromtimestamp(expiration / 1000.0, timezone.utc)
    return Credentials(key, secret, session_token, expires)
