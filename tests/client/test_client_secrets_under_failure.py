"""Secrets: through failures of every kind, no secret key or session token shows up anywhere.

One test drives the client, the batching helpers and the recorder with
temporary credentials (several providers, all with session tokens) into
everything that goes wrong: a wrong secret (``InvalidSignatureException``),
an unknown key id, throttling, 5xx, dropped connections and a malformed
answer that aiohttp reports with the request's headers. Logging is at DEBUG
on the root logger; afterwards every log record (message, arguments,
traceback), every exception (text, repr, attributes, the chain), the
``repr``/``str`` of every public object involved and everything written to
stdout/stderr is scanned for the secrets.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from aiopersonalize_events import (
    BatchError,
    ClientConfig,
    Credentials,
    Event,
    Item,
    PersonalizeEventsClient,
    PersonalizeEventsError,
    RefreshingProvider,
    ServiceError,
    ValidationError,
)
from aiopersonalize_events._chain import default_provider
from aiopersonalize_events._credentials import StaticProvider
from aiopersonalize_events._sources.environment import EnvironmentProvider
from aiopersonalize_events.emulator import Emulator, Faults

KEY_ID = "AKIDRELIABLESECRETS1"
SECRET = "s3cr3t/KEY+reliability-wJalrXUtnFEMI/K7MDENG"
WRONG_SECRET = "wr0ng/KEY+reliability-bPxRfiCYEXAMPLEKEYzz"
TOKEN = "T0KEN//reliability/IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD"
ENV_SECRET = "envS3cret/reliability+aaaabbbbccccddddeeee"
ENV_TOKEN = "envT0ken//reliability/FwoGZXIvYXdzEOr//////////wEaDHR"
SECRETS = (SECRET, WRONG_SECRET, TOKEN, ENV_SECRET, ENV_TOKEN)
ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/secrets/ITEMS"
TRACKER = "tracker-secrets"


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret in {where}"
        assert secret[:16] not in text, f"the start of a secret in {where}"


def exception_texts(error: BaseException) -> Iterator[str]:
    """Every text a logger, traceback or error reporter may take from an exception and its chain."""
    yield "".join(traceback.format_exception(error))
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        yield repr(getattr(current, "__dict__", {}))
        for name in ("request_info", "headers", "message", "result"):  # aiohttp's and our errors' extras
            if hasattr(current, name):
                yield repr(getattr(current, name))
        current = current.__cause__ or current.__context__


def object_texts(obj: object) -> Iterator[str]:
    yield repr(obj)
    yield str(obj)
    yield repr(getattr(obj, "__dict__", {}))


async def _header_flood_server() -> asyncio.Server:
    """Answers with endless headers: aiohttp's error for it carries the request headers, token included."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\n" + b"X-Flood: 1\r\n" * 40_000)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _client(url: str, credentials: Any, **config: Any) -> PersonalizeEventsClient:
    options: dict[str, Any] = {"max_attempts": 2, "backoff_base": 0.001, "backoff_max": 0.005, **config}
    return PersonalizeEventsClient(
        region="us-east-1", endpoint_url=url, credentials=credentials, config=ClientConfig(**options)
    )


async def failure_of(call: Awaitable[Any]) -> PersonalizeEventsError | None:
    """The library error ``call`` raises, or None when it succeeds."""
    try:
        await call
    except PersonalizeEventsError as error:
        return error
    return None


