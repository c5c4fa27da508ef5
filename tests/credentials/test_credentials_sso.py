"""IAM Identity Center (SSO) and ``aws login`` profiles, against local stand-ins of their endpoints on 127.0.0.1.

Each profile's credentials come from ``IdentityEmulator`` (SSO portal, SSO OIDC,
AWS Sign-In) and sign a ``put_events`` that the Personalize emulator verifies
with the same keys, so what the portal handed out is what went on the wire.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_credentials_http import Sts, serve, sts  # noqa: F401  (the STS stand-in and its fixtures)

from aiopersonalize_events import Event, NoCredentialsError, PersonalizeEventsClient
from aiopersonalize_events._aws_config import read_files
from aiopersonalize_events._chain import default_provider
from aiopersonalize_events.emulator import Emulator, IdentityEmulator, RoleGrant

pytestmark = pytest.mark.usefixtures("aws_env")  # a clean AWS environment, temporary HOME

SSO_KEY = "ASIASSOROLE000000001"
SSO_SECRET = "ssoRoleSecretKey/abcdefghijklmnopqrstuv"
LOGIN_KEY = "ASIALOGIN00000000001"
LOGIN_SECRET = "loginSecretKey/abcdefghijklmnopqrstuvwx"
ACCOUNT = "123456789012"
START_URL = "https://example.awsapps.com/start"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
async def identity(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[IdentityEmulator]:
    """The SSO portal / OIDC / Sign-In stand-in, reached through the AWS_ENDPOINT_URL_* variables botocore reads."""
    async with IdentityEmulator() as server:
        server.grant_role(ACCOUNT, "Developer", RoleGrant(SSO_KEY, SSO_SECRET, "sso-session-token-value"))
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSO", server.endpoint_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSO_OIDC", server.endpoint_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SIGNIN", server.endpoint_url)
        yield server


@pytest.fixture
async def service() -> AsyncIterator[Emulator]:
    """The Personalize emulator verifying SigV4 with the SSO role's and the login session's keys only."""
    async with Emulator(credentials={SSO_KEY: SSO_SECRET, LOGIN_KEY: LOGIN_SECRET}) as emu:
        yield emu


def config(home: Path, text: str) -> None:
    (home / ".aws" / "config").write_text(textwrap.dedent(text))


def sso_cache(home: Path, key: str, entry: dict[str, Any]) -> Path:
    directory = home / ".aws" / "sso" / "cache"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (hashlib.sha1(key.encode()).hexdigest() + ".json")
    path.write_text(json.dumps(entry))
    return path


SSO_SESSION_CONFIG = f"""\
    [profile dev]
    sso_session = corp
    sso_account_id = {ACCOUNT}
    sso_role_name = Developer
    region = us-east-1

    [sso-session corp]
    sso_start_url = {START_URL}
    sso_region = us-east-1
    sso_registration_scopes = sso:account:access
    """

LEGACY_CONFIG = f"""\
    [profile legacy]
    sso_start_url = {START_URL}
    sso_region = us-east-1
    sso_account_id = {ACCOUNT}
    sso_role_name = Developer
    region = us-east-1
    """


async def send_one(service: Emulator, profile: str) -> None:
    async with PersonalizeEventsClient(profile=profile, endpoint_url=service.endpoint_url, region="us-east-1") as c:
        await c.put_events(
            tracking_id="tracker-1",
            session_id="s-1",
            event_list=[Event(event_type="click", sent_at=1_700_000_000, event_id="e-1")],
        )
    assert [record["eventId"] for record in service.records("events")] == ["e-1"]
    assert service.calls[("PutEvents", 200)] == 1


# --- sso_session ---------------------------------------------------------------------------------


async def test_sso_session_profile_signs_put_events(
    identity: IdentityEmulator, service: Emulator, aws_env: Path
) -> None:
    """An sso_session profile's cached token buys role credentials that sign a put_events the emulator verifies."""
    config(aws_env, SSO_SESSION_CONFIG)
    sso_cache(
        aws_env,
        "corp",
        {
            "startUrl": START_URL,
            "region": "us-east-1",
            "accessToken": identity.issue_access_token(),
            "expiresAt": iso(now() + timedelta(hours=1)),
        },
    )
    await send_one(service, "dev")
    assert identity.calls == {"GetRoleCredentials": 1}  # a valid token is not refreshed


