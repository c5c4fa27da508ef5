"""Credentials over HTTP: STS, the container endpoint and IMDS, each stood in for by a server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import socket
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl

import attrs
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from aiopersonalize_events import NoCredentialsError
from aiopersonalize_events._chain import default_provider
from aiopersonalize_events._credentials import SourceFailed, SourceUnavailable
from aiopersonalize_events._sources.container import ContainerSource
from aiopersonalize_events._sources.instance_metadata import InstanceMetadataSource

BASE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVtbyJ9.c2lnbmF0dXJlLXNlY3JldA"
CONTAINER_TOKEN = "Bearer-c29tZS1jb250YWluZXItYXV0aG9yaXphdGlvbi10b2tlbg"
ROLE = "arn:aws:iam::123456789012:role/demo"

Serve = Callable[[web.Application], Awaitable[str]]


pytestmark = pytest.mark.usefixtures("aws_env")  # the conftest fixture: a clean AWS environment, temporary HOME


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start aiohttp apps on 127.0.0.1 (random ports); all are stopped after the test."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def write(home: Path, name: str, text: str) -> Path:
    path = home / ".aws" / name
    path.write_text(textwrap.dedent(text))
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the STS stand-in --------------------------------------------------------------------------


@attrs.frozen
class StsCall:
    form: dict[str, str]
    headers: CIMultiDictProxy[str]
    signed_by: str | None
    token: str | None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


class Sts:
    """Answers AssumeRole (checking its SigV4 signature, service sts) and AssumeRoleWithWebIdentity."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = dict(secrets)
        self.tokens: dict[str, str] = {}
        self.calls: list[StsCall] = []
        self.script: list[tuple[int, str]] = []
        self.issued = 0
        self.region: str | None = None
        self.url = ""
        self.clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/", self.handle)
        return app

    def check_signature(self, request: web.Request, body: bytes) -> tuple[str, str | None]:
        match = _AUTH.match(request.headers.get("Authorization", ""))
        assert match, "AssumeRole must be SigV4-signed"
        assert match["service"] == "sts"
        if self.region is not None:
            assert match["region"] == self.region
        key = match["key"]
        secret = self.secrets[key]
        signed = match["signed"].split(";")
        assert {"host", "x-amz-date"} <= set(signed)
        canonical_headers = "".join(f"{name}:{request.headers[name].strip()}\n" for name in signed)
        canonical = "\n".join(
            [request.method, request.path, request.query_string, canonical_headers, match["signed"], _sha256(body)]
        )
        scope = f"{match['date']}/{match['region']}/sts/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", request.headers["x-amz-date"], scope, _sha256(canonical.encode())])
        signing_key = _hmac(("AWS4" + secret).encode(), match["date"])
        for part in (match["region"], "sts", "aws4_request"):
            signing_key = _hmac(signing_key, part)
        expected = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
        assert hmac.compare_digest(expected, match["signature"]), "bad SigV4 signature"
        token = request.headers.get("X-Amz-Security-Token")
        if key in self.tokens:
            assert token == self.tokens[key]
            assert "x-amz-security-token" in signed
        return key, token

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
        form = dict(parse_qsl(body.decode(), strict_parsing=True))
        signed_by = token = None
        if form["Action"] == "AssumeRole":
            signed_by, token = self.check_signature(request, body)
        else:
            assert "Authorization" not in request.headers
        self.calls.append(StsCall(form, request.headers, signed_by, token))
        if self.script:
            status, text = self.script.pop(0)
            return web.Response(status=status, text=text, content_type="text/xml")
        self.issued += 1
        prefix = "ASIAWEBIDENTITY" if form["Action"] == "AssumeRoleWithWebIdentity" else "ASIAASSUMEROLE0"
        key = f"{prefix}{self.issued:05d}"
        secret = f"stsSecret/{self.issued:03d}+abcdefghijklmnopqrstuvwxyz01"
        session_token = f"stsSessionToken{self.issued:03d}+ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        self.secrets[key] = secret
        self.tokens[key] = session_token
        expiration = iso(self.clock() + timedelta(hours=1))
        action = form["Action"]
        return web.Response(
            text=f"""<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <{action}Result>
    <Credentials>
      <AccessKeyId>{key}</AccessKeyId>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <SessionToken>{session_token}</SessionToken>
      <Expiration>{expiration}</Expiration>
    </Credentials>
  </{action}Result>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</{action}Response>""",
            content_type="text/xml",
        )


