"""What the client puts on the wire, for every operation, against a recording server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import platform
import re
from datetime import datetime, timezone
from typing import Any

import aiohttp
import botocore.serialize
import botocore.session
import botocore.validate
import pytest
from _scripted_server import ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, Recorded, ScriptedServer, make_client
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiopersonalize_events import (
    Action,
    ActionInteraction,
    ClientConfig,
    Credentials,
    Event,
    Item,
    MetricAttribution,
    NoRegionError,
    PersonalizeEventsClient,
    ResponseMetadata,
    User,
    ValidationError,
    __version__,
)
from aiopersonalize_events._endpoints import endpoint_for
from aiopersonalize_events._naming import camel
from aiopersonalize_events._operations import OPERATIONS, Operation

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
T = 1_700_000_000

# One fully populated call per operation and the exact bytes it must send.
CALLS: dict[str, tuple[dict[str, Any], bytes]] = {
    "PutEvents": (
        {
            "tracking_id": "trk-1",
            "session_id": "sess-1",
            "user_id": "user-1",
            "event_list": [
                Event(
                    event_type="click",
                    sent_at=T + 0.25,
                    event_id="evt-1",
                    event_value=4.5,
                    item_id="item-1",
                    properties={"color": "rouge fonc\u00e9", "n": 1},
                    recommendation_id="rec-1",
                    impression=["item-1", "item-2"],
                    metric_attribution=MetricAttribution(event_attribution_source="newsletter"),
                ),
                Event(event_type="view", sent_at=T),
            ],
        },
        b'{"trackingId":"trk-1","sessionId":"sess-1","eventList":[{"eventType":"click","sentAt":1700000000.25,'
        b'"eventId":"evt-1","eventValue":4.5,"itemId":"item-1",'
        b'"properties":"{\\"color\\":\\"rouge fonc\xc3\xa9\\",\\"n\\":1}","recommendationId":"rec-1",'
        b'"impression":["item-1","item-2"],"metricAttribution":{"eventAttributionSource":"newsletter"}},'
        b'{"eventType":"view","sentAt":1700000000}],"userId":"user-1"}',
    ),
    "PutItems": (
        {"dataset_arn": ARN, "items": [Item(item_id="item-1", properties={"genre": "jazz"}), Item(item_id="item-2")]},
        b'{"datasetArn":"arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS",'
        b'"items":[{"itemId":"item-1","properties":"{\\"genre\\":\\"jazz\\"}"},{"itemId":"item-2"}]}',
    ),
    "PutUsers": (
        {
            "dataset_arn": ARN.replace("ITEMS", "USERS"),
            "users": [User(user_id="user-1", properties={"tier": "gold"}), User(user_id="user-2")],
        },
        b'{"datasetArn":"arn:aws:personalize:us-east-1:123456789012:dataset/shop/USERS",'
        b'"users":[{"userId":"user-1","properties":"{\\"tier\\":\\"gold\\"}"},{"userId":"user-2"}]}',
    ),
    "PutActions": (
        {
            "dataset_arn": ARN.replace("ITEMS", "ACTIONS"),
            "actions": [Action(action_id="act-1", properties='{"value": 3}'), Action(action_id="act-2")],
        },
        b'{"datasetArn":"arn:aws:personalize:us-east-1:123456789012:dataset/shop/ACTIONS",'
        b'"actions":[{"actionId":"act-1","properties":"{\\"value\\": 3}"},{"actionId":"act-2"}]}',
    ),
    "PutActionInteractions": (
        {
            "tracking_id": "trk-2",
            "action_interactions": [
                ActionInteraction(
                    action_id="act-1",
                    session_id="sess-1",
                    timestamp=T,
                    event_type="Taken",
                    user_id="user-1",
                    event_id="evt-2",
                    recommendation_id="rec-2",
                    impression=["act-1", "act-2"],
                    properties={"channel": "web"},
                ),
                ActionInteraction(action_id="act-2", session_id="sess-1", timestamp=T + 1.5, event_type="Viewed"),
            ],
        },
        b'{"trackingId":"trk-2","actionInteractions":[{"actionId":"act-1","sessionId":"sess-1","timestamp":1700000000,'
        b'"eventType":"Taken","userId":"user-1","eventId":"evt-2","recommendationId":"rec-2",'
        b'"impression":["act-1","act-2"],"properties":"{\\"channel\\":\\"web\\"}"},'
        b'{"actionId":"act-2","sessionId":"sess-1","timestamp":1700000001.5,"eventType":"Viewed"}]}',
    ),
}

by_op = pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)


async def call(client: PersonalizeEventsClient, op: Operation) -> ResponseMetadata:
    """Make the golden call of ``op``."""
    result: ResponseMetadata = await getattr(client, op.snake_name)(**CALLS[op.name][0])
    return result


def botocore_signature(recorded: Recorded, url: str, credentials: Credentials, region: str) -> str:
    """Recompute the request's signature with botocore, over exactly the headers the request signed."""
    auth_header = recorded.headers["Authorization"]
    signed = re.search(r"SignedHeaders=([^,]+)", auth_header)
    assert signed is not None
    names = signed.group(1).split(";")
    request = AWSRequest(
        method=recorded.method, url=url, data=recorded.body, headers={n: recorded.headers[n] for n in names}
    )
    request.context["timestamp"] = recorded.headers["x-amz-date"]
    boto_creds = BotocoreCredentials(
        credentials.access_key_id, credentials.secret_access_key, credentials.session_token
    )
    signer = SigV4Auth(boto_creds, "personalize", region)
    canonical = signer.canonical_request(request)
    assert signer.signed_headers(signer.headers_to_sign(request)) == signed.group(1)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