async def test_sso_session_token_is_refreshed_through_oidc(
    identity: IdentityEmulator, service: Emulator, aws_env: Path
) -> None:
    """An expired sso_session token is refreshed with CreateToken, written back to the cache, then used."""
    config(aws_env, SSO_SESSION_CONFIG)
    client_id, client_secret = identity.register_client()
    refresh = identity.issue_refresh_token(client_id)
    path = sso_cache(
        aws_env,
        "corp",
        {
            "startUrl": START_URL,
            "region": "us-east-1",
            "accessToken": "expired-token-value",
            "expiresAt": iso(now() - timedelta(minutes=5)),
            "clientId": client_id,
            "clientSecret": client_secret,
            "registrationExpiresAt": iso(now() + timedelta(days=30)),
            "refreshToken": refresh,
        },
    )
    await send_one(service, "dev")
    assert identity.calls == {"CreateToken": 1, "GetRoleCredentials": 1}
    cached = json.loads(path.read_text())
    assert cached["accessToken"] != "expired-token-value"
    assert cached["refreshToken"] != refresh  # the rotated refresh token is kept for next time
    assert cached["clientId"] == client_id
    assert cached["startUrl"] == START_URL
    assert datetime.fromisoformat(cached["expiresAt"].replace("Z", "+00:00")) > now() + timedelta(minutes=50)


async def test_sso_token_near_expiry_is_refreshed_before_it_expires(identity: IdentityEmulator, aws_env: Path) -> None:
    """A token with less than 15 minutes left is refreshed (botocore's window), not used until it fails."""
    config(aws_env, SSO_SESSION_CONFIG)
    client_id, client_secret = identity.register_client()
    path = sso_cache(
        aws_env,
        "corp",
        {
            "startUrl": START_URL,
            "region": "us-east-1",
            "accessToken": identity.issue_access_token(),
            "expiresAt": iso(now() + timedelta(minutes=10)),
            "clientId": client_id,
            "clientSecret": client_secret,
            "registrationExpiresAt": iso(now() + timedelta(days=30)),
            "refreshToken": identity.issue_refresh_token(client_id),
        },
    )
    credentials = await default_provider("dev").resolve()
    assert credentials.access_key_id == SSO_KEY
    assert identity.calls["CreateToken"] == 1
    assert json.loads(path.read_text())["expiresAt"] > iso(now() + timedelta(minutes=50))


async def test_expired_token_without_refresh_says_aws_sso_login(identity: IdentityEmulator, aws_env: Path) -> None:
    """An expired sso_session token with no refresh token: NoCredentialsError naming `aws sso login --profile dev`."""
    config(aws_env, SSO_SESSION_CONFIG)
    sso_cache(
        aws_env,
        "corp",
        {
            "startUrl": START_URL,
            "region": "us-east-1",
            "accessToken": "old-token-value",
            "expiresAt": iso(now() - timedelta(hours=1)),
        },
    )
    with pytest.raises(NoCredentialsError, match=r"aws sso login --profile dev") as caught:
        await default_provider("dev").resolve()
    assert "old-token-value" not in str(caught.value)
    assert identity.calls == {}  # nothing sent with a token known to be expired


async def test_refused_refresh_falls_back_to_the_login_hint(identity: IdentityEmulator, aws_env: Path) -> None:
    """A refresh token OIDC refuses (invalid_grant) leaves the expired token: the error says `aws sso login`."""
    config(aws_env, SSO_SESSION_CONFIG)
    client_id, client_secret = identity.register_client()
    sso_cache(
        aws_env,
        "corp",
        {
            "startUrl": START_URL,
            "region": "us-east-1",
            "accessToken": "old",
            "expiresAt": iso(now() - timedelta(hours=1)),
            "clientId": client_id,
            "clientSecret": client_secret,
            "registrationExpiresAt": iso(now() + timedelta(days=1)),
            "refreshToken": "revoked-refresh-token",
        },
    )
    with pytest.raises(NoCredentialsError, match=r"aws sso login --profile dev"):
        await default_provider("dev").resolve()
    assert identity.calls == {"CreateToken": 1}


async def test_missing_cached_token_says_aws_sso_login(identity: IdentityEmulator, aws_env: Path) -> None:
    """No token in the SSO cache: the error names the profile and `aws sso login --profile dev`."""
    config(aws_env, SSO_SESSION_CONFIG)
    with pytest.raises(NoCredentialsError, match=r"profile 'dev'.*aws sso login --profile dev"):
        await default_provider("dev").resolve()


