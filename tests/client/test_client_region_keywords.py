"""A region only where a request is signed or an endpoint resolved, and boto3's constructor keywords."""

from __future__ import annotations

import pytest
import redis.asyncio
from _redis_server import RedisServer

from aiopersonalize_events import (
    ClientConfig,
    Credentials,
    Event,
    NoRegionError,
    PersonalizeEventsClient,
    ValidationError,
)
from aiopersonalize_events.emulator import Emulator
from aiopersonalize_events.redis import RedisStreamSpool

KEY, SECRET = "AKIDREGION0000000001", "regionSecret/0123456789abcdefghijklmn"
EVENT = Event(event_type="click", sent_at=1_700_000_000, event_id="e-1")

pytestmark = pytest.mark.usefixtures("aws_env")  # no AWS_* variables, an empty temporary HOME: no region anywhere


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


async def test_emulator_endpoint_without_a_region_signs_for_us_east_1(
    keys: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only AWS_ENDPOINT_URL_PERSONALIZE_EVENTS (loopback) set: the call is signed for us-east-1 and verified."""
    async with Emulator(credentials={KEY: SECRET}, region="us-east-1") as emu:
        monkeypatch.setenv("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS", emu.endpoint_url)
        async with PersonalizeEventsClient() as client:
            await client.put_events(tracking_id="t", session_id="s", event_list=[EVENT])
            assert client.region == "us-east-1"
        assert emu.calls[("PutEvents", 200)] == 1


async def test_async_with_opens_without_a_region_and_the_call_says_how(keys: None) -> None:
    """No region, AWS endpoint: `async with` opens, the first call raises NoRegionError naming AWS_REGION."""
    async with PersonalizeEventsClient() as client:
        with pytest.raises(NoRegionError, match=r"region=\.\.\., or set AWS_REGION"):
            await client.put_events(tracking_id="t", session_id="s", event_list=[EVENT])
        with pytest.raises(NoRegionError):
            await client.open()  # open() still asks at once


async def test_a_remote_custom_endpoint_still_needs_a_region(keys: None) -> None:
    """A custom endpoint that is not on this machine gets no guessed region: NoRegionError before any I/O."""
    async with PersonalizeEventsClient(endpoint_url="https://personalize-events.example.invalid") as client:
        with pytest.raises(NoRegionError, match="AWS_REGION"):
            await client.put_events(tracking_id="t", session_id="s", event_list=[EVENT])


async def test_redis_spool_producer_needs_no_region(keys: None, redis_server: RedisServer) -> None:
    """A fleet producer (recorder on a RedisStreamSpool) records into Redis with no region configured."""
    spool = RedisStreamSpool(redis_server.url, stream="pe:{region}")
    async with (
        PersonalizeEventsClient() as client,
        client.event_recorder(tracking_id="tracker", spool=spool) as recorder,
    ):
        for i in range(5):
            assert recorder.record(Event(event_type="click", sent_at=1_700_000_000, item_id=f"i{i}"), session_id="s")
        await recorder.flush()
        assert recorder.stats.sent == 5
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        assert await connection.xlen("pe:{region}") == 5
    finally:
        await connection.aclose()


# --- boto3's keywords ----------------------------------------------------------------------------------------


async def test_boto3_keywords_are_accepted() -> None:
    """region_name and aws_access_key_id/aws_secret_access_key/aws_session_token work as in boto3.client()."""
    async with Emulator(credentials={KEY: SECRET}, region="eu-west-1") as emu:
        async with PersonalizeEventsClient(
            region_name="eu-west-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            aws_session_token="session-token-value",
            endpoint_url=emu.endpoint_url,
        ) as client:
            await client.put_events(tracking_id="t", session_id="s", event_list=[EVENT])
            assert client.region == "eu-west-1"
        assert emu.calls[("PutEvents", 200)] == 1


def test_both_spellings_of_the_region_are_refused() -> None:
    """region and region_name together: a ValidationError naming region_name."""
    with pytest.raises(ValidationError, match="region_name"):
        PersonalizeEventsClient(region="us-east-1", region_name="us-east-1")


def test_half_a_boto3_key_pair_is_refused() -> None:
    """aws_access_key_id without aws_secret_access_key names the missing keyword; the key is not repeated."""
    with pytest.raises(ValidationError, match="aws_secret_access_key") as caught:
        PersonalizeEventsClient(aws_access_key_id=KEY)
    assert KEY not in str(caught.value)
    with pytest.raises(ValidationError, match="aws_access_key_id"):
        PersonalizeEventsClient(aws_secret_access_key=SECRET)


def test_credentials_and_boto3_keys_together_are_refused() -> None:
    """credentials= and aws_access_key_id= together: a ValidationError; the secret is not in the message."""
    with pytest.raises(ValidationError, match="not both") as caught:
        PersonalizeEventsClient(
            credentials=Credentials(KEY, SECRET), aws_access_key_id=KEY, aws_secret_access_key=SECRET
        )
    assert SECRET not in str(caught.value)


def test_botocore_config_is_refused_naming_ours() -> None:
    """A botocore Config passed as config= is refused with a message naming ClientConfig."""
    from botocore.config import Config

    with pytest.raises(ValidationError, match="ClientConfig"):
        PersonalizeEventsClient(config=Config(retries={"max_attempts": 2}))  # type: ignore[arg-type]
    PersonalizeEventsClient(config=ClientConfig(max_attempts=2))
