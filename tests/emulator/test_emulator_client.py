"""Our own client against the emulator: typed exceptions, storage rules, inspection, and the fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from _emulator_support import (
    ITEMS_ARN,
    KEY_ID,
    SECRET,
    TRACKING_ID,
    USERS_ARN,
    error_code,
    post_signed,
    valid,
)

from aiopersonalize_events import (
    Action,
    ActionInteraction,
    ClientConfig,
    Credentials,
    Event,
    InvalidInputException,
    Item,
    PersonalizeEventsClient,
    ResourceNotFoundException,
    ServiceError,
    ThrottlingException,
    User,
)
from aiopersonalize_events.emulator import Emulator, Faults
from aiopersonalize_events.errors import parse_error

_ONE_TRY = ClientConfig(max_attempts=1)


def _client(
    emu: Emulator, *, key_id: str = KEY_ID, secret: str = SECRET, config: ClientConfig = _ONE_TRY
) -> PersonalizeEventsClient:
    return PersonalizeEventsClient(
        region="us-east-1", endpoint_url=emu.endpoint_url, credentials=Credentials(key_id, secret), config=config
    )


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator verifying the test key pair."""
    async with Emulator(credentials={KEY_ID: SECRET}) as emulator:
        yield emulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session for raw requests."""
    async with aiohttp.ClientSession() as raw:
        yield raw


async def test_client_calls_all_five_operations(emu: Emulator) -> None:
    """Each put_* of our client is accepted and its records are stored in wire form."""
    async with _client(emu) as client:
        meta = await client.put_events(
            tracking_id=TRACKING_ID,
            session_id="s1",
            user_id="u1",
            event_list=[Event(event_type="click", sent_at=1700000000.5, event_id="e1", properties={"a": 1})],
        )
        await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="i1", properties={"genre": "x"})])
        await client.put_users(dataset_arn=USERS_ARN, users=[User(user_id="u1")])
        await client.put_actions(dataset_arn=ITEMS_ARN, actions=[Action(action_id="a1")])
        await client.put_action_interactions(
            tracking_id=TRACKING_ID,
            action_interactions=[
                ActionInteraction(action_id="a1", session_id="s1", timestamp=1700000000, event_type="Taken")
            ],
        )
    assert meta.http_status == 200
    assert meta.request_id
    assert emu.events() == [
        {
            "eventId": "e1",
            "eventType": "click",
            "properties": '{"a":1}',
            "sentAt": 1700000000.5,
            "trackingId": TRACKING_ID,
            "sessionId": "s1",
            "userId": "u1",
        }
    ]
    assert emu.items() == [{"itemId": "i1", "properties": '{"genre":"x"}', "datasetArn": ITEMS_ARN}]
    assert emu.users(USERS_ARN) == [{"userId": "u1", "datasetArn": USERS_ARN}]
    assert emu.actions(ITEMS_ARN) == [{"actionId": "a1", "datasetArn": ITEMS_ARN}]
    (interaction,) = emu.action_interactions(TRACKING_ID)
    assert interaction["actionId"] == "a1"
    assert interaction["trackingId"] == TRACKING_ID
    assert interaction["eventId"]  # generated
    assert sum(emu.calls.values()) == 5


async def test_client_gets_invalid_input_for_a_value_it_let_through(emu: Emulator) -> None:
    """A value that slipped past the client's shapes is refused by the emulator: InvalidInputException."""
    event = Event(event_type="click", sent_at=1)
    object.__setattr__(event, "event_type", "x" * 257)  # simulate a shape bug: serde does not re-validate
    async with _client(emu) as client:
        with pytest.raises(InvalidInputException) as info:
            await client.put_events(tracking_id=TRACKING_ID, session_id="s", event_list=[event])
    error = info.value
    assert error.http_status == 400
    assert error.code == "InvalidInputException"
    assert "eventList.1.member.eventType" in error.message
    assert error.request_id
    assert emu.events() == []


