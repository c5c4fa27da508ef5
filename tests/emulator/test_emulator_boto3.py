"""boto3, pointed at the emulator with endpoint_url, behaves as against the service.

The emulator runs in a background thread (``with Emulator() as emu``) so boto3
is called synchronously. boto3's own parameter validation is off, so every
refusal here is the emulator's.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import _limits_cases as C
import pytest
from _emulator_support import (
    ACCESSORS,
    ITEMS_ARN,
    KEY_ID,
    SECRET,
    TRACKING_ID,
    USERS_ARN,
    boto_client,
    boto_method,
    isolate_aws_environment,
    valid,
)
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from aiopersonalize_events._operations import OPERATIONS
from aiopersonalize_events.emulator import Emulator, Faults


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator verifying signatures, served from a thread, for the whole module."""
    with pytest.MonkeyPatch.context() as mp:
        isolate_aws_environment(mp, str(tmp_path_factory.mktemp("aws")))
        with Emulator(credentials={KEY_ID: SECRET}) as emu:
            yield emu


@pytest.fixture(scope="module")
def boto(emulator: Emulator) -> Any:
    """A boto3 client bound to the module's emulator."""
    return boto_client(emulator.endpoint_url)


@pytest.fixture(autouse=True)
def _fresh(emulator: Emulator) -> None:
    """Each test starts with nothing stored and no faults."""
    emulator.reset()
    emulator.faults = None


