"""A Redis URL's password never shows: not in the messages of a URL that does not parse (a ``/``, ``#`` or
``?`` in the password), not in the forward and put commands' errors, log lines, exceptions, on_failure errors or
reprs; URLs are shown through one redaction helper."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
from _redis_server import free_port, until

from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient, SpoolError, ValidationError, _redact
from aiopersonalize_events.cli import main
from aiopersonalize_events.redis import Forwarder, RedisRateLimiter, RedisStreamSpool, add_records, limiter_from_url

SECRET = "Pw0rdXq"  # every piece of the password below holds this, so a leaked piece shows
BAD_URLS = [
    f"redis://user:{SECRET}/{SECRET}@127.0.0.1:6379/0",  # '/' in the password
    f"redis://:{SECRET}#{SECRET}@127.0.0.1:6379/0",  # '#'
    f"redis://:{SECRET}?{SECRET}@127.0.0.1:6379/0",  # '?'
    f"rediss://{SECRET}:{SECRET}/x@[::1/0",  # and a broken host
    f"redis://:4242/{SECRET}@127.0.0.1:6379/0",  # parses, but would connect to port 4242 of localhost
]
SENT_AT = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def _clean(text: str) -> None:
    assert SECRET not in text, text
    assert "4242" not in text, text


@pytest.fixture
async def client() -> AsyncIterator[PersonalizeEventsClient]:
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url="http://127.0.0.1:9", credentials=Credentials("AKIDRS", "rs-secret")
    ) as c:
        yield c


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("redis://user:pa/ss@host:6379/0", "redis://***@host:6379/0"),
        ("redis://:p@ss#w@host/1", "redis://***@host/1"),
        ("rediss://host:6380/0?password=abc&db=2", "rediss://host:6380/0?password=***&db=2"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_the_one_redaction_helper_hides_user_information_even_when_the_url_does_not_parse(raw: str, shown: str) -> None:
    """Everything up to the last '@' is user information; a password= in the query is hidden too."""
    assert _redact.url(raw) == shown


@pytest.mark.parametrize("url", BAD_URLS)
async def test_a_spool_on_a_url_that_does_not_parse_says_so_without_the_password(
    url: str, client: PersonalizeEventsClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The spool cannot open: SpoolError, on_failure's error and the log lines name the problem, not the URL."""
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    recorder = client.event_recorder(
        tracking_id="t",
        spool=RedisStreamSpool(url, stream="s"),
        on_failure=lambda events, error: errors.append(error),
    )
    recorder.record(Event(event_type="click", sent_at=SENT_AT, item_id="i"), session_id="s1")
    await until(lambda: errors, what="the spool to fail opening")
    await recorder.close()
    assert isinstance(errors[0], SpoolError)
    assert "percent-encode" in str(errors[0])
    for text in (str(errors[0]), repr(errors[0]), caplog.text):
        _clean(text)


@pytest.mark.parametrize("url", BAD_URLS)
async def test_a_forwarder_a_limiter_and_add_records_refuse_such_a_url_without_the_password(
    url: str, client: PersonalizeEventsClient
) -> None:
    """Forwarder.run(), RedisRateLimiter.acquire(), add_records() and limiter_from_url(): ValidationError, no secret."""
    forwarder = Forwarder(client, url, stream="s", group="g", tracking_id="t")
    with pytest.raises(ValidationError) as caught:
        await forwarder.run()
    _clean(str(caught.value))
    limiter = RedisRateLimiter(url, key="k", rate=1)
    with pytest.raises(ValidationError) as caught:
        await limiter.acquire()
    _clean(str(caught.value))
    with pytest.raises(ValidationError) as caught:
        await add_records(url, "s", [Event(event_type="click", sent_at=SENT_AT)], session_id="s1")
    _clean(str(caught.value))
    with pytest.raises(ValidationError) as caught:
        limiter_from_url(url, key="k", rate=1)
    _clean(str(caught.value))
    for shown in (repr(forwarder), repr(limiter)):
        _clean(shown)