async def test_raw_invalid_request_parses_as_invalid_input(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """A signed raw request breaking a limit parses (errors.parse_error) to InvalidInputException."""
    request = valid("PutEvents")
    request["eventList"][0]["properties"] = '{"sessionId":"x"}'
    body = json.dumps(request).encode()
    status, headers, payload = await post_signed(session, emu.endpoint_url, "/events", body)
    error = parse_error(status, headers, json.dumps(payload).encode())
    assert isinstance(error, InvalidInputException)
    assert "eventList.1.member.properties" in error.message
    assert "sessionId" in error.message


async def test_client_gets_resource_not_found_for_unregistered_tracker() -> None:
    """With tracking ids registered, another tracking id gets ResourceNotFoundException (404)."""
    async with Emulator(tracking_ids=["known"]) as emu, _client(emu) as client:
        await client.put_events(tracking_id="known", session_id="s", event_list=[Event(event_type="e", sent_at=1)])
        with pytest.raises(ResourceNotFoundException) as info:
            await client.put_events(tracking_id="other", session_id="s", event_list=[Event(event_type="e", sent_at=1)])
        assert info.value.http_status == 404
        assert len(emu.events()) == 1


async def test_register_turns_the_dataset_check_on() -> None:
    """register(dataset_arns=...) makes other dataset ARNs unknown (404); tracking ids stay open."""
    async with Emulator() as emu, _client(emu) as client:
        await client.put_users(dataset_arn=USERS_ARN, users=[User(user_id="u")])
        emu.register(dataset_arns=[ITEMS_ARN])
        await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="i")])
        with pytest.raises(ResourceNotFoundException):
            await client.put_users(dataset_arn=USERS_ARN, users=[User(user_id="u")])
        await client.put_events(tracking_id="any", session_id="s", event_list=[Event(event_type="e", sent_at=1)])


async def test_client_wrong_secret_is_a_service_error_with_the_code(emu: Emulator) -> None:
    """A wrong secret reaches our client as ServiceError code InvalidSignatureException, HTTP 403, secret-free."""
    async with _client(emu, secret="wrong-secret-value") as client:
        with pytest.raises(ServiceError) as info:
            await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="i")])
    assert type(info.value) is ServiceError
    assert info.value.code == "InvalidSignatureException"
    assert info.value.http_status == 403
    assert "wrong-secret-value" not in str(info.value)
    assert SECRET not in str(info.value)


async def test_client_unknown_key_is_unrecognized_client(emu: Emulator) -> None:
    """An unknown access key id reaches our client as ServiceError code UnrecognizedClientException."""
    async with _client(emu, key_id="AKIDOTHER") as client:
        with pytest.raises(ServiceError) as info:
            await client.put_events(tracking_id="t", session_id="s", event_list=[Event(event_type="e", sent_at=1)])
    assert info.value.code == "UnrecognizedClientException"
    assert info.value.http_status == 403


async def test_client_gets_throttling_exception() -> None:
    """An injected throttle reaches our client as ThrottlingException, marked retryable."""
    async with Emulator(faults=Faults(throttle=1.0)) as emu, _client(emu) as client:
        with pytest.raises(ThrottlingException) as info:
            await client.put_events(tracking_id="t", session_id="s", event_list=[Event(event_type="e", sent_at=1)])
    assert info.value.retryable
    assert info.value.message == "Rate exceeded"


async def test_client_gets_server_errors_as_retryable_service_errors() -> None:
    """Injected server errors reach our client as plain ServiceErrors (InternalFailure 500 / 503), retryable."""
    seen: set[tuple[str, int]] = set()
    async with Emulator(faults=Faults(server_error=1.0, seed=3)) as emu, _client(emu) as client:
        for _ in range(20):
            with pytest.raises(ServiceError) as info:
                await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="i")])
            assert type(info.value) is ServiceError
            assert info.value.retryable
            seen.add((info.value.code, info.value.http_status))
    assert seen == {("InternalFailure", 500), ("ServiceUnavailableException", 503)}


async def test_events_are_deduplicated_by_event_id(emu: Emulator) -> None:
    """An event id already accepted is not stored again (first wins) and counts as a duplicate."""
    async with _client(emu) as client:
        first = Event(event_type="click", sent_at=1, event_id="e1", event_value=1.0)
        again = Event(event_type="click", sent_at=2, event_id="e1", event_value=2.0)
        await client.put_events(tracking_id=TRACKING_ID, session_id="s", event_list=[first, again])
        await client.put_events(tracking_id=TRACKING_ID, session_id="s", event_list=[again])
        await client.put_events(tracking_id="other-tracker", session_id="s", event_list=[again])
    events = emu.events(TRACKING_ID)
    assert len(events) == 1
    assert events[0]["eventValue"] == 1.0
    assert len(emu.events("other-tracker")) == 1
    assert emu.duplicates == 2