def signature_of(recorded: Recorded) -> str:
    found = re.search(r"Signature=([0-9a-f]{64})$", recorded.headers["Authorization"])
    assert found is not None
    return found.group(1)


# --- per operation: path, method, headers, body, metadata -------------------------------------------


@by_op
async def test_each_operation_posts_its_golden_body_to_its_path(server: ScriptedServer, op: Operation) -> None:
    """Every put_* sends one POST to its service path with exactly the expected JSON bytes."""
    async with make_client(server) as client:
        await call(client, op)
    assert len(server.requests) == 1
    sent = server.requests[0]
    assert (sent.method, sent.path, sent.query) == ("POST", op.path, "")
    assert sent.body == CALLS[op.name][1]
    assert sent.headers["Content-Length"] == str(len(sent.body))


@by_op
async def test_each_operation_sends_the_services_headers(server: ScriptedServer, op: Operation) -> None:
    """Content-Type, User-Agent, Host with port, x-amz-date, Authorization scope and the session token."""
    config = ClientConfig(user_agent_extra="myapp/2.1")
    async with make_client(server, config=config) as client:
        await call(client, op)
    headers = server.requests[0].headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == (
        f"aiopersonalize-events/{__version__} Python/{platform.python_version()} "
        f"aiohttp/{aiohttp.__version__} myapp/2.1"
    )
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    amz_date = headers["x-amz-date"]
    assert re.fullmatch(r"\d{8}T\d{6}Z", amz_date)
    sent_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - sent_at).total_seconds()) < 300
    assert headers["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{amz_date[:8]}/us-east-1/personalize/aws4_request, "
        f"SignedHeaders=host;x-amz-date;x-amz-security-token, Signature={signature_of(server.requests[0])}"
    )
    assert headers["X-Amz-Security-Token"] == SESSION_TOKEN
    assert len(headers.getall("Authorization")) == 1


async def test_user_agent_without_extra_names_library_python_and_aiohttp(server: ScriptedServer) -> None:
    """Without user_agent_extra the User-Agent is exactly library, Python and aiohttp versions."""
    async with make_client(server) as client:
        await call(client, OPERATIONS[0])
    assert server.requests[0].headers["User-Agent"] == (
        f"aiopersonalize-events/{__version__} Python/{platform.python_version()} aiohttp/{aiohttp.__version__}"
    )


async def test_long_term_credentials_send_no_token(server: ScriptedServer) -> None:
    """Without a session token no X-Amz-Security-Token is sent or signed."""
    async with make_client(server, token=False) as client:
        await call(client, OPERATIONS[1])
    headers = server.requests[0].headers
    assert "X-Amz-Security-Token" not in headers
    assert "SignedHeaders=host;x-amz-date," in headers["Authorization"]