async def test_no_secret_anywhere_while_everything_fails(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wrong secret, unknown key, throttling, 5xx, drops, malformed answers: no secret in logs, errors or reprs."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", ENV_TOKEN)
    expiring = Credentials(KEY_ID, SECRET, TOKEN, datetime.now(timezone.utc) + timedelta(hours=1))

    async def fetch() -> Credentials:
        return expiring

    refreshing = RefreshingProvider(fetch, name="test source")
    chain = default_provider(None)
    providers: list[Any] = [StaticProvider(expiring), refreshing, EnvironmentProvider(), chain]
    errors: list[BaseException] = []
    objects: list[Any] = [expiring, Credentials(KEY_ID, WRONG_SECRET, TOKEN), *providers]
    failed_events: list[Any] = []

    def keep(error: BaseException) -> None:
        errors.append(error)

    # 1. the emulator knows the key with another secret: every request is refused as InvalidSignatureException
    async with Emulator(credentials={KEY_ID: "the-emulator-secret"}) as emu:
        objects.append(emu)
        for provider in providers:
            async with _client(emu.endpoint_url, provider) as client:
                objects += [client, client.config, client.retry_policy]
                error = await failure_of(
                    client.put_items(dataset_arn=ARN, items=[Item(item_id="i", properties={"a": 1})])
                )
                assert isinstance(error, ServiceError)
                assert error.code == "InvalidSignatureException"
                assert error.http_status == 403
                keep(error)
                batch = await client.put_events_batched(
                    tracking_id=TRACKER, session_id="s", event_list=[Event(event_type="v", sent_at=1)] * 25
                )
                objects += [batch, *batch.failures]
                assert batch.failed == 25
                with pytest.raises(BatchError) as caught:
                    batch.raise_for_failures()
                keep(caught.value)
                recorder = client.event_recorder(
                    tracking_id=TRACKER, flush_interval=0.01, on_failure=lambda ev, err: failed_events.append(err)
                )
                async with recorder:
                    for n in range(15):
                        recorder.record(Event(event_type="v", sent_at=1), session_id=f"s{n % 2}")
                    for _ in range(1000):  # refused credentials are a set-up error: held, not failed, until close
                        if recorder.stats.retried >= 2:
                            break
                        await asyncio.sleep(0.01)
                    await recorder.close(timeout=0)
                objects += [recorder, recorder.stats]
        # an unknown key id
        async with _client(emu.endpoint_url, Credentials("AKIDUNKNOWN000000000", WRONG_SECRET, TOKEN)) as client:
            with pytest.raises(ValidationError) as invalid:
                await client.put_users(dataset_arn=ARN.replace("ITEMS", "USERS"), users=[])
            keep(invalid.value)
            error = await failure_of(
                client.put_events(tracking_id=TRACKER, session_id="s", event_list=[Event(event_type="v", sent_at=1)])
            )
            assert isinstance(error, ServiceError)
            assert error.code == "UnrecognizedClientException"
            keep(error)

    # 2. the right secret, with throttling, 5xx and dropped connections
    faults = Faults(throttle=0.25, server_error=0.2, disconnect=0.15, seed=11)
    async with Emulator(credentials={KEY_ID: SECRET}, faults=faults) as emu:
        objects += [emu, emu.faults]
        async with _client(emu.endpoint_url, refreshing) as client:
            for n in range(30):
                event = Event(event_type="v", sent_at=1, event_id=f"{n}")
                error = await failure_of(client.put_events(tracking_id=TRACKER, session_id="s", event_list=[event]))
                if error is not None:
                    keep(error)
            recorder = client.event_recorder(
                tracking_id=TRACKER,
                flush_interval=0.01,
                on_failure=lambda ev, err: failed_events.append(err),
            )
            async with recorder:
                for n in range(40):
                    recorder.record(Event(event_type="v", sent_at=1), session_id=f"s{n % 3}")
                await recorder.flush()
            objects += [recorder, recorder.stats]
        assert sum(n for (_, status), n in emu.calls.items() if status == 200) > 0

    # 3. a malformed answer that aiohttp reports with the request (and its token) attached
    flood = await _header_flood_server()
    try:
        url = f"http://127.0.0.1:{flood.sockets[0].getsockname()[1]}"
        async with _client(url, refreshing, max_attempts=1) as client:
            error = await failure_of(client.put_items(dataset_arn=ARN, items=[Item(item_id="i")]))
            assert error is not None
            assert error.__cause__ is not None  # aiohttp's error, request headers and all
            keep(error)
    finally:
        flood.close()
        await flood.wait_closed()

    # every text produced
    errors += failed_events
    assert len(errors) > 10
    assert {type(e).__name__ for e in errors} >= {
        "ServiceError",
        "ThrottlingException",
        "ConnectionClosedError",
        "InvalidResponseError",
        "BatchError",
        "ValidationError",
    }
    for error in errors:
        for text in exception_texts(error):
            assert_clean(text, f"{type(error).__name__}")
    for obj in objects:
        for text in object_texts(obj):
            assert_clean(text, f"repr/str of {type(obj).__name__}")
    formatter = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    assert len(caplog.records) > 50
    for record in caplog.records:
        assert_clean(formatter.format(record), f"log record of {record.name}")
        assert_clean(repr(record.args), f"log arguments of {record.name}")
        assert_clean(repr(record.msg), f"log message of {record.name}")
    out, err = capfd.readouterr()
    assert_clean(out + err, "stdout/stderr")
    print(
        f"secrets: {len(errors)} errors, {len(objects)} objects, {len(caplog.records)} log records scanned; "
        f"error kinds {sorted({type(e).__name__ for e in errors})}"
    )