async def test_portal_refusing_the_token_says_aws_sso_login(identity: IdentityEmulator, aws_env: Path) -> None:
    """A token the portal answers 401 UnauthorizedException for (revoked): the error says `aws sso login`."""
    config(aws_env, SSO_SESSION_CONFIG)
    sso_cache(aws_env, "corp", {"accessToken": "revoked-token-value", "expiresAt": iso(now() + timedelta(hours=1))})
    with pytest.raises(NoCredentialsError, match=r"UnauthorizedException.*aws sso login --profile dev"):
        await default_provider("dev").resolve()
    assert identity.calls == {"GetRoleCredentials": 1}


async def test_missing_sso_session_section_is_named(aws_env: Path) -> None:
    """A profile naming an sso-session the config file does not define fails naming the section."""
    config(aws_env, f"[profile dev]\nsso_session = nowhere\nsso_account_id = {ACCOUNT}\nsso_role_name = R\n")
    with pytest.raises(NoCredentialsError, match=r"\[sso-session nowhere\]"):
        await default_provider("dev").resolve()


async def test_incomplete_sso_profile_lists_what_is_missing(aws_env: Path) -> None:
    """A profile with sso_account_id but no start URL or region lists the missing settings."""
    config(aws_env, f"[profile dev]\nsso_account_id = {ACCOUNT}\nsso_role_name = R\n")
    with pytest.raises(NoCredentialsError, match=r"lacks sso_start_url, sso_region"):
        await default_provider("dev").resolve()


async def test_role_credentials_are_refreshed_before_they_expire(identity: IdentityEmulator, aws_env: Path) -> None:
    """Role credentials are fetched again in the advisory window (injected clock), and not before."""
    config(aws_env, SSO_SESSION_CONFIG)
    sso_cache(
        aws_env, "corp", {"accessToken": identity.issue_access_token(), "expiresAt": iso(now() + timedelta(hours=2))}
    )
    moment = [now()]
    chain = default_provider("dev", clock=lambda: moment[0])
    await chain.resolve()
    moment[0] += timedelta(minutes=30)
    await chain.resolve()
    assert identity.calls["GetRoleCredentials"] == 1
    moment[0] += timedelta(minutes=17)  # 13 minutes left of the role's hour: advisory window
    await chain.resolve()
    assert identity.calls["GetRoleCredentials"] == 2


# --- legacy SSO -----------------------------------------------------------------------------------


async def test_legacy_sso_profile_signs_put_events(
    identity: IdentityEmulator, service: Emulator, aws_env: Path
) -> None:
    """A legacy SSO profile (sso_start_url in the profile) reads the token cached under the start URL's sha1."""
    config(aws_env, LEGACY_CONFIG)
    sso_cache(
        aws_env,
        START_URL,
        {
            "startUrl": START_URL,
            "region": "us-east-1",
            "accessToken": identity.issue_access_token(),
            "expiresAt": iso(now() + timedelta(hours=1)),
        },
    )
    await send_one(service, "legacy")
    assert identity.calls == {"GetRoleCredentials": 1}


async def test_legacy_expired_token_is_not_refreshed(identity: IdentityEmulator, aws_env: Path) -> None:
    """A legacy profile never refreshes: an expired token is an error saying `aws sso login --profile legacy`."""
    config(aws_env, LEGACY_CONFIG)
    client_id, client_secret = identity.register_client()
    sso_cache(
        aws_env,
        START_URL,
        {
            "accessToken": "old",
            "expiresAt": iso(now() - timedelta(minutes=1)),
            "clientId": client_id,
            "clientSecret": client_secret,
            "registrationExpiresAt": iso(now() + timedelta(days=1)),
            "refreshToken": identity.issue_refresh_token(client_id),
        },
    )
    with pytest.raises(NoCredentialsError, match=r"aws sso login --profile legacy"):
        await default_provider("legacy").resolve()
    assert identity.calls == {}


# --- order and endpoints --------------------------------------------------------------------------


async def test_sso_comes_before_keys_in_the_credentials_file(identity: IdentityEmulator, aws_env: Path) -> None:
    """botocore's order: a profile's SSO settings win over its keys in ~/.aws/credentials."""
    config(aws_env, SSO_SESSION_CONFIG)
    (aws_env / ".aws" / "credentials").write_text(
        "[dev]\naws_access_key_id = AKIDFILE000000000001\naws_secret_access_key = fileSecret/0123456789abcdef\n"
    )
    sso_cache(
        aws_env, "corp", {"accessToken": identity.issue_access_token(), "expiresAt": iso(now() + timedelta(hours=1))}
    )
    assert (await default_provider("dev").resolve()).access_key_id == SSO_KEY