async def test_events_without_id_get_distinct_generated_ids(emu: Emulator) -> None:
    """Events sent without an eventId are all kept, each with a generated, distinct id."""
    async with _client(emu) as client:
        event = Event(event_type="view", sent_at=1)
        await client.put_events(tracking_id=TRACKING_ID, session_id="s", event_list=[event, event])
        await client.put_events(tracking_id=TRACKING_ID, session_id="s", event_list=[event])
    ids = [e["eventId"] for e in emu.events()]
    assert len(ids) == 3
    assert len(set(ids)) == 3
    assert emu.duplicates == 0


async def test_action_interactions_are_deduplicated_by_event_id(emu: Emulator) -> None:
    """Action interactions with an eventId already accepted are counted as duplicates too."""
    interaction = ActionInteraction(action_id="a", session_id="s", timestamp=1, event_type="Viewed", event_id="x")
    async with _client(emu) as client:
        await client.put_action_interactions(tracking_id=TRACKING_ID, action_interactions=[interaction, interaction])
    assert len(emu.action_interactions()) == 1
    assert emu.duplicates == 1


async def test_dataset_records_are_upserted_by_id(emu: Emulator) -> None:
    """A record with an id already in the dataset replaces it; other datasets are separate."""
    async with _client(emu) as client:
        await client.put_items(
            dataset_arn=ITEMS_ARN, items=[Item(item_id="i1", properties={"v": 1}), Item(item_id="i2")]
        )
        await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="i1", properties={"v": 2})])
        other = ITEMS_ARN.replace("shop", "other")
        await client.put_items(dataset_arn=other, items=[Item(item_id="i1")])
    assert emu.items(ITEMS_ARN) == [
        {"itemId": "i1", "properties": '{"v":2}', "datasetArn": ITEMS_ARN},
        {"itemId": "i2", "datasetArn": ITEMS_ARN},
    ]
    assert emu.items(other) == [{"itemId": "i1", "datasetArn": other}]
    assert len(emu.items()) == 3


async def test_calls_counts_operation_and_status(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """calls counts each answered call by (operation name, HTTP status)."""
    async with _client(emu) as client:
        await client.put_users(dataset_arn=USERS_ARN, users=[User(user_id="u")])
        await client.put_users(dataset_arn=USERS_ARN, users=[User(user_id="u")])
    await post_signed(session, emu.endpoint_url, "/users", {"datasetArn": USERS_ARN, "users": []})
    await post_signed(session, emu.endpoint_url, "/events", valid("PutEvents"), secret="bad")
    assert emu.calls == {("PutUsers", 200): 2, ("PutUsers", 400): 1, ("PutEvents", 403): 1}


async def test_stored_records_are_copies(emu: Emulator) -> None:
    """Changing what an accessor returned does not change what the emulator holds."""
    async with _client(emu) as client:
        await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="i1")])
    emu.items()[0]["itemId"] = "changed"
    assert emu.items()[0]["itemId"] == "i1"


async def test_reset_forgets_records_calls_and_duplicates(emu: Emulator) -> None:
    """reset() empties the records, the duplicate count and the call counter."""
    async with _client(emu) as client:
        event = Event(event_type="e", sent_at=1, event_id="same")
        await client.put_events(tracking_id="t", session_id="s", event_list=[event, event])
        emu.reset()
        assert (emu.events(), emu.duplicates, emu.calls) == ([], 0, {})
        await client.put_events(tracking_id="t", session_id="s", event_list=[event])
    assert len(emu.events()) == 1


