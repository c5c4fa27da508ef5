"""CA bundles as the AWS SDKs read them: ClientConfig(ca_bundle=...), AWS_CA_BUNDLE, the profile's ca_bundle.

A local TLS emulator (the emulator's app behind a TLS site) presents a
certificate from a private CA made in the test (``trustme``). With the CA's
PEM file configured the calls succeed, the service's and the credential
endpoint's alike; without it they fail with a TLS error that says so.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trustme
from _forward_proxy import ForwardProxy
from aiohttp import web

from aiopersonalize_events import (
    ClientConfig,
    Credentials,
    EndpointConnectionError,
    Event,
    NoCredentialsError,
    PersonalizeEventsClient,
    RecorderClosedError,
    ResponseMetadata,
    TLSVerificationError,
    ValidationError,
)
from aiopersonalize_events.emulator import Emulator
from aiopersonalize_events.errors import Fault


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


class TlsSite:
    """An aiohttp app served over TLS on 127.0.0.1."""

    def __init__(self, app: web.Application, context: ssl.SSLContext) -> None:
        self.app = app
        self.context = context
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> TlsSite:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.context).start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def tls_emulator(ca: trustme.CA) -> AsyncIterator[tuple[Emulator, str]]:
    emu = Emulator()
    async with TlsSite(emu.make_app(), _server_context(ca)) as site:
        yield emu, f"https://127.0.0.1:{site.port}"


def _container_app(calls: list[int]) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        calls.append(1)
        expires = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return web.json_response(
            {"AccessKeyId": "ASIATLS0000000000001", "SecretAccessKey": "s", "Token": "t", "Expiration": expires}
        )

    app = web.Application()
    app.router.add_get("/creds", answer)
    return app


EVENTS = [Event(event_type="click", item_id="i-1", event_id="e-1", sent_at=1_700_000_000)]


async def _put(client: PersonalizeEventsClient) -> ResponseMetadata:
    return await client.put_events(tracking_id="t", session_id="s", event_list=EVENTS)


@pytest.fixture
def env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTLSTEST000000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "tls-test-secret")


async def test_aws_ca_bundle_lets_calls_to_a_private_ca_server_succeed(
    monkeypatch: pytest.MonkeyPatch, tls_emulator: tuple[Emulator, str], ca_file: Path, env_keys: None
) -> None:
    """With AWS_CA_BUNDLE naming the private CA, put_events over https reaches the TLS emulator."""
    emu, url = tls_emulator
    monkeypatch.setenv("AWS_CA_BUNDLE", str(ca_file))
    async with PersonalizeEventsClient(region="us-east-1", endpoint_url=url) as client:
        await _put(client)
    assert [e["eventId"] for e in emu.events(tracking_id="t")] == ["e-1"]


async def test_without_the_ca_bundle_the_call_fails_with_a_clear_tls_error(
    tls_emulator: tuple[Emulator, str], env_keys: None
) -> None:
    """No CA bundle: an EndpointConnectionError naming certificate verification and AWS_CA_BUNDLE; nothing stored."""
    emu, url = tls_emulator
    async with PersonalizeEventsClient(region="us-east-1", endpoint_url=url, config=ClientConfig(max_attempts=1)) as c:
        with pytest.raises(EndpointConnectionError) as info:
            await _put(c)
    text = str(info.value)
    assert "TLS certificate verification failed for 127.0.0.1:" in text
    assert "AWS_CA_BUNDLE" in text
    assert "Traceback" not in text
    assert "\n" not in text
    assert emu.events() == []


class CountingRelay:
    """A TCP relay on 127.0.0.1 in front of ``target``: counts the connections it accepts, passes bytes both ways."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.connections = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> CountingRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), 30)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_tls_verification_failure_is_a_set_up_fault_tried_once(
    monkeypatch: pytest.MonkeyPatch, tls_emulator: tuple[Emulator, str], ca_file: Path, env_keys: None
) -> None:
    """No CA bundle, default retries: one connection reaches the server, none more; the fix names AWS_CA_BUNDLE.

    The same certificate fails the same way on every attempt, so the error is
    the set-up's (``Fault.SETUP``), not retried and not charged to the budget.
    With ``AWS_CA_BUNDLE`` set the same relay carries a call that succeeds.
    """
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    emu, url = tls_emulator
    async with CountingRelay(int(url.rsplit(":", 1)[1])) as relay:
        relayed = f"https://127.0.0.1:{relay.port}"
        async with PersonalizeEventsClient(region="us-east-1", endpoint_url=relayed) as client:
            assert client.config.max_attempts == 3
            with pytest.raises(TLSVerificationError) as info:
                await _put(client)
            tokens = client.retry_policy.budget.tokens
        assert relay.connections == 1
        error = info.value
        assert isinstance(error, EndpointConnectionError)  # what callers caught before still catches it
        assert (error.fault, error.retryable, error.attempts) == (Fault.SETUP, False, 1)
        assert tokens == 500  # nothing taken from the retry budget
        assert error.fix is not None
        assert "AWS_CA_BUNDLE" in error.fix
        assert "ca_bundle" in error.fix
        assert f"TLS certificate verification failed for 127.0.0.1:{relay.port}" in str(error)
        assert emu.calls == {}

        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca_file))
        async with PersonalizeEventsClient(region="us-east-1", endpoint_url=relayed) as client:
            meta = await _put(client)
        assert relay.connections == 2
    assert meta.retry_attempts == 0
    assert [e["eventId"] for e in emu.events(tracking_id="t")] == ["e-1"]