@by_op
async def test_each_operation_returns_response_metadata(server: ScriptedServer, op: Operation) -> None:
    """A success returns the answer's request id, the HTTP status and no retries."""
    async with make_client(server) as client:
        meta = await call(client, op)
    assert meta == ResponseMetadata(request_id="req-1", http_status=200, retry_attempts=0)


async def test_response_metadata_counts_retries(server: ScriptedServer) -> None:
    """After two throttled attempts the metadata says two retries and carries the last request id."""
    server.error("ThrottlingException", 400, times=2)
    async with make_client(server) as client:
        meta = await call(client, OPERATIONS[0])
    assert meta == ResponseMetadata(request_id="req-3", http_status=200, retry_attempts=2)
    assert len(server.requests) == 3


async def test_success_without_request_id_gives_none(server: ScriptedServer) -> None:
    """An answer without x-amzn-RequestId gives request_id None rather than failing."""
    from _scripted_server import Reply

    server.reply(Reply(200, b"{}", {}))
    async with make_client(server) as client:
        meta = await call(client, OPERATIONS[2])
    assert meta.request_id is None


# --- signatures ----------------------------------------------------------------------------------


@by_op
@pytest.mark.parametrize("token", [True, False], ids=["temporary", "long-term"])
async def test_botocore_verifies_the_signature(server: ScriptedServer, op: Operation, token: bool) -> None:
    """botocore's SigV4, recomputed over exactly the signed headers as received, gives the same signature."""
    async with make_client(server, token=token) as client:
        await call(client, op)
    sent = server.requests[0]
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN if token else None)
    expected = botocore_signature(sent, server.url + op.path, credentials, "us-east-1")
    assert signature_of(sent) == expected


async def test_signature_check_catches_a_changed_body(server: ScriptedServer) -> None:
    """The verification is real: the same request with one byte of body changed does not verify."""
    async with make_client(server) as client:
        await call(client, OPERATIONS[1])
    sent = server.requests[0]
    tampered = Recorded(sent.method, sent.path, sent.query, sent.headers, sent.body.replace(b"item-1", b"item-9"))
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN)
    assert botocore_signature(tampered, server.url + "/items", credentials, "us-east-1") != signature_of(sent)


@pytest.mark.parametrize("region", ["eu-west-1", "cn-north-1", "us-gov-west-1"])
async def test_signature_scope_uses_the_clients_region(server: ScriptedServer, region: str) -> None:
    """With a custom endpoint the signature is still scoped to the client's region and verifies."""
    async with make_client(server, region=region) as client:
        await call(client, OPERATIONS[0])
    sent = server.requests[0]
    assert f"/{region}/personalize/aws4_request" in sent.headers["Authorization"]
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN)
    assert signature_of(sent) == botocore_signature(sent, server.url + "/events", credentials, region)


async def test_signature_covers_an_endpoint_path_prefix(server: ScriptedServer) -> None:
    """An endpoint_url with a path prefix is requested and signed with the full path."""
    async with make_client(server, endpoint_url=server.url + "/proxy/") as client:
        await call(client, OPERATIONS[1])
    sent = server.requests[0]
    assert sent.path == "/proxy/items"
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN)
    assert signature_of(sent) == botocore_signature(sent, server.url + "/proxy/items", credentials, "us-east-1")


async def test_each_retry_is_signed_afresh(server: ScriptedServer) -> None:
    """Every attempt carries its own valid signature."""
    server.error("InternalFailure", 500)
    async with make_client(server) as client:
        await call(client, OPERATIONS[3])
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN)
    assert len(server.requests) == 2
    for sent in server.requests:
        assert signature_of(sent) == botocore_signature(sent, server.url + "/actions", credentials, "us-east-1")


# --- conformance with the service model (botocore) -------------------------------------------------


@by_op
async def test_body_matches_botocores_serialisation_and_validation(server: ScriptedServer, op: Operation) -> None:
    """The body passes botocore's parameter validation and equals, as JSON, what botocore would send."""
    async with make_client(server) as client:
        await call(client, op)
    sent = server.requests[0].json
    model = botocore.session.get_session().get_service_model("personalize-events").operation_model(op.name)
    botocore.validate.validate_parameters(sent, model.input_shape)
    serialised = botocore.serialize.create_serializer("rest-json").serialize_to_request(sent, model)
    assert serialised["url_path"] == op.path
    assert serialised["method"] == "POST"
    assert json.loads(serialised["body"]) == sent