async def test_inspection_routes_show_records_and_calls(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """GET /_emulator/records/{kind} lists stored records (filterable); /_emulator/calls the counter."""
    async with _client(emu) as client:
        await client.put_events(tracking_id="t1", session_id="s", event_list=[Event(event_type="a", sent_at=1)])
        await client.put_events(tracking_id="t2", session_id="s", event_list=[Event(event_type="b", sent_at=1)])
    async with session.get(emu.endpoint_url + "/_emulator/records/events") as response:
        assert response.status == 200
        assert [e["eventType"] for e in await response.json()] == ["a", "b"]
    async with session.get(emu.endpoint_url + "/_emulator/records/events", params={"trackingId": "t2"}) as response:
        assert [e["trackingId"] for e in await response.json()] == ["t2"]
    async with session.get(emu.endpoint_url + "/_emulator/records/action-interactions") as response:
        assert await response.json() == []
    async with session.get(emu.endpoint_url + "/_emulator/records/nonsense") as response:
        assert response.status == 404
    async with session.get(emu.endpoint_url + "/_emulator/calls") as response:
        assert await response.json() == {
            "calls": [{"operation": "PutEvents", "status": 200, "count": 2}],
            "duplicates": 0,
        }


async def test_unknown_path_is_unknown_operation(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """A path that names no operation gets 404 UnknownOperationException with a request id."""
    status, headers, payload = await post_signed(session, emu.endpoint_url, "/recommendations", {})
    assert status == 404
    assert error_code(headers) == "UnknownOperationException"
    assert headers["x-amzn-RequestId"]
    assert "message" in payload
    assert emu.calls == {}


async def test_outage_then_recovery_with_client_retries() -> None:
    """Faults changed at run time: a call retried through an outage succeeds and stores its event once."""
    async with Emulator(faults=Faults(server_error=1.0)) as emu:
        client = _client(emu, config=ClientConfig(max_attempts=3))

        async def end_outage(delay: float) -> None:
            emu.faults = Faults()

        client.retry_policy.sleep = end_outage
        async with client:
            meta = await client.put_events(
                tracking_id="t", session_id="s", event_list=[Event(event_type="e", sent_at=1, event_id="once")]
            )
    assert meta.retry_attempts == 1
    assert len(emu.events()) == 1
    assert sum(n for (_, status), n in emu.calls.items() if status >= 500) == 1


async def test_repr_and_logs_never_show_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    """Neither the emulator's repr nor its per-call log lines contain a secret key."""
    caplog.set_level("INFO", logger="aiopersonalize_events.emulator")
    async with Emulator(credentials={KEY_ID: SECRET}) as emu:
        async with _client(emu, secret="bad-secret-value") as client:
            with pytest.raises(ServiceError):
                await client.put_users(dataset_arn=USERS_ARN, users=[User(user_id="u")])
        text = repr(emu) + caplog.text
    assert "PutUsers 403 InvalidSignatureException records=0" in caplog.text
    assert SECRET not in text
    assert "bad-secret-value" not in text


def test_import_does_not_load_the_emulator() -> None:
    """import aiopersonalize_events leaves the emulator (and aiohttp.web) unimported."""
    code = "import sys, aiopersonalize_events; print('aiopersonalize_events.emulator' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


async def test_fixtures_give_a_running_emulator_and_a_bound_client(
    personalize_emulator: Emulator, personalize_client: PersonalizeEventsClient
) -> None:
    """The pytest plugin's fixtures: a running emulator and a client bound to it."""
    assert personalize_client.endpoint_url == personalize_emulator.endpoint_url
    await personalize_client.put_events(tracking_id="t", session_id="s", event_list=[Event(event_type="e", sent_at=1)])
    assert len(personalize_emulator.events("t")) == 1


class TestFixtureOptions:
    """The plugin's options fixture, overridden for this class only."""

    @pytest.fixture
    def personalize_emulator_options(self) -> dict[str, object]:
        """Verify the client fixture's key pair and know only tracking id 't'."""
        return {"credentials": {"AKIDTEST": "test-secret"}, "tracking_ids": ["t"]}

    async def test_fixture_options_can_be_overridden(
        self, personalize_emulator: Emulator, personalize_client: PersonalizeEventsClient
    ) -> None:
        """Overriding personalize_emulator_options configures the fixture's emulator (credentials, resources)."""
        assert personalize_emulator.verifying
        event = Event(event_type="e", sent_at=1)
        await personalize_client.put_events(tracking_id="t", session_id="s", event_list=[event])
        with pytest.raises(ResourceNotFoundException):
            await personalize_client.put_events(tracking_id="unknown", session_id="s", event_list=[event])


async def test_default_fixture_accepts_any_well_formed_signature(personalize_emulator: Emulator) -> None:
    """By default the fixture's emulator does not verify keys: any key pair with a well-formed signature works."""
    assert not personalize_emulator.verifying
    async with _client(personalize_emulator, key_id="AKIDANY", secret="whatever") as client:
        await client.put_users(dataset_arn=USERS_ARN, users=[User(user_id="u")])
    assert len(personalize_emulator.users()) == 1
