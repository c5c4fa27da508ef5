"""Proxies as the AWS SDKs read them: HTTPS_PROXY/HTTP_PROXY/NO_PROXY and ClientConfig(proxies=...), for every call.

A real forwarding proxy on 127.0.0.1 (tests/_forward_proxy.py) counts what
passes. The client is pointed at ports where nothing listens and only the
proxy's routes lead to the real servers: a call that bypassed the proxy
would fail, so "every call went through it" is what the test sees, not what
it assumes. The container credentials endpoint is a credential call made
the same way as STS, SSO and instance metadata (``_sources/_http.py``).
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from _forward_proxy import ForwardProxy
from aiohttp import web

from aiopersonalize_events import (
    ClientConfig,
    Event,
    NoCredentialsError,
    PersonalizeEventsClient,
    PersonalizeEventsError,
    ValidationError,
)
from aiopersonalize_events.emulator import Emulator

SECRET_PASSWORD = "pr0xy-s3cret-pw"


def _dead_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ContainerEndpoint:
    """The ECS/EKS container credentials endpoint, served on 127.0.0.1; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _answer(self, request: web.Request) -> web.Response:
        self.calls += 1
        expires = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"AccessKeyId": "ASIACONTAINER0000001", "SecretAccessKey": "container-secret", "Token": "tok"}
        return web.json_response({**body, "Expiration": expires})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/creds", self._answer)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def container() -> AsyncIterator[ContainerEndpoint]:
    endpoint = ContainerEndpoint()
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


@pytest.fixture
async def tls_free_emulator() -> AsyncIterator[Emulator]:
    async with Emulator() as emu:
        yield emu


def _events(n: int, prefix: str) -> list[Event]:
    return [
        Event(event_type="click", item_id=f"{prefix}-{i}", event_id=f"{prefix}-{i}", sent_at=1_700_000_000)
        for i in range(n)
    ]


async def _send(client: PersonalizeEventsClient, calls: int, prefix: str) -> None:
    for i in range(calls):
        await client.put_events(tracking_id="t", session_id="s", event_list=_events(2, f"{prefix}{i}"))


async def test_http_proxy_carries_the_service_and_the_credential_calls(
    monkeypatch: pytest.MonkeyPatch, tls_free_emulator: Emulator, container: ContainerEndpoint
) -> None:
    """With HTTP_PROXY set, every service call and the container credentials call pass through the proxy."""
    emu = tls_free_emulator
    emu_port = int(emu.endpoint_url.rsplit(":", 1)[1])
    service_hole, creds_hole = _dead_port(), _dead_port()
    proxy = ForwardProxy(
        routes={
            f"127.0.0.1:{service_hole}": f"127.0.0.1:{emu_port}",
            f"127.0.0.1:{creds_hole}": f"127.0.0.1:{container.port}",
        }
    )
    await proxy.start()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{creds_hole}/creds")
        async with PersonalizeEventsClient(
            region="us-east-1", endpoint_url=f"http://127.0.0.1:{service_hole}"
        ) as client:
            await _send(client, 3, "p")
    finally:
        await proxy.stop()
    targets = [p.target for p in proxy.passed]
    assert targets.count(f"http://127.0.0.1:{creds_hole}/creds") == 1
    assert len([t for t in targets if t.startswith(f"http://127.0.0.1:{service_hole}/")]) == 3
    assert container.calls == 1
    assert len(emu.events(tracking_id="t")) == 6
    assert emu.calls[("PutEvents", 200)] == 3


async def test_no_proxy_exempts_the_hosts_it_names(
    monkeypatch: pytest.MonkeyPatch, tls_free_emulator: Emulator, container: ContainerEndpoint
) -> None:
    """NO_PROXY=localhost sends the container call (to localhost) direct; the service (127.0.0.1) still uses the proxy.

    The names are compared as written: ``localhost`` in NO_PROXY does not cover ``127.0.0.1``.
    """
    emu = tls_free_emulator
    emu_port = int(emu.endpoint_url.rsplit(":", 1)[1])
    hole = _dead_port()
    proxy = ForwardProxy(routes={f"127.0.0.1:{hole}": f"127.0.0.1:{emu_port}"})
    await proxy.start()
    try:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("no_proxy", "localhost, .example.internal")
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://localhost:{container.port}/creds")
        async with PersonalizeEventsClient(region="us-east-1", endpoint_url=f"http://127.0.0.1:{hole}") as client:
            await _send(client, 2, "n")
    finally:
        await proxy.stop()
    assert container.calls == 1  # reached directly: the proxy has no route to it
    assert [p.target.split("/")[2] for p in proxy.passed] == [f"127.0.0.1:{hole}"] * 2
    assert len(emu.events(tracking_id="t")) == 4


async def test_client_config_proxies_win_over_the_environment_and_empty_turns_them_off(
    monkeypatch: pytest.MonkeyPatch, tls_free_emulator: Emulator
) -> None:
    """ClientConfig(proxies=...) is used instead of HTTP_PROXY; proxies={} goes direct whatever the environment says."""
    emu = tls_free_emulator
    emu_port = int(emu.endpoint_url.rsplit(":", 1)[1])
    hole = _dead_port()
    configured = ForwardProxy(routes={f"127.0.0.1:{hole}": f"127.0.0.1:{emu_port}"})
    await configured.start()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_dead_port()}")  # a proxy that is not there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDPROXYTEST0000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "proxy-test-secret")
    try:
        config = ClientConfig(proxies={"http": configured.url}, max_attempts=1)
        async with PersonalizeEventsClient(
            region="us-east-1", endpoint_url=f"http://127.0.0.1:{hole}", config=config
        ) as c:
            await _send(c, 1, "c")
        async with PersonalizeEventsClient(
            region="us-east-1", endpoint_url=emu.endpoint_url, config=ClientConfig(proxies={}, max_attempts=1)
        ) as direct:
            await _send(direct, 1, "d")
    finally:
        await configured.stop()
    assert len(configured.passed) == 1
    assert len(emu.events(tracking_id="t")) == 4