async def test_sso_endpoint_from_services_section(
    identity: IdentityEmulator, aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The portal's endpoint_url may come from the profile's [services] section, as botocore reads it."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_SSO")
    config(
        aws_env,
        SSO_SESSION_CONFIG.replace("region = us-east-1\n", "region = us-east-1\n    services = local\n", 1)
        + f"\n[services local]\nsso =\n  endpoint_url = {identity.endpoint_url}\n",
    )
    sso_cache(
        aws_env, "corp", {"accessToken": identity.issue_access_token(), "expiresAt": iso(now() + timedelta(hours=1))}
    )
    assert (await default_provider("dev").resolve()).access_key_id == SSO_KEY


def test_endpoint_settings_in_botocore_order(aws_env: Path) -> None:
    """AWS_ENDPOINT_URL_<ID>, AWS_ENDPOINT_URL, [services], profile endpoint_url; all ignored on request."""
    config(
        aws_env,
        "[profile p]\nservices = s\nendpoint_url = http://127.0.0.1:4\n[services s]\nsso =\n"
        "  endpoint_url = http://127.0.0.1:3\n",
    )
    files = read_files({"HOME": str(aws_env), "AWS_CONFIG_FILE": str(aws_env / ".aws" / "config")})
    default = "https://portal.sso.us-east-1.amazonaws.com"
    env = {"AWS_ENDPOINT_URL_SSO": "http://127.0.0.1:1", "AWS_ENDPOINT_URL": "http://127.0.0.1:2"}
    assert files.service_endpoint("p", env, "SSO", default) == "http://127.0.0.1:1"
    assert (
        files.service_endpoint("p", {"AWS_ENDPOINT_URL": "http://127.0.0.1:2"}, "SSO", default) == "http://127.0.0.1:2"
    )
    assert files.service_endpoint("p", {}, "SSO", default) == "http://127.0.0.1:3"
    assert files.service_endpoint("p", {}, "SSO_OIDC", default) == "http://127.0.0.1:4"
    ignoring = {**env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}
    assert files.service_endpoint("p", ignoring, "SSO", default) == default


# --- aws login (login_session) --------------------------------------------------------------------

SESSION = "arn:aws:iam::123456789012:user/dev"


def login_key() -> tuple[str, dict[str, str]]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        import base64

        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    return pem, {"kty": "EC", "x": b64(numbers.x), "y": b64(numbers.y), "crv": "P-256"}


def login_cache(directory: Path, entry: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (hashlib.sha256(SESSION.encode()).hexdigest() + ".json")
    path.write_text(json.dumps(entry))
    return path


@pytest.fixture
def login_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_env: Path) -> Path:
    config(aws_env, f"[profile web]\nlogin_session = {SESSION}\nregion = us-east-1\n")
    directory = tmp_path / "login-cache"
    monkeypatch.setenv("AWS_LOGIN_CACHE_DIRECTORY", str(directory))
    return directory


def login_entry(pem: str, refresh: str, expires: datetime, key: str = "ASIAOLDLOGIN00000001") -> dict[str, Any]:
    return {
        "accessToken": {
            "accessKeyId": key,
            "secretAccessKey": "oldLoginSecret/0123456789abcdefghij",
            "sessionToken": "old-login-session-token",
            "accountId": ACCOUNT,
            "expiresAt": iso(expires),
        },
        "refreshToken": refresh,
        "clientId": "arn:aws:signin:::devtools/same-device",
        "dpopKey": pem,
        "tokenType": "aws_sigv4",
    }


async def test_login_session_is_refreshed_with_dpop_and_signs_put_events(
    identity: IdentityEmulator, service: Emulator, login_dir: Path
) -> None:
    """An `aws login` session near expiry is refreshed through Sign-In (DPoP proof verified), cached, then used."""
    pem, jwk = login_key()
    grant = RoleGrant(LOGIN_KEY, LOGIN_SECRET, "new-login-session-token")
    refresh = identity.open_login_session("arn:aws:signin:::devtools/same-device", jwk, grant)
    path = login_cache(login_dir, login_entry(pem, refresh, now() + timedelta(minutes=2)))
    await send_one(service, "web")
    assert identity.calls == {"CreateOAuth2Token": 1}
    cached = json.loads(path.read_text())
    assert cached["accessToken"]["accessKeyId"] == LOGIN_KEY
    assert cached["accessToken"]["accountId"] == ACCOUNT
    assert cached["refreshToken"] != refresh
    assert cached["dpopKey"] == pem