def sts_error(code: str, message: str) -> str:
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
    )


@pytest.fixture
async def sts(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> Sts:
    """An STS stand-in on loopback, set as AWS_ENDPOINT_URL_STS; it knows the base profile's secret."""
    stub = Sts({"AKIDBASE000000000001": BASE_SECRET, "AKIDENVIRONMENT00001": BASE_SECRET})
    stub.url = await serve(stub.app())
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", stub.url)
    return stub


def web_identity_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    token_file = tmp_path / "web-identity-token"
    token_file.write_text(WEB_TOKEN + "\n")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE)
    return token_file


# --- web identity ------------------------------------------------------------------------------


async def test_web_identity_exchanges_token_through_sts(
    sts: Sts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN become credentials via an unsigned AssumeRoleWithWebIdentity."""
    web_identity_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "pod-session")
    found = await default_provider().resolve()
    assert found.access_key_id == "ASIAWEBIDENTITY00001"
    assert found.session_token is not None
    assert found.expiration is not None
    (call,) = sts.calls
    assert call.form == {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": ROLE,
        "RoleSessionName": "pod-session",
        "WebIdentityToken": WEB_TOKEN,
    }


async def test_web_identity_default_session_name(sts: Sts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without AWS_ROLE_SESSION_NAME the session is named aiopersonalize-events-<epoch seconds>."""
    web_identity_env(monkeypatch, tmp_path)
    await default_provider().resolve()
    assert re.fullmatch(r"aiopersonalize-events-\d+", sts.calls[0].form["RoleSessionName"])


async def test_web_identity_half_configured_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_ROLE_ARN without a token file is reported and the chain moves on."""
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE)
    with pytest.raises(NoCredentialsError, match="AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not"):
        await default_provider().resolve()


async def test_sts_error_is_summarised_without_the_token(
    sts: Sts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An STS error answer gives its code and message, is not retried, and the token appears nowhere."""
    caplog.set_level(logging.DEBUG, logger="aiopersonalize_events")
    web_identity_env(monkeypatch, tmp_path)
    sts.script.append((403, sts_error("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")))
    with pytest.raises(NoCredentialsError) as info:
        await default_provider().resolve()
    text = str(info.value)
    assert "AssumeRoleWithWebIdentity failed: AccessDenied (HTTP 403): Not authorized" in text
    assert WEB_TOKEN not in text
    assert WEB_TOKEN not in caplog.text
    assert len(sts.calls) == 1


async def test_sts_server_errors_are_retried(sts: Sts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A 5xx or throttling answer from STS is retried, then succeeds."""
    web_identity_env(monkeypatch, tmp_path)
    sts.script += [(500, sts_error("InternalFailure", "oops")), (400, sts_error("Throttling", "Rate exceeded"))]
    assert (await default_provider().resolve()).access_key_id.startswith("ASIAWEBIDENTITY")
    assert len(sts.calls) == 3


async def test_sts_unreachable_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An STS endpoint that refuses connections gives a clear error after the retries."""
    web_identity_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(NoCredentialsError, match=r"could not connect to http://127\.0\.0\.1:"):
        await default_provider().resolve()


async def test_missing_web_identity_token_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A token file that does not exist stops the chain with the file named."""
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE)
    with pytest.raises(NoCredentialsError, match=r"cannot read the web identity token file .*absent"):
        await default_provider().resolve()


# --- assume role from the shared files ---------------------------------------------------------

BASE_PROFILE = f"[base]\naws_access_key_id = AKIDBASE000000000001\naws_secret_access_key = {BASE_SECRET}\n"


async def test_assume_role_with_source_profile_is_signed_for_sts(
    sts: Sts, aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """role_arn + source_profile calls AssumeRole, SigV4-signed (service sts) with the source profile's keys."""
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    sts.region = "eu-west-1"
    write(aws_env, "credentials", BASE_PROFILE)
    write(
        aws_env,
        "config",
        f"""\
        [profile role]
        role_arn = {ROLE}
        source_profile = base
        role_session_name = my-session
        external_id = ext-123
        duration_seconds = 1800
        """,
    )
    found = await default_provider("role").resolve()
    assert found.access_key_id == "ASIAASSUMEROLE000001"
    (call,) = sts.calls
    assert call.signed_by == "AKIDBASE000000000001"
    assert call.token is None
    assert call.form == {
        "Action": "AssumeRole",
        "Version": "2011-06-15",
        "RoleArn": ROLE,
        "RoleSessionName": "my-session",
        "ExternalId": "ext-123",
        "DurationSeconds": "1800",
    }


async def test_assume_role_chain_signs_with_previous_role(sts: Sts, aws_env: Path) -> None:
    """A role whose source profile is itself a role assumes both, the second signed with the first's session."""
    write(aws_env, "credentials", BASE_PROFILE)
    write(
        aws_env,
        "config",
        f"""\
        [profile first]
        role_arn = {ROLE}-first
        source_profile = base
        [profile second]
        role_arn = {ROLE}-second
        source_profile = first
        """,
    )
    found = await default_provider("second").resolve()
    assert found.access_key_id == "ASIAASSUMEROLE000002"
    first, second = sts.calls
    assert (first.form["RoleArn"], first.signed_by, first.token) == (f"{ROLE}-first", "AKIDBASE000000000001", None)
    assert second.form["RoleArn"] == f"{ROLE}-second"
    assert second.signed_by == "ASIAASSUMEROLE000001"
    assert second.token == sts.tokens["ASIAASSUMEROLE000001"]


async def test_source_profile_referring_to_itself_uses_its_keys(sts: Sts, aws_env: Path) -> None:
    """A profile with keys whose source_profile is itself signs AssumeRole with its own keys (no loop)."""
    write(
        aws_env,
        "credentials",
        f"[self]\naws_access_key_id = AKIDBASE000000000001\naws_secret_access_key = {BASE_SECRET}\n"
        f"role_arn = {ROLE}\nsource_profile = self\n",
    )
    assert (await default_provider("self").resolve()).access_key_id == "ASIAASSUMEROLE000001"
    assert sts.calls[0].signed_by == "AKIDBASE000000000001"


async def test_credential_source_environment(sts: Sts, aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """credential_source = Environment signs AssumeRole with the environment keys, even with profile= given."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BASE_SECRET)
    write(aws_env, "config", f"[profile ci]\nrole_arn = {ROLE}\ncredential_source = Environment\n")
    assert (await default_provider("ci").resolve()).access_key_id == "ASIAASSUMEROLE000001"
    assert sts.calls[0].signed_by == "AKIDENVIRONMENT00001"


async def test_profile_web_identity_token_file(sts: Sts, aws_env: Path) -> None:
    """role_arn + web_identity_token_file in a profile (with ~ expanded) uses AssumeRoleWithWebIdentity."""
    (aws_env / "token").write_text(WEB_TOKEN)
    write(aws_env, "config", f"[profile wi]\nrole_arn = {ROLE}\nweb_identity_token_file = ~/token\n")
    assert (await default_provider("wi").resolve()).access_key_id == "ASIAWEBIDENTITY00001"
    assert sts.calls[0].form["WebIdentityToken"] == WEB_TOKEN


async def test_assume_role_denied_names_profile(sts: Sts, aws_env: Path) -> None:
    """An AccessDenied from AssumeRole stops the chain with the profile and the STS code named."""
    write(aws_env, "credentials", BASE_PROFILE)
    write(aws_env, "config", f"[profile role]\nrole_arn = {ROLE}\nsource_profile = base\n")
    sts.script.append((403, sts_error("AccessDenied", "User is not authorized to perform sts:AssumeRole")))
    with pytest.raises(NoCredentialsError) as info:
        await default_provider("role").resolve()
    assert "profile 'role': AssumeRole failed: AccessDenied (HTTP 403)" in str(info.value)
    assert BASE_SECRET not in str(info.value)


async def test_assumed_role_is_refreshed_before_expiry(sts: Sts, aws_env: Path) -> None:
    """Assumed-role credentials are refreshed through STS in the advisory window, once."""
    write(aws_env, "credentials", BASE_PROFILE)
    write(aws_env, "config", f"[profile role]\nrole_arn = {ROLE}\nsource_profile = base\n")
    now = [datetime.now(timezone.utc)]
    sts.clock = provider_clock = lambda: now[0]
    provider = default_provider("role", clock=provider_clock)
    first = await provider.resolve()
    now[0] += timedelta(minutes=40)  # 20 minutes left: fresh
    assert (await provider.resolve()) is first
    now[0] += timedelta(minutes=7)  # 13 minutes left: advisory
    results = await asyncio.gather(*(provider.resolve() for _ in range(5)))
    assert {r.access_key_id for r in results} == {"ASIAASSUMEROLE000001", "ASIAASSUMEROLE000002"}
    assert len(sts.calls) == 2
    assert (await provider.resolve()).access_key_id == "ASIAASSUMEROLE000002"


# --- the container endpoint --------------------------------------------------------------------


class Container:
    """Answers GET with credentials when the Authorization header matches (if one is expected)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.requests: list[tuple[str, str | None]] = []
        self.script: list[int] = []
        self.delay = 0.0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path_qs, request.headers.get("Authorization")))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script:
            return web.Response(status=self.script.pop(0), text="nope")
        if self.token is not None and request.headers.get("Authorization") != self.token:
            return web.json_response({"code": "AccessDenied"}, status=401)
        expiration = iso(datetime.now(timezone.utc) + timedelta(hours=6))
        return web.json_response(
            {
                "AccessKeyId": "ASIACONTAINER0000001",
                "SecretAccessKey": "containerSecret/abcdefghijklmnopqrstuvwxyz012",
                "Token": "containerSessionToken+ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
                "Expiration": expiration,
                "AccountId": "123456789012",
            }
        )


async def test_container_full_uri_with_authorization_token(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_CONTAINER_CREDENTIALS_FULL_URI on loopback is fetched with AWS_CONTAINER_AUTHORIZATION_TOKEN."""
    stub = Container(token=CONTAINER_TOKEN)
    url = await serve(stub.app())
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{url}/v1/credentials?id=1")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_TOKEN)
    found = await default_provider().resolve()
    assert found.access_key_id == "ASIACONTAINER0000001"
    assert found.session_token == "containerSessionToken+ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    assert found.expiration is not None
    assert stub.requests == [("/v1/credentials?id=1", CONTAINER_TOKEN)]


async def test_container_token_file_wins_over_token_variable(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (EKS Pod Identity) is read and preferred to the variable."""
    stub = Container(token=CONTAINER_TOKEN)
    url = await serve(stub.app())
    (tmp_path / "eks-token").write_text(CONTAINER_TOKEN + "\n")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{url}/v1/credentials")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(tmp_path / "eks-token"))
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong-token")
    assert (await default_provider().resolve()).access_key_id == "ASIACONTAINER0000001"


async def test_container_relative_uri(serve: Serve) -> None:
    """AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is appended to the ECS base address."""
    stub = Container()
    url = await serve(stub.app())
    source = ContainerSource({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc-123"}, relative_base=url)
    assert (await source.load()).access_key_id == "ASIACONTAINER0000001"
    assert stub.requests == [("/v2/credentials/abc-123", None)]


@pytest.mark.parametrize("uri", ["http://192.0.2.10/creds", "ftp://127.0.0.1/creds", "http://metadata.example/x"])
async def test_container_full_uri_must_be_https_or_allowed_host(uri: str) -> None:
    """A plain-http full URI to a host that is neither loopback nor an ECS/EKS address is refused unfetched."""
    with pytest.raises(SourceFailed, match="loopback"):
        await ContainerSource({"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri}).load()


async def test_container_refusal_is_not_retried(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 401 from the container endpoint stops the chain at once with the status, never the token."""
    stub = Container(token="expected")
    url = await serve(stub.app())
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{url}/secret-path")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_TOKEN)
    with pytest.raises(NoCredentialsError, match="answered HTTP 401") as info:
        await default_provider().resolve()
    assert len(stub.requests) == 1
    assert CONTAINER_TOKEN not in str(info.value)
    assert "secret-path" not in str(info.value)


async def test_container_server_error_is_retried(serve: Serve) -> None:
    """A 5xx from the container endpoint is retried."""
    stub = Container()
    stub.script = [503]
    url = await serve(stub.app())
    source = ContainerSource({"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{url}/c"})
    assert (await source.load()).access_key_id == "ASIACONTAINER0000001"
    assert len(stub.requests) == 2


async def test_container_timeout(serve: Serve) -> None:
    """A container endpoint that does not answer in time gives a timeout error."""
    stub = Container()
    stub.delay = 2
    url = await serve(stub.app())
    source = ContainerSource({"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{url}/c"}, timeout=0.2, attempts=1)
    with pytest.raises(SourceFailed, match="did not answer in time"):
        await source.load()


# --- EC2 instance metadata ---------------------------------------------------------------------


class Imds:
    """IMDS: PUT /latest/api/token, then the role list and the role's credentials; 401 without a valid token."""

    TOKEN = "AQAEAImdsTokenValue0123456789abcdefghijklmnopqrstuvw=="

    def __init__(self, *, allow_v1: bool = False, token_status: int = 200, token_delay: float = 0.0) -> None:
        self.allow_v1 = allow_v1
        self.token_status = token_status
        self.token_delay = token_delay
        self.get_delay = 0.0
        self.roles = "demo-role\n"
        self.get_script: list[int] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_put("/latest/api/token", self.token)
        app.router.add_get("/latest/meta-data/iam/security-credentials/", self.role_list)
        app.router.add_get("/latest/meta-data/iam/security-credentials/{role}", self.credentials)
        return app

    def _record(self, request: web.Request) -> None:
        self.requests.append((request.method, request.path, dict(request.headers)))

    async def token(self, request: web.Request) -> web.Response:
        self._record(request)
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if request.headers.get("X-aws-ec2-metadata-token-ttl-seconds") != "21600":
            return web.Response(status=400)
        if self.token_status != 200:
            return web.Response(status=self.token_status)
        return web.Response(text=self.TOKEN)

    def _authorised(self, request: web.Request) -> bool:
        given = request.headers.get("X-aws-ec2-metadata-token")
        return given == self.TOKEN or (given is None and self.allow_v1)

    async def role_list(self, request: web.Request) -> web.Response:
        self._record(request)
        if self.get_delay:
            await asyncio.sleep(self.get_delay)
        if not self._authorised(request):
            return web.Response(status=401)
        if not self.roles:
            return web.Response(status=404)
        return web.Response(text=self.roles)

    async def credentials(self, request: web.Request) -> web.Response:
        self._record(request)
        if not self._authorised(request):
            return web.Response(status=401)
        if self.get_script:
            return web.Response(status=self.get_script.pop(0))
        assert request.match_info["role"] == "demo-role"
        return web.json_response(
            {
                "Code": "Success",
                "LastUpdated": "2024-05-01T11:00:00Z",
                "Type": "AWS-HMAC",
                "AccessKeyId": "ASIAIMDS000000000001",
                "SecretAccessKey": "imdsSecret/abcdefghijklmnopqrstuvwxyz0123456",
                "Token": "imdsSessionToken+ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
                "Expiration": iso(datetime.now(timezone.utc) + timedelta(hours=6)),
            }
        )


async def enable_imds(serve: Serve, monkeypatch: pytest.MonkeyPatch, stub: Imds, timeout: float = 1.0) -> None:
    url = await serve(stub.app())
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url + "/")
    monkeypatch.setenv("AWS_METADATA_SERVICE_TIMEOUT", str(timeout))


async def test_imds_v2_token_then_role_then_credentials(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """IMDSv2: a token PUT with the TTL header, then both GETs carry the token, giving the role's credentials."""
    stub = Imds()
    await enable_imds(serve, monkeypatch, stub)
    found = await default_provider().resolve()
    assert found.access_key_id == "ASIAIMDS000000000001"
    assert found.session_token == "imdsSessionToken+ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    assert found.expiration is not None
    assert [(m, p) for m, p, _ in stub.requests] == [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/iam/security-credentials/"),
        ("GET", "/latest/meta-data/iam/security-credentials/demo-role"),
    ]
    assert all(headers.get("X-aws-ec2-metadata-token") == Imds.TOKEN for _, _, headers in stub.requests[1:])


async def test_imds_without_token_gets_401(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the token PUT is refused, the IMDSv1 fallback GET without a token gets 401 and is reported."""
    stub = Imds(token_status=403)
    await enable_imds(serve, monkeypatch, stub)
    with pytest.raises(NoCredentialsError, match="answered HTTP 401 for the role name") as info:
        await default_provider().resolve()
    assert "EC2 instance metadata" in str(info.value)
    assert "X-aws-ec2-metadata-token" not in stub.requests[1][2]


async def test_imds_v1_fallback_when_token_refused(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 403 to the token PUT falls back to IMDSv1 where that is allowed (as botocore)."""
    stub = Imds(token_status=403, allow_v1=True)
    await enable_imds(serve, monkeypatch, stub)
    assert (await default_provider().resolve()).access_key_id == "ASIAIMDS000000000001"


async def test_imds_v1_disabled(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """With AWS_EC2_METADATA_V1_DISABLED=true a refused token PUT ends the attempt."""
    stub = Imds(token_status=403, allow_v1=True)
    await enable_imds(serve, monkeypatch, stub)
    monkeypatch.setenv("AWS_EC2_METADATA_V1_DISABLED", "true")
    with pytest.raises(NoCredentialsError, match="HTTP 403 to the IMDSv2 token request"):
        await default_provider().resolve()
    assert len(stub.requests) == 1


async def test_imds_token_timeout_is_short(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token PUT that hangs times out after AWS_METADATA_SERVICE_TIMEOUT, then IMDSv1 is tried (and refused).

    Decided by what happened, not by how long it took: a PUT answered after its 3 s delay would have given a
    token and credentials, so the 401 of the token-less GET means the PUT timed out; the wait_for is a hang guard.
    """
    stub = Imds(token_delay=3)
    await enable_imds(serve, monkeypatch, stub, timeout=0.2)
    with pytest.raises(NoCredentialsError, match="HTTP 401"):
        await asyncio.wait_for(default_provider().resolve(), 60)
    assert [m for m, _, _ in stub.requests] == ["PUT", "GET"]


async def test_imds_read_timeout(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """A metadata GET that hangs gives 'did not answer in time' after the short timeout."""
    stub = Imds()
    stub.get_delay = 3
    await enable_imds(serve, monkeypatch, stub, timeout=0.2)
    with pytest.raises(NoCredentialsError, match="did not answer in time"):
        await default_provider().resolve()


async def test_imds_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """No metadata service (connection refused) gives 'could not connect', without an IMDSv1 attempt."""
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(NoCredentialsError, match="EC2 instance metadata: could not connect"):
        await default_provider().resolve()


async def test_imds_disabled_sends_nothing(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_EC2_METADATA_DISABLED=true skips IMDS without a request."""
    stub = Imds()
    await enable_imds(serve, monkeypatch, stub)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "TRUE")
    with pytest.raises(NoCredentialsError, match="disabled by AWS_EC2_METADATA_DISABLED"):
        await default_provider().resolve()
    assert stub.requests == []


async def test_imds_no_role(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """An instance without an instance profile (404 on the role list) is reported as such."""
    stub = Imds()
    stub.roles = ""
    await enable_imds(serve, monkeypatch, stub)
    with pytest.raises(NoCredentialsError, match="no IAM role attached"):
        await default_provider().resolve()


async def test_imds_attempts(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_METADATA_SERVICE_NUM_ATTEMPTS retries a 5xx answer."""
    stub = Imds()
    stub.get_script = [500]
    await enable_imds(serve, monkeypatch, stub)
    monkeypatch.setenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "2")
    assert (await InstanceMetadataSource().load()).access_key_id == "ASIAIMDS000000000001"


async def test_imds_source_is_unavailable_not_failed(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """IMDS problems are 'unavailable' (the chain's end), not configuration failures."""
    stub = Imds(token_status=403)
    await enable_imds(serve, monkeypatch, stub)
    with pytest.raises(SourceUnavailable):
        await InstanceMetadataSource().load()


# --- the whole chain ---------------------------------------------------------------------------


async def test_chain_order_across_all_sources(
    serve: Serve, sts: Sts, aws_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With every source configured: environment, then web identity, then files, then container, then IMDS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BASE_SECRET)
    web_identity_env(monkeypatch, tmp_path)
    credentials_file = write(
        aws_env,
        "credentials",
        f"[default]\naws_access_key_id = AKIDFILE000000000001\naws_secret_access_key = {BASE_SECRET}\n",
    )
    container = Container()
    container_url = await serve(container.app())
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{container_url}/c")
    await enable_imds(serve, monkeypatch, Imds())

    async def winner() -> str:
        return (await default_provider().resolve()).access_key_id

    assert await winner() == "AKIDENVIRONMENT00001"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    assert (await winner()).startswith("ASIAWEBIDENTITY")
    monkeypatch.delenv("AWS_ROLE_ARN")
    assert await winner() == "AKIDFILE000000000001"
    credentials_file.unlink()
    assert await winner() == "ASIACONTAINER0000001"
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    assert await winner() == "ASIAIMDS000000000001"


async def test_no_secret_in_http_flows(
    serve: Serve,
    sts: Sts,
    aws_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through STS, container and IMDS fetches (and their failures) no secret, token or URI path is logged or shown."""
    caplog.set_level(logging.DEBUG)
    secrets = {BASE_SECRET, WEB_TOKEN, CONTAINER_TOKEN, Imds.TOKEN}
    shown: list[str] = []
    write(aws_env, "credentials", BASE_PROFILE)
    write(aws_env, "config", f"[profile role]\nrole_arn = {ROLE}\nsource_profile = base\n")
    role = default_provider("role")
    await role.resolve()
    shown.append(repr(role))
    web_identity_env(monkeypatch, tmp_path)
    sts.script.append((500, sts_error("InternalFailure", f"echo {WEB_TOKEN}")))
    await default_provider().resolve()
    container = Container(token="other")
    container_url = await serve(container.app())
    monkeypatch.delenv("AWS_ROLE_ARN")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{container_url}/private-capability-path")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_TOKEN)
    with pytest.raises(SourceFailed) as info:
        await ContainerSource().load()
    shown.append(str(info.value))
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    await enable_imds(serve, monkeypatch, Imds())
    imds = default_provider()
    await imds.resolve()
    shown.append(repr(imds))
    secrets |= {key for key in sts.secrets.values()} | set(sts.tokens.values())
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("aiopersonalize_events"))
    text = "\n".join([*shown, ours])
    for secret in secrets:
        assert secret not in text
    assert "private-capability-path" not in text
    assert "imdsSecret" not in text
    assert "containerSecret" not in text