@pytest.mark.parametrize("url", BAD_URLS)
def test_the_forward_command_calls_such_a_url_a_usage_error_without_the_password(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """forward --redis BAD: exit 2 (usage), and neither stream says the password."""
    status = main(["forward", "--redis", url, "--stream", "s", "--group", "g", "--tracking-id", "t"])
    out, err = capsys.readouterr()
    assert status == 2
    assert "--redis" in err
    _clean(out + err)


@pytest.mark.parametrize("url", BAD_URLS)
def test_put_with_such_a_rate_limiter_url_says_so_without_the_password(
    url: str, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    """put-items --rate-limiter BAD: a usage error naming --rate-limiter, no secret."""
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    source = tmp_path / "items.jsonl"
    source.write_text('{"itemId": "i1"}\n')
    status = main(
        [
            "put-items",
            "--dataset-arn",
            "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS",
            "--endpoint-url",
            "http://127.0.0.1:9",
            "--region",
            "us-east-1",
            "--rate-limiter",
            url,
            str(source),
        ]
    )
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert "--rate-limiter" in err
    _clean(out + err)


async def test_a_waiting_spool_limiter_and_forwarder_show_the_url_redacted(
    client: PersonalizeEventsClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A good URL with a password, nobody listening: the WARNING lines name redis://***@host:port, and the
    reprs and close()'s report of the unsent events (its ERROR line, the error a waiting put() gets) hold no
    password."""
    caplog.set_level(logging.DEBUG)
    port = free_port()
    url = f"redis://producer:{SECRET}@127.0.0.1:{port}/0"
    tries: list[float] = []

    async def sleep(delay: float) -> None:
        tries.append(delay)
        await asyncio.sleep(0.002)

    spool = RedisStreamSpool(url, stream="s", close_timeout=0.2, sleep=sleep)
    errors: list[BaseException] = []
    async with client.event_recorder(
        tracking_id="t", spool=spool, on_failure=lambda events, error: errors.append(error)
    ) as recorder:
        recorder.record(Event(event_type="click", sent_at=SENT_AT), session_id="s1")
        put = asyncio.ensure_future(recorder.put(Event(event_type="click", sent_at=SENT_AT), session_id="s1"))
        await until(lambda: tries, what="the spool to wait")
        limiter = RedisRateLimiter(url, key="k", rate=1, sleep=sleep)
        acquire = asyncio.ensure_future(limiter.acquire())
        await until(lambda: len(tries) >= 3, what="the limiter to wait")
        acquire.cancel()
        await asyncio.gather(acquire, return_exceptions=True)
        await limiter.close()
        shown = [repr(spool), repr(limiter), repr(recorder)]
    errors.extend(e for e in await asyncio.gather(put, return_exceptions=True) if isinstance(e, BaseException))
    assert errors
    assert "not written to the Redis stream" in caplog.text
    assert f"redis://***@127.0.0.1:{port}/0" in caplog.text
    for text in [caplog.text, *shown, *(str(e) for e in errors)]:
        _clean(text)


async def test_the_spool_s_lines_name_its_stream_as_the_forwarder_s_do(
    client: PersonalizeEventsClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The tracking id is not sensitive (see the operations guide): a spool's lines name its stream, which names the
    tracker, so two spools of one process are told apart, as the forwarders' INFO lines tell their streams."""
    caplog.set_level(logging.INFO, "aiopersonalize_events.redis")
    url = f"redis://127.0.0.1:{free_port()}/0"
    spools = [
        RedisStreamSpool(url, stream=f"pe:{{events:tracker-{n}}}", close_timeout=0.1, backoff_max=0.05) for n in (1, 2)
    ]
    recorders = [client.event_recorder(tracking_id=f"tracker-{n + 1}", spool=s) for n, s in enumerate(spools)]
    for recorder in recorders:
        async with recorder:
            recorder.record(Event(event_type="click", sent_at=SENT_AT), session_id="s1")
            await until(lambda r=recorder: r.spool.stats.retries, what="the spool to wait")
    for n in (1, 2):
        lines = [r.getMessage() for r in caplog.records if f"pe:{{events:tracker-{n}}}" in r.getMessage()]
        assert any("not answering" in line for line in lines), caplog.text
        assert any("not written" in line for line in lines), caplog.text