async def test_a_recorder_holds_its_events_on_a_tls_verification_failure(
    monkeypatch: pytest.MonkeyPatch, tls_emulator: tuple[Emulator, str], env_keys: None
) -> None:
    """No CA bundle: the recorder's events are held (pending, never failed) while it runs; at close, undelivered."""
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    emu, url = tls_emulator
    failures: list[BaseException] = []
    async with CountingRelay(int(url.rsplit(":", 1)[1])) as relay:
        client = PersonalizeEventsClient(region="us-east-1", endpoint_url=f"https://127.0.0.1:{relay.port}")
        recorder = client.event_recorder(tracking_id="t", on_failure=lambda events, error: failures.append(error))
        async with client, recorder:
            for n in range(3):
                recorder.record(Event(event_type="click", item_id="i", event_id=f"r{n}", sent_at=1), session_id="s")
            for _ in range(2000):  # bounded turns of the loop, not a timer
                if recorder.stats.retried:
                    break
                await asyncio.sleep(0.01)
            assert relay.connections >= 1
            assert (recorder.stats.failed, recorder.stats.pending) == (0, 3)
            await recorder.close(timeout=0.2)
    # a memory spool cannot keep them: at the deadline they go to on_failure as undelivered, naming the cause
    assert (recorder.stats.sent, recorder.stats.failed, recorder.stats.pending) == (0, 3, 0)
    (closed,) = failures
    assert isinstance(closed, RecorderClosedError)
    assert "held: TLS certificate verification failed" in str(closed)
    assert emu.calls == {}


async def test_the_profile_ca_bundle_and_client_config_are_read(
    monkeypatch: pytest.MonkeyPatch, tls_emulator: tuple[Emulator, str], ca_file: Path, tmp_path: Path, env_keys: None
) -> None:
    """ca_bundle in the profile (config file) works; ClientConfig(ca_bundle=...) wins over a wrong AWS_CA_BUNDLE."""
    emu, url = tls_emulator
    config_file = tmp_path / "config"
    config_file.write_text(f"[profile corp]\nca_bundle = {ca_file}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    keys = Credentials("AKIDTLSTEST000000001", "tls-test-secret")
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=url, profile="corp", credentials=keys
    ) as client:
        await _put(client)
    other = trustme.CA()
    wrong = tmp_path / "other-ca.pem"
    other.cert_pem.write_to_path(str(wrong))
    monkeypatch.setenv("AWS_CA_BUNDLE", str(wrong))
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=url, config=ClientConfig(ca_bundle=str(ca_file))
    ) as client:
        await _put(client)
    assert len(emu.events(tracking_id="t")) == 1  # the same event id twice: stored once
    assert emu.calls[("PutEvents", 200)] == 2


async def test_a_missing_ca_bundle_is_a_validation_error_before_any_io(
    monkeypatch: pytest.MonkeyPatch, tls_emulator: tuple[Emulator, str], tmp_path: Path, env_keys: None
) -> None:
    """AWS_CA_BUNDLE naming no file raises ValidationError naming AWS_CA_BUNDLE; no call is made."""
    emu, url = tls_emulator
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "absent.pem"))
    client = PersonalizeEventsClient(region="us-east-1", endpoint_url=url)
    with pytest.raises(ValidationError) as info:
        await _put(client)
    await client.close()
    assert info.value.path == "AWS_CA_BUNDLE"
    assert "does not exist" in str(info.value)
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(ValidationError) as junk:
        async with PersonalizeEventsClient(
            region="us-east-1", endpoint_url=url, config=ClientConfig(ca_bundle=str(tmp_path / "junk.pem"))
        ):
            pass
    assert junk.value.path == "ca_bundle"
    assert emu.calls == {}


async def test_credential_calls_use_the_ca_bundle_too(
    monkeypatch: pytest.MonkeyPatch, tls_emulator: tuple[Emulator, str], ca: trustme.CA, ca_file: Path
) -> None:
    """The container endpoint over https with the private CA: it works with AWS_CA_BUNDLE and names TLS without."""
    emu, url = tls_emulator
    calls: list[int] = []
    async with TlsSite(_container_app(calls), _server_context(ca)) as site:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"https://localhost:{site.port}/creds")
        async with PersonalizeEventsClient(region="us-east-1", endpoint_url=url) as client:
            with pytest.raises(NoCredentialsError) as info:
                await _put(client)
        assert "TLS certificate verification failed" in str(info.value)
        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca_file))
        async with PersonalizeEventsClient(region="us-east-1", endpoint_url=url) as client:
            await _put(client)
    assert len(calls) == 1  # the failed handshake never reached the handler
    assert emu.calls[("PutEvents", 200)] == 1


async def test_https_proxy_tunnels_to_a_private_ca_server(
    monkeypatch: pytest.MonkeyPatch, tls_emulator: tuple[Emulator, str], ca_file: Path, env_keys: None
) -> None:
    """HTTPS_PROXY + AWS_CA_BUNDLE: the client CONNECTs through the proxy (the only way in), verifying TLS."""
    emu, url = tls_emulator
    real_port = url.rsplit(":", 1)[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        hole = sock.getsockname()[1]
    proxy = ForwardProxy(routes={f"127.0.0.1:{hole}": f"127.0.0.1:{real_port}"})
    await proxy.start()
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca_file))
        async with PersonalizeEventsClient(region="us-east-1", endpoint_url=f"https://127.0.0.1:{hole}") as client:
            for _ in range(3):
                await _put(client)
    finally:
        await proxy.stop()
    assert {(p.method, p.target) for p in proxy.passed} == {("CONNECT", f"127.0.0.1:{hole}")}
    assert emu.calls[("PutEvents", 200)] == 3