def test_operations_table_matches_the_service_model() -> None:
    """Every operation of the service model is in the table, with its path and record member."""
    model = botocore.session.get_session().get_service_model("personalize-events")
    assert sorted(op.name for op in OPERATIONS) == sorted(model.operation_names)
    for op in OPERATIONS:
        operation = model.operation_model(op.name)
        assert operation.http["requestUri"] == op.path
        assert operation.http["method"] == "POST"
        assert op.record_wire in operation.input_shape.members
        assert op.resource_wire in operation.input_shape.required_members
        floats = {
            name
            for name, member in operation.input_shape.members[op.record_wire].member.members.items()
            if member.type_name in ("float", "double")
        }
        assert {camel(name) for name in op.record_floats} == floats


# --- no invalid input reaches the network ----------------------------------------------------------

_valid_records: dict[str, Any] = {
    "PutEvents": Event(event_type="v", sent_at=T),
    "PutItems": Item(item_id="i"),
    "PutUsers": User(user_id="u"),
    "PutActions": Action(action_id="a"),
    "PutActionInteractions": ActionInteraction(action_id="a", session_id="s", timestamp=T, event_type="e"),
}
_bad_ids = st.one_of(
    st.just(""),
    st.text(min_size=257, max_size=300),
    st.integers(),
    st.none(),
    st.binary(min_size=1, max_size=5),
)
_not_an_event = Item(item_id="i")  # an event over 10 KB cannot even be made (see test_shapes)


@st.composite
def invalid_calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A put_* call with exactly one thing wrong, drawn from every kind of mistake a caller can make."""
    op = draw(st.sampled_from(OPERATIONS))
    kwargs = dict(CALLS[op.name][0])
    good = _valid_records[op.name]
    mistake = draw(st.sampled_from(["resource", "count", "wrong_record", "not_a_list", "session", "size"]))
    if mistake == "resource":
        not_arns = st.sampled_from(["arn:aws:s3:::bucket", "personalize", ARN + "\u00e9" * 200])
        kwargs[op.resource_field] = draw(_bad_ids | not_arns if op.resource_field == "dataset_arn" else _bad_ids)
    elif mistake == "count":
        kwargs[op.record_field] = [good] * draw(st.sampled_from([0, 11, 12, 50]))
    elif mistake == "wrong_record":
        records = [good] * draw(st.integers(1, 10))
        index = draw(st.integers(0, len(records) - 1))
        wrong = draw(
            st.sampled_from(
                [None, "text", {"itemId": "i"}, 5, *(r for r in _valid_records.values() if type(r) is not type(good))]
            )
        )
        records[index] = wrong
        kwargs[op.record_field] = records
    elif mistake == "not_a_list":
        kwargs[op.record_field] = draw(st.sampled_from([None, "abc", 5, {"a": good}, good]))
    elif mistake == "session" and op.name == "PutEvents":
        kwargs[draw(st.sampled_from(["session_id", "user_id"]))] = draw(_bad_ids.filter(lambda v: v is not None))
    elif op.name == "PutEvents":  # an event over 10 KB
        kwargs["event_list"] = [good] * draw(st.integers(0, 9)) + [_not_an_event]
    else:
        kwargs[op.record_field] = [good] * 11
    return op.snake_name, kwargs


def test_invalid_input_never_reaches_the_network() -> None:
    """Any invalid call raises ValidationError and the server sees no request at all."""
    loop = asyncio.new_event_loop()  # hypothesis drives the examples; one loop and server serve them all
    try:
        server = ScriptedServer()
        loop.run_until_complete(server.start())
        client = make_client(server)
        loop.run_until_complete(client.open())

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(case=invalid_calls())
        def check(case: tuple[str, dict[str, Any]]) -> None:
            name, kwargs = case
            with pytest.raises(ValidationError):
                loop.run_until_complete(getattr(client, name)(**kwargs))
            assert server.requests == []

        try:
            check()
        finally:
            loop.run_until_complete(client.close())
            loop.run_until_complete(server.stop())
    finally:
        loop.close()


async def test_a_batch_is_validated_whole_before_anything_is_sent(server: ScriptedServer) -> None:
    """One bad record among ten stops the call; the nine good ones are not sent either."""
    events: list[Any] = [Event(event_type="v", sent_at=T)] * 9 + [_not_an_event]
    async with make_client(server) as client:
        with pytest.raises(ValidationError) as info:
            await client.put_events(tracking_id="t", session_id="s", event_list=events)
    assert info.value.path == "event_list[9]"
    assert server.requests == []


# --- session ownership and lifecycle ------------------------------------------------------------------


@pytest.fixture
def tracked_sessions(monkeypatch: pytest.MonkeyPatch) -> list[aiohttp.ClientSession]:
    """Record every aiohttp.ClientSession created during the test."""
    created: list[aiohttp.ClientSession] = []
    real = aiohttp.ClientSession

    def tracked(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        session = real(*args, **kwargs)
        created.append(session)
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", tracked)
    return created


async def test_a_callers_session_is_used_and_not_closed(server: ScriptedServer, tracked_sessions: list[Any]) -> None:
    """Requests go through the caller's own session, which is still open after the client closes."""
    async with aiohttp.ClientSession(headers={"X-Caller-Session": "mine"}) as session:
        tracked_sessions.clear()
        async with make_client(server, session=session) as client:
            await call(client, OPERATIONS[0])
            await call(client, OPERATIONS[1])
        assert client.closed
        assert not session.closed
        assert tracked_sessions == []
        assert [r.headers.get("X-Caller-Session") for r in server.requests] == ["mine", "mine"]