async def test_proxy_credentials_are_sent_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, tls_free_emulator: Emulator
) -> None:
    """user:password in the proxy URL become Proxy-Authorization; no repr, log line or error shows the password."""
    emu = tls_free_emulator
    emu_port = int(emu.endpoint_url.rsplit(":", 1)[1])
    hole = _dead_port()
    proxy = ForwardProxy(routes={f"127.0.0.1:{hole}": f"127.0.0.1:{emu_port}"}, auth=("alice", SECRET_PASSWORD))
    await proxy.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDPROXYTEST0000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "proxy-test-secret")
    shown: list[str] = []
    try:
        good = ClientConfig(proxies={"http": proxy.url_with("alice", SECRET_PASSWORD)}, max_attempts=1)
        async with PersonalizeEventsClient(
            region="us-east-1", endpoint_url=f"http://127.0.0.1:{hole}", config=good
        ) as c:
            await _send(c, 1, "a")
            shown += [repr(c), repr(c.config), repr(c._transport.network), str(c.config)]
        bad = ClientConfig(proxies={"http": proxy.url_with("alice", "wrong-" + SECRET_PASSWORD)}, max_attempts=1)
        async with PersonalizeEventsClient(
            region="us-east-1", endpoint_url=f"http://127.0.0.1:{hole}", config=bad
        ) as c:
            with pytest.raises(PersonalizeEventsError) as info:
                await _send(c, 1, "b")
            shown += [repr(c.config), str(info.value), repr(info.value), repr(info.value.__cause__)]
        monkeypatch.setenv("HTTPS_PROXY", proxy.url_with("alice", SECRET_PASSWORD))
        tls_bad = ClientConfig(proxies={"https": proxy.url_with("alice", "nope-" + SECRET_PASSWORD)}, max_attempts=1)
        async with PersonalizeEventsClient(region="us-east-1", endpoint_url="https://127.0.0.1:9", config=tls_bad) as c:
            with pytest.raises(PersonalizeEventsError) as tls_info:
                await _send(c, 1, "t")
            cause = tls_info.value.__cause__
            shown += [
                str(tls_info.value),
                repr(tls_info.value),
                repr(cause),
                str(cause),
                repr(getattr(cause, "args", "")),
            ]
    finally:
        await proxy.stop()
    assert [p.status for p in proxy.passed] == [200, 407, 407]
    assert proxy.passed[0].proxy_authorization is not None
    assert "407" in shown[5]
    for text in shown:
        assert SECRET_PASSWORD not in text, text
        assert "alice:" not in text, text
    assert "***@" in shown[1]


def test_bad_proxies_are_a_validation_error_that_does_not_quote_the_url() -> None:
    """A malformed proxies mapping names the field and key, never the URL (it may hold a password)."""
    with pytest.raises(ValidationError) as info:
        ClientConfig(proxies={"https": f"socks5://u:{SECRET_PASSWORD}@h:1"})
    assert info.value.path == "proxies['https']"
    assert SECRET_PASSWORD not in str(info.value)
    with pytest.raises(ValidationError):
        ClientConfig(proxies={"ftp": "http://h:1"})
    configured = ClientConfig(proxies={"https": "http://h:1"})
    assert hash(configured) == hash(ClientConfig(proxies={"https": "http://h:1"}))  # still a hashable value
    assert configured != ClientConfig(proxies={})


async def test_a_proxy_that_is_down_fails_the_credential_call_clearly(
    monkeypatch: pytest.MonkeyPatch, container: ContainerEndpoint
) -> None:
    """HTTP_PROXY pointing at nothing: the container source says the proxy could not be reached; no call arrived."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_dead_port()}")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{container.port}/creds")
    async with PersonalizeEventsClient(region="us-east-1", endpoint_url="http://127.0.0.1:9") as client:
        with pytest.raises(NoCredentialsError) as info:
            await _send(client, 1, "x")
    assert "proxy" in str(info.value)
    assert container.calls == 0
    json.dumps(str(info.value))  # plain text


def test_the_metadata_and_container_addresses_never_go_through_a_proxy() -> None:
    """169.254.169.254, 169.254.170.2 and fd00:ec2::254 are the machine's own: a proxy would answer for another."""
    from aiopersonalize_events._network import Network

    network = Network.from_environment({"HTTP_PROXY": "http://proxy.corp:3128"})
    assert network.proxy_for("http://169.254.169.254/latest/api/token") is None
    assert network.proxy_for("http://169.254.170.2/v2/credentials/x") is None
    assert network.proxy_for("http://[fd00:ec2::254]/latest/api/token") is None
    route = network.proxy_for("http://10.1.2.3:8080/")
    assert route is not None
    assert route.url == "http://proxy.corp:3128"
    assert network.proxy_for("https://personalize-events.us-east-1.amazonaws.com/events") is None  # no HTTPS_PROXY
    listed = Network.from_environment({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8, .corp.example, h:9"})
    assert listed.proxy_for("https://10.9.9.9/") is None
    assert listed.proxy_for("https://api.corp.example/") is None
    assert listed.proxy_for("https://corp.example/") is None
    assert listed.proxy_for("https://h:9/") is None
    assert listed.proxy_for("https://h:10/") is not None
    assert listed.proxy_for("https://notcorp.example/") is not None
    assert Network.from_environment({"HTTPS_PROXY": "http://p:1", "no_proxy": "*"}).proxy_for("https://x/") is None