async def test_fresh_login_credentials_are_used_without_a_call(identity: IdentityEmulator, login_dir: Path) -> None:
    """Cached login credentials with more than 5 minutes left are used as they are; Sign-In is not called."""
    pem, _ = login_key()
    login_cache(login_dir, login_entry(pem, "unused", now() + timedelta(minutes=14), key=LOGIN_KEY))
    assert (await default_provider("web").resolve()).access_key_id == LOGIN_KEY
    assert identity.calls == {}


async def test_login_credentials_are_not_reloaded_on_every_call(
    login_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """15-minute login credentials are kept until 5 minutes before expiry, not re-read on each call."""
    pem, _ = login_key()
    path = login_cache(login_dir, login_entry(pem, "unused", now() + timedelta(minutes=14), key=LOGIN_KEY))
    chain = default_provider("web")
    await chain.resolve()
    path.unlink()  # a reload would now fail and log a warning
    with caplog.at_level(logging.WARNING, logger="aiopersonalize_events.credentials"):
        for _ in range(3):
            assert (await chain.resolve()).access_key_id == LOGIN_KEY
    assert caplog.records == []


async def test_expired_login_session_says_aws_login(identity: IdentityEmulator, login_dir: Path) -> None:
    """A refresh token Sign-In refuses (TOKEN_EXPIRED): the error says `aws login --profile web`."""
    pem, _ = login_key()
    login_cache(login_dir, login_entry(pem, "revoked-refresh", now() - timedelta(minutes=1)))
    with pytest.raises(NoCredentialsError, match=r"aws login --profile web") as caught:
        await default_provider("web").resolve()
    assert "revoked-refresh" not in str(caught.value)
    assert identity.calls == {"CreateOAuth2Token": 1}


async def test_missing_login_session_says_aws_login(login_dir: Path) -> None:
    """No cached login session: the error names the profile and `aws login --profile web`."""
    with pytest.raises(NoCredentialsError, match=r"profile 'web'.*aws login --profile web"):
        await default_provider("web").resolve()


async def test_keys_in_the_credentials_file_come_before_login(login_dir: Path, aws_env: Path) -> None:
    """botocore's order: keys in ~/.aws/credentials win over the profile's login_session."""
    (aws_env / ".aws" / "credentials").write_text(
        "[web]\naws_access_key_id = AKIDFILE000000000001\naws_secret_access_key = fileSecret/0123456789abcdef\n"
    )
    assert (await default_provider("web").resolve()).access_key_id == "AKIDFILE000000000001"


def test_the_docs_list_the_profile_sources_in_chain_order() -> None:
    """The "Credentials" guide names SSO and `aws login` where the chain tries them, and what is not supported."""
    page = (
        next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
        / "docs"
        / "guides"
        / "configuration.md"
    )
    section = page.read_text(encoding="utf-8").split("## Credentials", 1)[1].split("\n## ", 1)[0]
    order = [
        "`role_arn`",
        "`sso_session",
        "static keys in `~/.aws/credentials`",
        "`login_session`",
        "`credential_process`",
        "static keys in `~/.aws/config`",
        "**Container**",
    ]
    positions = [section.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "aws sso login --profile" in section
    assert "Not supported" in section


# --- the stand-in speaks botocore's wire form -----------------------------------------------------

BOTOCORE_RESOLVES = """
import botocore.session
credentials = botocore.session.Session(profile="dev").get_credentials().get_frozen_credentials()
print(credentials.access_key)
"""


async def test_botocore_gets_the_same_credentials_from_the_stand_in(identity: IdentityEmulator, aws_env: Path) -> None:
    """botocore itself (in a subprocess) refreshes the token and fetches role credentials from IdentityEmulator."""
    config(aws_env, SSO_SESSION_CONFIG)
    client_id, client_secret = identity.register_client()
    path = sso_cache(
        aws_env,
        "corp",
        {
            "startUrl": START_URL,
            "region": "us-east-1",
            "accessToken": "expired",
            "expiresAt": iso(now() - timedelta(minutes=1)),
            "clientId": client_id,
            "clientSecret": client_secret,
            "registrationExpiresAt": iso(now() + timedelta(days=1)),
            "refreshToken": identity.issue_refresh_token(client_id),
        },
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "HOME": str(aws_env),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_SSO": identity.endpoint_url,
            "AWS_ENDPOINT_URL_SSO_OIDC": identity.endpoint_url,
        }
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BOTOCORE_RESOLVES,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == SSO_KEY
    assert identity.calls == {"CreateToken": 1, "GetRoleCredentials": 1}
    assert json.loads(path.read_text())["accessToken"] != "expired"  # botocore wrote back what the stand-in issued
    # and our chain reads what botocore wrote: the fresh token is used as it is
    assert (await default_provider("dev").resolve()).access_key_id == SSO_KEY
    assert identity.calls == {"CreateToken": 1, "GetRoleCredentials": 2}


async def test_no_token_or_secret_in_logs_reprs_or_errors(
    identity: IdentityEmulator, service: Emulator, aws_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Through a refresh, a put_events and a refused refresh, no token or secret is logged, shown or raised."""
    config(aws_env, SSO_SESSION_CONFIG)
    client_id, client_secret = identity.register_client()
    refresh = identity.issue_refresh_token(client_id)
    path = sso_cache(
        aws_env,
        "corp",
        {
            "startUrl": START_URL,
            "region": "us-east-1",
            "accessToken": "expired-access-token-value",
            "expiresAt": iso(now() - timedelta(minutes=1)),
            "clientId": client_id,
            "clientSecret": client_secret,
            "registrationExpiresAt": iso(now() + timedelta(days=1)),
            "refreshToken": refresh,
        },
    )
    with caplog.at_level(logging.DEBUG):
        chain = default_provider("dev")
        credentials = await chain.resolve()
        shown = [repr(chain), repr(credentials), str(credentials)]
        await send_one(service, "dev")
        fresh = json.loads(path.read_text())
        fresh["expiresAt"] = iso(now() - timedelta(minutes=1))  # expired again, and its refresh token already used
        fresh["refreshToken"] = refresh
        path.write_text(json.dumps(fresh))
        with pytest.raises(NoCredentialsError) as caught:
            await default_provider("dev").resolve()
        shown.append(str(caught.value))
    secrets = [
        refresh,
        client_secret,
        fresh["accessToken"],
        "expired-access-token-value",
        SSO_SECRET,
        "sso-session-token-value",
    ]
    text = caplog.text + "\n".join(shown)
    assert "aws sso login --profile dev" in shown[-1]
    for secret in secrets:
        assert secret not in text


async def test_malformed_cached_token_says_aws_sso_login(aws_env: Path) -> None:
    """A cache entry without expiresAt (or not JSON) is refused with the login hint, nothing from the file quoted."""
    config(aws_env, SSO_SESSION_CONFIG)
    path = sso_cache(aws_env, "corp", {"accessToken": "token-without-expiry"})
    with pytest.raises(NoCredentialsError, match=r"expiresAt.*aws sso login --profile dev") as caught:
        await default_provider("dev").resolve()
    assert "token-without-expiry" not in str(caught.value)
    path.write_text("{not json")
    with pytest.raises(NoCredentialsError, match=r"cannot be read"):
        await default_provider("dev").resolve()


async def test_sso_profile_as_source_profile_signs_assume_role(
    identity: IdentityEmulator,
    sts: Sts,  # noqa: F811  (the fixture imported above)
    aws_env: Path,
) -> None:
    """role_arn with source_profile = an SSO profile: AssumeRole is signed with the portal's role credentials."""
    config(
        aws_env,
        SSO_SESSION_CONFIG + "\n[profile admin]\nrole_arn = arn:aws:iam::123456789012:role/admin\n"
        "source_profile = dev\n",
    )
    sso_cache(
        aws_env, "corp", {"accessToken": identity.issue_access_token(), "expiresAt": iso(now() + timedelta(hours=1))}
    )
    sts.secrets[SSO_KEY] = SSO_SECRET
    sts.tokens[SSO_KEY] = "sso-session-token-value"  # the stand-in checks X-Amz-Security-Token is sent and signed
    found = await default_provider("admin").resolve()
    assert found.access_key_id.startswith("ASIAASSUMEROLE")
    (call,) = sts.calls
    assert call.signed_by == SSO_KEY
    assert call.token == "sso-session-token-value"
    assert identity.calls == {"GetRoleCredentials": 1}