async def test_the_clients_own_session_is_created_once_and_closed(
    server: ScriptedServer, tracked_sessions: list[Any]
) -> None:
    """The client creates one pooled session on first use, reuses it, and closes it on exit."""
    client = make_client(server, config=ClientConfig(max_connections=7))
    assert tracked_sessions == []  # nothing is created before use
    async with client:
        for op in OPERATIONS:
            await call(client, op)
        assert len(tracked_sessions) == 1
        connector = tracked_sessions[0].connector
        assert isinstance(connector, aiohttp.TCPConnector)
        assert connector.limit == 7
    assert tracked_sessions[0].closed


async def test_first_call_opens_the_client_without_async_with(
    server: ScriptedServer, tracked_sessions: list[Any]
) -> None:
    """A put_* call on an unopened client opens it; close() then releases the session."""
    client = make_client(server)
    await call(client, OPERATIONS[4])
    assert len(tracked_sessions) == 1
    await client.close()
    assert tracked_sessions[0].closed


async def test_concurrent_first_calls_create_one_session(server: ScriptedServer, tracked_sessions: list[Any]) -> None:
    """Many calls racing on an unopened client share one session."""
    client = make_client(server)
    await asyncio.gather(*(call(client, OPERATIONS[1]) for _ in range(10)))
    await client.close()
    assert len(tracked_sessions) == 1
    assert len(server.requests) == 10


async def test_close_is_idempotent(server: ScriptedServer) -> None:
    """close() may be called any number of times, before or after use."""
    client = make_client(server)
    await client.close()
    await client.close()
    other = make_client(server)
    async with other:
        await call(other, OPERATIONS[0])
    await other.close()
    assert other.closed


async def test_a_closed_client_refuses_to_work(server: ScriptedServer) -> None:
    """Calls, open() and async with on a closed client raise instead of silently reopening."""
    client = make_client(server)
    async with client:
        await call(client, OPERATIONS[0])
    with pytest.raises(RuntimeError, match="closed"):
        await call(client, OPERATIONS[0])
    with pytest.raises(RuntimeError, match="closed"):
        await client.open()
    with pytest.raises(RuntimeError, match="closed"):
        async with client:
            pass
    assert len(server.requests) == 1


def test_creating_a_client_outside_a_loop_creates_nothing() -> None:
    """A client may be built at import time; it makes no session until used (so no unclosed-session warning)."""
    client = make_client(endpoint_url="http://127.0.0.1:9")
    assert not client.closed
    del client