@pytest.mark.parametrize("operation", [op.name for op in OPERATIONS])
def test_boto3_valid_call_succeeds_and_is_stored(emulator: Emulator, boto: Any, operation: str) -> None:
    """A valid call of each operation gets HTTP 200 with a request id, and its records are stored."""
    answer = boto_method(boto, operation)(**valid(operation))
    meta = answer["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 200
    assert meta["RequestId"]
    stored = getattr(emulator, ACCESSORS[operation])()
    assert len(stored) == 1
    assert emulator.calls[(operation, 200)] == 1


def test_boto3_event_is_stored_in_wire_form(emulator: Emulator, boto: Any) -> None:
    """A stored event is the wire JSON of the event plus trackingId, sessionId and userId."""
    request = valid("PutEvents")
    boto.put_events(**request)
    (event,) = emulator.events(TRACKING_ID)
    expected = dict(request["eventList"][0], trackingId=TRACKING_ID, sessionId="session-1", userId="user-1")
    assert event == expected


def _set(document: dict[str, Any], path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    result = copy.deepcopy(document)
    target: Any = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return result


_BIG_EVENT_IMPRESSION = ["\u00e9" * 256] * 25  # 25 entries of 256 characters, 512 bytes each in UTF-8

# (row of the limits table, operation, path of the member to set, value, path the message must name):
# every length limit of the shared table one past its maximum and one under its minimum, then the limits
# that are not lengths (patterns, JSON, reserved keys, event size, event value).
_LIMIT_CASES: list[tuple[str, str, tuple[str | int, ...], object, str]] = [
    (f"{row.row}-{row.id}-{n}", row.operation, row.wire_path, row.value(n), row.message_path)
    for row in C.LIMITS
    for n in row.refused_sizes()
]
_LIMIT_CASES += [
    ("dataset-arn", "PutUsers", ("datasetArn",), "arn:aws:s3:::bucket/key", "datasetArn"),
    ("impression", "PutEvents", ("eventList", 0, "impression"), ["i", "x" * 257], "impression.2.member"),
    (
        "attribution-source",
        "PutEvents",
        ("eventList", 0, "metricAttribution", "eventAttributionSource"),
        "   ",
        "metricAttribution.eventAttributionSource",
    ),
    (
        "attribution-source",
        "PutEvents",
        ("eventList", 0, "metricAttribution", "eventAttributionSource"),
        "caf\u00e9",
        "metricAttribution.eventAttributionSource",
    ),
    ("event-properties", "PutEvents", ("eventList", 0, "properties"), "[1,2]", "eventList.1.member.properties"),
    ("item-action-properties", "PutItems", ("items", 0, "properties"), "not json", "items.1.member.properties"),
    ("reserved-keys", "PutEvents", ("eventList", 0, "properties"), '{"userId":"u"}', "eventList.1.member.properties"),
    ("reserved-keys", "PutEvents", ("eventList", 0, "properties"), '{"EVENTTYPE":"x"}', "properties"),
    (
        "reserved-keys",
        "PutActionInteractions",
        ("actionInteractions", 0, "properties"),
        '{"Timestamp":1}',
        "actionInteractions.1.member.properties",
    ),
    (
        "event-size",
        "PutEvents",
        ("eventList", 0),
        {"eventType": "click", "sentAt": 1700000000, "impression": _BIG_EVENT_IMPRESSION},
        "eventList.1.member",
    ),
    ("event-value", "PutEvents", ("eventList", 0, "eventValue"), math.nan, "eventList.1.member.eventValue"),
    ("event-value", "PutEvents", ("eventList", 0, "eventValue"), math.inf, "eventList.1.member.eventValue"),
    ("lone-surrogate", "PutItems", ("items", 0, "itemId"), "item-\ud800", "items.1.member.itemId"),
    ("lone-surrogate", "PutEvents", ("eventList", 0, "impression"), ["i", "\udfff"], "impression.2.member"),
    ("json-constant", "PutUsers", ("users", 0, "properties"), '{"a":NaN}', "users.1.member.properties"),
    ("json-constant", "PutActions", ("actions", 0, "properties"), '{"a":-Infinity}', "actions.1.member.properties"),
]


@pytest.mark.parametrize(
    ("row", "operation", "path", "value", "named"),
    _LIMIT_CASES,
    ids=[row if "." in row else f"{row}-{op}-{'.'.join(map(str, path))}" for row, op, path, _, _ in _LIMIT_CASES],
)
def test_boto3_limit_violation_raises_invalid_input(
    emulator: Emulator, boto: Any, row: str, operation: str, path: tuple[str | int, ...], value: object, named: str
) -> None:
    """Each row of the limits table: a value breaking it gets 400 InvalidInputException naming the member."""
    request = _set(valid(operation), path, value)
    with pytest.raises(boto.exceptions.InvalidInputException) as info:
        boto_method(boto, operation)(**request)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    message = info.value.response["Error"]["Message"]
    assert message.startswith("1 validation error detected: Value")
    assert f"'{named}" in message or named in message
    assert getattr(emulator, ACCESSORS[operation])() == []
    assert emulator.calls == {(operation, 400): 1}


def test_boto3_missing_required_member_is_named(boto: Any) -> None:
    """A missing required member is refused as 'Value null ... Member must not be null'."""
    request = valid("PutEvents")
    del request["sessionId"]
    with pytest.raises(boto.exceptions.InvalidInputException) as info:
        boto.put_events(**request)
    assert "Value null at 'sessionId' failed to satisfy constraint: Member must not be null" in str(info.value)


def test_boto3_wrong_secret_gets_invalid_signature(emulator: Emulator) -> None:
    """A request signed with a wrong secret gets 403 InvalidSignatureException, and nothing is stored."""
    client = boto_client(emulator.endpoint_url, secret="not-the-secret")
    with pytest.raises(ClientError) as info:
        client.put_events(**valid("PutEvents"))
    error = info.value.response
    assert error["Error"]["Code"] == "InvalidSignatureException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "signature we calculated does not match" in error["Error"]["Message"]
    assert SECRET not in error["Error"]["Message"]
    assert emulator.events() == []


def test_boto3_unknown_key_gets_unrecognized_client(emulator: Emulator) -> None:
    """A request signed with an unknown access key id gets 403 UnrecognizedClientException."""
    client = boto_client(emulator.endpoint_url, key_id="AKIDUNKNOWN")
    with pytest.raises(ClientError) as info:
        client.put_items(**valid("PutItems"))
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert info.value.response["Error"]["Message"] == "The security token included in the request is invalid."
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_boto3_unregistered_dataset_gets_resource_not_found(emulator: Emulator) -> None:
    """With datasets registered, another dataset ARN gets the modelled 404 ResourceNotFoundException."""
    with Emulator(credentials={KEY_ID: SECRET}, dataset_arns=[ITEMS_ARN]) as registered:
        boto = boto_client(registered.endpoint_url)
        boto.put_items(**valid("PutItems"))
        with pytest.raises(boto.exceptions.ResourceNotFoundException) as info:
            boto.put_users(**valid("PutUsers"))
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert USERS_ARN in info.value.response["Error"]["Message"]
        assert registered.users() == []
        assert len(registered.items()) == 1


def test_boto3_throttled_call_gets_throttling_exception(emulator: Emulator, boto: Any) -> None:
    """An injected throttle reaches boto3 as ThrottlingException 'Rate exceeded' (HTTP 400)."""
    emulator.faults = Faults(throttle=1.0)
    with pytest.raises(ClientError) as info:
        boto.put_events(**valid("PutEvents"))
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    assert info.value.response["Error"]["Message"] == "Rate exceeded"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_boto3_datetime_timestamps_are_accepted(emulator: Emulator, boto: Any) -> None:
    """boto3 sends datetimes as epoch seconds, which the emulator takes and stores as numbers."""
    from datetime import datetime, timezone

    request = valid("PutEvents")
    request["eventList"][0]["sentAt"] = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    boto.put_events(**request)
    (event,) = emulator.events()
    assert event["sentAt"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()