# --- endpoints ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "fips", "dualstack", "url"),
    [
        ("us-east-1", False, False, "https://personalize-events.us-east-1.amazonaws.com"),
        ("eu-west-1", False, False, "https://personalize-events.eu-west-1.amazonaws.com"),
        ("cn-north-1", False, False, "https://personalize-events.cn-north-1.amazonaws.com.cn"),
        ("cn-northwest-1", False, False, "https://personalize-events.cn-northwest-1.amazonaws.com.cn"),
        ("us-gov-west-1", False, False, "https://personalize-events.us-gov-west-1.amazonaws.com"),
        ("us-east-1", True, False, "https://personalize-events-fips.us-east-1.amazonaws.com"),
        ("us-gov-west-1", True, False, "https://personalize-events-fips.us-gov-west-1.amazonaws.com"),
        ("us-east-1", False, True, "https://personalize-events.us-east-1.api.aws"),
        ("us-east-1", True, True, "https://personalize-events-fips.us-east-1.api.aws"),
        ("cn-north-1", False, True, "https://personalize-events.cn-north-1.api.amazonwebservices.com.cn"),
    ],
)
async def test_endpoint_for_region_and_variants(region: str, fips: bool, dualstack: bool, url: str) -> None:
    """The client picks the service's endpoint for the region, partition, FIPS and dual-stack options."""
    config = ClientConfig(use_fips_endpoint=fips, use_dualstack_endpoint=dualstack)
    client = make_client(region=region, config=config)
    async with client:
        assert client.endpoint_url == url
        assert client.region == region


@functools.cache
def _boto3_session() -> Any:
    import boto3

    return boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b")


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1"])
@pytest.mark.parametrize(("fips", "dualstack"), [(False, False), (True, False), (False, True), (True, True)])
def test_endpoints_agree_with_botocore(region: str, fips: bool, dualstack: bool) -> None:
    """For every partition and variant our endpoint is the one botocore's endpoint rules give."""
    from botocore.config import Config

    config = Config(use_fips_endpoint=fips, use_dualstack_endpoint=dualstack)
    expected = _boto3_session().client("personalize-events", region_name=region, config=config).meta.endpoint_url
    assert endpoint_for(region, fips=fips, dualstack=dualstack) == expected


async def test_a_custom_endpoint_url_overrides_region_and_variants(server: ScriptedServer) -> None:
    """endpoint_url wins over the region's endpoint and the FIPS/dual-stack options."""
    config = ClientConfig(use_fips_endpoint=True, use_dualstack_endpoint=True)
    async with make_client(server, endpoint_url=server.url + "/", config=config) as client:
        assert client.endpoint_url == server.url
        await call(client, OPERATIONS[0])
    assert server.requests[0].path == "/events"


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com", "http://", "https:///path"])
def test_a_malformed_endpoint_url_is_refused_at_construction(url: str) -> None:
    """An endpoint_url that is not http(s) with a host raises ValidationError naming endpoint_url."""
    with pytest.raises(ValidationError, match="endpoint_url"):
        make_client(endpoint_url=url)


async def test_no_region_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Without a region argument, AWS_REGION, AWS_DEFAULT_REGION or a profile region, NoRegionError says what to set."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("HOME", str(tmp_path))
    client = make_client(region=None)
    with pytest.raises(NoRegionError, match="AWS_REGION"):
        await client.open()
    with pytest.raises(NoRegionError):
        await client.put_items(dataset_arn=ARN, items=[Item(item_id="i")])
    await client.close()


async def test_region_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a region argument AWS_REGION is used."""
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    async with make_client(region=None) as client:
        assert client.endpoint_url == "https://personalize-events.eu-west-3.amazonaws.com"


# --- plain http warning ------------------------------------------------------------------------------


async def test_plain_http_to_a_remote_host_logs_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Plain http to a host other than loopback is allowed but logs exactly one warning (and connects nowhere)."""
    caplog.set_level(logging.DEBUG, logger="aiopersonalize_events")
    client = make_client(endpoint_url="http://example.invalid:8080")
    await client.open()
    await client.open()
    await client.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "http://example.invalid:8080" in warnings[0].getMessage()
    assert "unencrypted" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9", "http://127.8.9.10", "https://example.invalid"],
)
async def test_loopback_or_https_endpoints_do_not_warn(caplog: pytest.LogCaptureFixture, url: str) -> None:
    """Loopback http (an emulator) and https endpoints log no warning."""
    caplog.set_level(logging.DEBUG, logger="aiopersonalize_events")
    async with make_client(endpoint_url=url):
        pass
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
